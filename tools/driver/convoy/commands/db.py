"""`convoy db`: the schema of the queue's store.

    convoy db version [--json]     # the schema version the store holds, and this convoy's
    convoy db upgrade              # creates the schema in an empty store, or migrates it to this convoy's

The store is the checkout's (CONVOY_STORE_URL, else convoy.yaml's `store`,
else .convoy/state.db). A PostgreSQL store at an older schema version is
refused by every other command until `convoy db upgrade` migrates it (every
step at once, in one transaction); one at a newer version is refused until
convoy is upgraded. An SQLite store is migrated by any command that writes
it, so upgrade there is that same migration, done now. `version` changes
nothing. The store's URL is shown without its password.
"""

from __future__ import annotations

import argparse
import json

from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.store import SCHEMA_VERSION, checkout_url, stored_version, upgrade_store
from convoy.untrusted import printable

USAGE = "convoy db version [--json] | convoy db upgrade"


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_json(parser)


def run(opts: argparse.Namespace, args: list[str]) -> int:
    if not args or args[0] not in ("version", "upgrade"):
        got = f"got: {printable(args[0])}" if args else "got none"
        raise ConvoyError(f"convoy db needs a subcommand, version or upgrade ({got}); {USAGE}")
    what, rest = args[0], args[1:]
    common.no_arguments(f"db {what}", rest)
    root = common.checkout(opts.repo)
    url = common.store_url(root) or checkout_url(root)
    shown = common.shown_store(root)
    if what == "version":
        stored = stored_version(url)
        if opts.json:
            print(json.dumps({"store": shown, "schema_version": stored, "convoy_schema_version": SCHEMA_VERSION}))
        else:
            held = f"schema version {printable(stored)}" if stored is not None else "no schema yet (empty)"
            print(f"store {shown}: {held}; this convoy's: {SCHEMA_VERSION}")
        return 0
    before = upgrade_store(url)
    if opts.json:
        print(json.dumps({"store": shown, "from": before, "schema_version": SCHEMA_VERSION}))
    elif before is None:
        print(f"store {shown}: created the schema, version {SCHEMA_VERSION}")
    elif before == SCHEMA_VERSION:
        print(f"store {shown}: already at schema version {SCHEMA_VERSION}; nothing to do")
    else:
        print(f"store {shown}: migrated the schema from version {before} to {SCHEMA_VERSION}")
    return 0
