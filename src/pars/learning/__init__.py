"""Learning the served model's lengths from its own traffic (`pars serve --learn DIR`): the length log, the
response watcher, the refit of the student's head, the swap guard, and the learner that runs them."""
