"""What counts as a user's mistake, and its message on one line.

Every reader of files and arguments raises an error naming the file, key or argument, what it expected and
what arrived: OSError for files that are missing, unreadable or unwritable, ValueError for wrong values,
ImportError for a package that is not installed. Anything else is a bug of ours and keeps its traceback.
"""

from __future__ import annotations

import os

USER_ERRORS = (OSError, ValueError, ImportError)


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line; an OSError raised by the system names its file."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        files = " -> ".join(os.fspath(f) for f in (error.filename, error.filename2) if f is not None)
        return f"{files}: {error.strerror}"
    return " ".join(str(error).split()) or type(error).__name__
