"""The one exception family the CLI turns into a one-line ``error: ...`` message."""


class ScalinglabError(Exception):
    """A user-facing error: bad input, impossible config, missing file. Names what is wrong."""
