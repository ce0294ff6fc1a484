"""A bug report for an unexpected exception: a log file, named in one line.

A ConvoyError is the user's to fix and is shown as one line. Anything else
that escapes is a bug in convoy; the person who hits it gets one line naming
a log file that holds what a maintainer needs (after pre-commit's
`error_handler.py`): the traceback, convoy's version, Python's version and
the command line.

    path = crashlog.write(directory, error, context="processing request #4")
    # convoy: internal error (RuntimeError: ...); a bug in convoy, details in <path>

The queue writes one for a request that crashed (convoy.queue, in the
checkout's .convoy/logs), convoy.main for a command that did.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Optional

import convoy

MAX_SUMMARY = 300  # characters of an exception's message in a one-line summary


def version() -> str:
    """convoy's version: convoy.__version__ (the installed package's, as
    `convoy --version` says it)."""
    return convoy.__version__


def summary(error: BaseException) -> str:
    """`Type: message` of `error`, on one line."""
    text = " ".join(str(error).split())
    if len(text) > MAX_SUMMARY:
        text = text[:MAX_SUMMARY - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def write(directory: Path, error: BaseException, *, context: str = "",
          argv: Optional[list[str]] = None) -> Optional[Path]:
    """Writes the traceback of `error` with convoy's and Python's versions and
    the command line into a new file in `directory` (made 0700); returns its
    path, or None if it could not be written (a full or read-only disk must
    not hide the error itself)."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = directory / f"crash-{stamp}-{os.getpid()}.log"
        text = "".join([
            f"convoy {version()} crashed: {summary(error)}\n",
            f"context: {context or '-'}\n",
            f"command line: {' '.join(argv if argv is not None else sys.argv)}\n",
            f"python: {sys.version.split()[0]} ({sys.executable})\n",
            f"platform: {platform.platform()}\n",
            f"time: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n\n",
            *traceback.format_exception(type(error), error, error.__traceback__),
        ])
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return path
    except OSError:
        return None
