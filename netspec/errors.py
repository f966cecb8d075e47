"""The one exception type user-facing failures raise outside spec validation.

A :class:`NetspecError` carries a one-line message that says where and what (``data.npz: x has shape
[10, 28, 28], the spec's input is [28, 28, 1]``); the CLI prints it and exits non-zero, never a traceback.
"""


class NetspecError(Exception):
    """A user-facing error: bad input data, a missing file, an unsupported model. ``exit_code`` is what
    the CLI returns (1 for invalid input, 2 for usage or unreadable files)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
