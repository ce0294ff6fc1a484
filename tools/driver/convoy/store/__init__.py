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

`checkout_store(checkout)` opens an integration checkout's own store, at
`checkout_url(checkout)` (`sqlite:///<checkout>/.convoy/state.db`), and
says what to do when nothing was submitted there yet.

A new backend (the PostgreSQL store for several driver processes,
DESIGN.md, "Scaling out") is one module `store/<scheme>.py` that implements
`Store` and `Transaction` and has `open_url(url, *, create, readonly)`,
registered under its scheme in `BACKENDS`. A backend's module is imported
when a URL asks for it, so its client library is needed only by its users
(sqlite.py always is: its names are re-exported here).
"""

from __future__ import annotations

import importlib
import os
import re
import urllib.parse
from pathlib import Path

from convoy.errors import ConvoyError
from convoy.store.base import DB_NAME, MAX_ID, STATE_DIR, Store, Transaction, has_state, iso, now, state_dir
# BUSY_TIMEOUT_MS is read where it is defined: patch convoy.store.sqlite's, not this name.
from convoy.store.sqlite import BUSY_TIMEOUT_MS, SCHEMA_VERSION, SQLiteStore
from convoy.store.sqlite_tx import SQLiteTransaction
from convoy.untrusted import printable, redact_userinfo

__all__ = [
    "BACKENDS", "BUSY_TIMEOUT_MS", "DB_NAME", "MAX_ID", "SCHEMA_VERSION", "STATE_DIR", "SQLiteStore",
    "SQLiteTransaction", "Store", "Transaction", "checkout_store", "checkout_url", "has_state", "iso", "now",
    "open_store", "state_dir",
]

# URL scheme -> the module (in this package) whose open_url(url, *, create, readonly) opens it.
BACKENDS = {"sqlite": "sqlite"}

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def open_store(url: str, *, create: bool = True, readonly: bool = False) -> Store:
    """The store that `url` names (see BACKENDS).

    `readonly`: for commands that only look (no write lock taken, nothing
    created or migrated); it implies not `create`. Without `create`, the
    store must exist already. ConvoyError for a URL no backend opens.
    """
    scheme = _SCHEME.match(url)
    name = scheme.group(1).lower() if scheme else ""
    if name not in BACKENDS:
        what = f"unknown scheme '{printable(name)}'" if name else "no scheme"
        raise ConvoyError(
            f"store URL {printable(redact_userinfo(url))}: {what} (known: {', '.join(sorted(BACKENDS))}); "
            "use sqlite:///<absolute path of the database file>"
        )
    backend = importlib.import_module(f"{__name__}.{BACKENDS[name]}")
    return backend.open_url(url, create=create, readonly=readonly)


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
