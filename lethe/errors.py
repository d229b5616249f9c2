"""One exception type for every user-facing failure.

A `LetheError` carries a single line that says what went wrong, where, and how to fix it.
The command-line entry points turn it into that one line on stderr and exit code 2; nothing
that raises it should print a traceback to a user.
"""


class LetheError(Exception):
    """A bad input or a refused operation. `str(err)` is the whole message, one line."""

    exit_code = 2


class Diverged(LetheError):
    """Training stopped because the loss became NaN/inf or crossed the recipe's threshold."""
