"""What every experiment entry point in tools/ shares: user errors end with one line, no
traceback, and a non-zero exit."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, NoReturn

from . import caffe_env, train

# Errors a user can act on (a missing build, a run folder made with other settings, a missing
# file, a refused argument): their message is the whole story.
USER_ERRORS = (caffe_env.CaffeNotFound, train.RunMismatch, FileNotFoundError, RuntimeError,
               ValueError)


def run(main: Callable[[], int]) -> NoReturn:
    try:
        sys.exit(main())
    except USER_ERRORS as exc:
        sys.exit(f"{Path(sys.argv[0]).name}: {exc}")
