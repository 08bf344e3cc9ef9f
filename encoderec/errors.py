"""The one exception type users see: a one-line message naming the file, the key or line, and the fix."""


class EncoderecError(Exception):
    """Bad input or configuration. The CLI prints it as one line and exits non-zero."""
