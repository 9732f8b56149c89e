"""One exception type for bad input: the CLI prints its message as a single line and exits non-zero."""


class GifdError(Exception):
    """Bad input or a missing resource, with a message a user can act on."""
