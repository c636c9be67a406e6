"""PARS in front of engines it does not run inside: HTTP services around the one scorer (`pars.scoring`)."""
