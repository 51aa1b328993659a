"""The one error type for problems with what a user gave: a bad value, file, config or setup.

`envtune` prints these as one line (exit status 2); anything else is a bug and keeps its traceback.
It is a `ValueError`, so code that validates input can be called from Python and caught as usual.
"""


class EnvtuneError(ValueError):
    """Bad input or environment, with a message that names the value and how to fix it."""
