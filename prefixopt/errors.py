"""One exception type for bad input. The library raises it with a one-line message naming the
problem and the fix; cli.py prints that line on stderr and exits non-zero. Nothing else is
caught: a bug should still show its traceback.
"""


class PrefixoptError(Exception):
    """Bad input or state the user can fix; str(exc) is the one-line message."""
