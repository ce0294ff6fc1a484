"""Finding the integration checkout (`checkout`, the one function that
does), its config and store, and reading a request id: what every command
and every HTTP handler needs first.

    root = checkout(repo)                       # --repo, else the nearest checkout above the cwd
    with store(root, readonly=True) as s, s.read() as tx: ...   # CONVOY_STORE_URL, convoy.yaml's store,
                                                                # else the checkout's .convoy/state.db
    request = request_id("show", ["3"])         # ConvoyError (one line) if it is not one
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Sequence

from convoy.config import CONFIG_NAME, Config, load_config
from convoy.errors import ConvoyError
from convoy.store import (MAX_ID, Store, checkout_store, checkout_url, has_state, open_store, shown_url,
                          stored_version)
from convoy.untrusted import printable

__all__ = ["MANIFEST", "MAX_ID", "NOT_FOUND", "STORE_URL_ENV", "VERSION", "age", "checkout", "config", "has_store",
           "manifest_path", "no_arguments", "not_found", "request_id", "shown_manifest", "shown_store", "store", "store_url",
           "version_problem"]

MANIFEST = os.path.join("manifests", "manifest.yaml")
VERSION = re.compile(r"v?\d+\.\d+\.\d+(-[0-9A-Za-z][0-9A-Za-z.-]*)?")
STORE_URL_ENV = "CONVOY_STORE_URL"  # the store's URL; wins over convoy.yaml's `store`
NOT_FOUND = ("{manifest} not found in {cwd} or any directory above it; run convoy from the integration checkout "
             "or pass --repo")


def checkout(repo: Optional[str], *, manifest: Optional[str] = None, not_found: str = NOT_FOUND) -> Path:
    """The integration checkout's root. The one place that finds it:

    - `manifest` (a manifest given by path, `convoy lock --manifest`): the
      parent of its directory, as it is (the manifest is read later);
    - else `repo` (`--repo`): that directory, which must have
      manifests/manifest.yaml;
    - else the nearest directory at or above the current one that has
      manifests/manifest.yaml; if there is none, ConvoyError with
      `not_found` (a template of {manifest} and {cwd}), which says what the
      caller's command takes instead.
    """
    if manifest:
        return Path(manifest).resolve().parent.parent
    if repo:
        root = Path(repo).absolute()
        if not (root / MANIFEST).is_file():
            raise ConvoyError(f"--repo={repo}: {MANIFEST} not found there; pass the integration checkout's root")
        return root
    cwd = Path.cwd()
    root = next((d for d in (cwd, *cwd.parents) if (d / MANIFEST).is_file()), None)
    if root is None:
        raise ConvoyError(not_found.format(manifest=MANIFEST, cwd=cwd))
    return root


def config(root: Path) -> Config:
    return load_config(root / CONFIG_NAME, shown=_shown(root / CONFIG_NAME))


def store_url(root: Path) -> Optional[str]:
    """The URL of the store the checkout's queue is kept in, when it is not
    the checkout's own .convoy/state.db: CONVOY_STORE_URL if set, else
    convoy.yaml's `store` (None: neither says)."""
    url = os.environ.get(STORE_URL_ENV, "").strip()
    if url:
        return url
    if (root / CONFIG_NAME).is_file():
        return config(root).store
    return None


def store(root: Path, *, create: bool = False, readonly: bool = False) -> Store:
    """The checkout's store (see `store_url`; else its .convoy/state.db);
    `readonly` for commands that only look (no write lock, nothing created
    or migrated). The one place every command and handler opens it."""
    url = store_url(root)
    if url is None:
        return checkout_store(root, create=create, readonly=readonly)
    return open_store(url, create=create, readonly=readonly)


def shown_store(root: Path) -> str:
    """The store's URL as it may be shown (no password): the checkout's own, or `store_url`'s."""
    return shown_url(store_url(root) or checkout_url(root))


def has_store(root: Path) -> bool:
    """Whether anything was submitted to the checkout's queue: its state
    database exists, or the store `store_url` names holds convoy's schema
    (ConvoyError if that store cannot be reached)."""
    url = store_url(root)
    if url is None:
        return has_state(root)
    return stored_version(url) is not None


def manifest_path(root: Path) -> Path:
    return root / MANIFEST


def shown_manifest(root: Path) -> str:
    return _shown(root / MANIFEST)


def _shown(path: Path) -> str:
    """`path` relative to the current directory if it is below it, else absolute."""
    try:
        return os.path.relpath(path) if Path.cwd() in path.parents else str(path)
    except ValueError:
        return str(path)


def no_arguments(command: str, args: Sequence[str]) -> None:
    if args:
        raise ConvoyError(f"convoy {command} takes no arguments, got: {' '.join(args)}; run: convoy help")


def request_id(command: str, args: Sequence[str]) -> int:
    """The one positional argument: a request id."""
    if len(args) != 1:
        got = f"got: {printable(' '.join(args))}" if args else "got none"
        raise ConvoyError(f"convoy {command} takes one request id ({got}); for example: convoy {command} 3")
    text = args[0].lstrip("#")
    digits = text.lstrip("0")
    # ASCII digits only ('²'.isdigit()), and few of them: int() refuses more
    # than 4300 digits, and SQLite any number above MAX_ID.
    if not (text.isascii() and text.isdigit()) or len(digits) > len(str(MAX_ID)) or not 0 < int(digits or 0) <= MAX_ID:
        raise ConvoyError(f"'{printable(args[0])}' is not a request id (a number from 1 to {MAX_ID}); see them "
                          "with: convoy status")
    return int(digits)


def not_found(request: int) -> ConvoyError:
    return ConvoyError(f"no request #{request} in this checkout's queue; see them with: convoy status")


def version_problem(version: str) -> Optional[str]:
    if not VERSION.fullmatch(version):
        return (f"--version={version} is not a version (expected v1.2.3 or v1.2.3-rc.1: "
                "v, then MAJOR.MINOR.PATCH, then an optional -prerelease)")
    return None


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
