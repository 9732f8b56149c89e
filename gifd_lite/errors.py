"""The exceptions for bad input: the CLI prints the message as a single line and exits 2 (usage) or 1 (runtime)."""


class GifdError(Exception):
    """Bad input or a missing resource, with a message a user can act on (CLI exit status 1)."""


class UsageError(GifdError):
    """The command line itself is wrong: an unknown option, a missing or contradictory argument (exit status 2)."""
