"""Adapters that plug PARS into serving engines; each subpackage owns one engine's imports."""
