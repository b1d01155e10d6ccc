"""The one exception type for problems a user can act on.

A `UserError` (a missing build or input, a bad argument, a run folder made with other
settings, a malformed data set) reaches the user as one line naming what is wrong and what to
run, with exit status 2 (`dri_hep2.cli`). Any other exception is a bug and keeps its
traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message says what and, where it can, how."""
