"""The driver's state: a small `Store` interface (base.py) and its backends,
chosen by the URL that names a store.

Every state change is one transaction, and the event that reports a change
is written in the same transaction as the change itself:

    with store.transaction() as tx:
        tx.update_request(request.id, state=RequestState.CANCELLED, finished_at=now)
        tx.add_event(REQUEST_CANCELLED, request_id=request.id)

`Store.transaction()` starts a write transaction, `read()` a read-only
snapshot. `open_store(url)` opens the store a URL names, by its scheme:

    sqlite:///<absolute path of the database file>    SQLiteStore (sqlite.py)
    postgresql://<user>@<host>[:<port>]/<database>     PostgresStore (postgres.py; postgres:// too)

`checkout_store(checkout)` opens an integration checkout's own store, at
`checkout_url(checkout)` (`sqlite:///<checkout>/.convoy/state.db`), and
says what to do when nothing was submitted there yet.

A backend is one module `store/<name>.py` that implements `Store` and
`Transaction` and has `open_url(url, *, create, readonly)`,
`stored_version(url)` and `upgrade_url(url)` (what `convoy db version` and
`convoy db upgrade` call, through `stored_version` and `upgrade_store`
here), registered under its schemes in `BACKENDS`. A backend's module is
imported when a URL asks for it, so its client library is needed only by
its users (psycopg by the PostgreSQL store's; sqlite.py always is: its
names are re-exported here).
"""

from __future__ import annotations

import importlib
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any, Optional

from convoy.errors import ConvoyError
from convoy.store.base import (
    DB_NAME, MAX_ID, STATE_DIR, Store, Transaction, has_state, iso, now, shown_url, state_dir,
)
# BUSY_TIMEOUT_MS is read where it is defined: patch convoy.store.sqlite's, not this name.
from convoy.store.sqlite import BUSY_TIMEOUT_MS, SCHEMA_VERSION, SQLiteStore
from convoy.store.sqlite_tx import SQLiteTransaction
from convoy.untrusted import printable

__all__ = [
    "BACKENDS", "BUSY_TIMEOUT_MS", "DB_NAME", "MAX_ID", "SCHEMA_VERSION", "STATE_DIR", "SQLiteStore",
    "SQLiteTransaction", "Store", "Transaction", "checkout_store", "checkout_url", "has_state", "iso", "now",
    "open_store", "shown_url", "state_dir", "stored_version", "upgrade_store",
]

# URL scheme -> the module (in this package) whose open_url(url, *, create, readonly) opens it.
BACKENDS = {"sqlite": "sqlite", "postgresql": "postgres", "postgres": "postgres"}

_EXTRAS = {"postgres": "postgresql"}  # a backend's module -> the extra of pyproject.toml that installs its client
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def _backend(url: str) -> Any:
    """The module of the backend that opens `url`; ConvoyError for a URL no backend opens."""
    scheme = _SCHEME.match(url)
    name = scheme.group(1).lower() if scheme else ""
    if name not in BACKENDS:
        what = f"unknown scheme '{printable(name)}'" if name else "no scheme"
        raise ConvoyError(
            f"store URL {shown_url(url)}: {what} (known: {', '.join(sorted(BACKENDS))}); "
            "use sqlite:///<absolute path of the database file> or postgresql://<user>@<host>/<database>"
        )
    try:
        return importlib.import_module(f"{__name__}.{BACKENDS[name]}")
    except ModuleNotFoundError as e:  # its client library (psycopg) is not installed
        if (e.name or "convoy").split(".")[0] == "convoy":
            raise
        raise ConvoyError(f"store URL {shown_url(url)}: its store needs the Python package {e.name}, which is not "
                          f"installed; run: pip install 'convoy[{_EXTRAS.get(BACKENDS[name], BACKENDS[name])}]'"
                          ) from None


def open_store(url: str, *, create: bool = True, readonly: bool = False) -> Store:
    """The store that `url` names (see BACKENDS).

    `readonly`: for commands that only look (no write lock taken, nothing
    created or migrated); it implies not `create`. Without `create`, the
    store must exist already. ConvoyError for a URL no backend opens.
    """
    return _backend(url).open_url(url, create=create, readonly=readonly)


def stored_version(url: str) -> Optional[str]:
    """The schema version the store at `url` holds, as stored (None: it has none yet); changes nothing."""
    return _backend(url).stored_version(url)


def upgrade_store(url: str) -> Optional[int]:
    """Creates the store at `url`, or migrates it to SCHEMA_VERSION; returns
    the version it was at (None: it was empty). ConvoyError for a store
    newer than this convoy."""
    return _backend(url).upgrade_url(url)


def checkout_url(checkout: Path) -> str:
    """The URL of the integration checkout's own store:
    `sqlite:///<checkout>/.convoy/state.db` (the path percent-encoded)."""
    path = Path(checkout).absolute() / STATE_DIR / DB_NAME
    return f"sqlite://{urllib.parse.quote_from_bytes(os.fsencode(path))}"


def checkout_store(checkout: Path, *, create: bool = True, readonly: bool = False) -> Store:
    """The store of the integration checkout `checkout` (.convoy/state.db).

    `readonly`: SQLite's mode=ro, for commands that only look (no write
    lock taken, nothing created or migrated); it implies not `create`.
    """
    if not has_state(checkout) and (readonly or not create):
        raise ConvoyError(
            f"no convoy state in {printable(checkout)} ({STATE_DIR}/{DB_NAME} does not exist): nothing was "
            "submitted here yet; run: convoy submit --component=<name> --version=<version>"
        )
    state_dir(checkout, create=not readonly)
    return open_store(checkout_url(checkout), create=create, readonly=readonly)
