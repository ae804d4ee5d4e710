"""User-facing errors: raised for bad files, labels or parameters, printed without a traceback."""
from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: the message says what is wrong, where, and how to fix it."""


class DataError(UserError):
    """A data file (manifest row, video, split file) is missing, corrupt or malformed."""
