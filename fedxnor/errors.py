"""One error type for everything a user can get wrong.

The CLI turns a FedxnorError into one line on stderr and exit code 2, so its
message must name the problem and the fix on a single line.
"""


class FedxnorError(Exception):
    """A user-facing error: bad input, a missing file, a design that does not fit."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
