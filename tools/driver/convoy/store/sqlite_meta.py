"""The SQL of the transaction's small tables: `meta` (named values),
`open_groups` (bumps held until their group is closed), `deliveries` (the
forges' webhook deliveries acted on), `plugin_cursors` (the last event each
plugin was given) and `leases` (the queue's lease); `MetaAndGroups(conn)` is
a collaborator of SQLiteTransaction, which forwards those methods of
`Transaction` to it."""

from __future__ import annotations

import sqlite3
from typing import Iterable, Optional

from convoy.models import Delivery, LeaseRow, OpenGroup, RequestBump
from convoy.store.base import now
from convoy.store.rows import as_delivery, as_open_group, bumps_json, check_meta


class MetaAndGroups:
    """`Transaction.meta`, `set_meta`, the open groups, the deliveries, the
    plugins' cursors and the leases, in SQL, on `conn`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def meta(self, key: str) -> Optional[str]:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        check_meta(key, value)
        self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def open_group(self, name: str) -> Optional[OpenGroup]:
        row = self.conn.execute("SELECT * FROM open_groups WHERE name = ?", (name,)).fetchone()
        return None if row is None else as_open_group(row)

    def open_groups(self) -> list[OpenGroup]:
        return [as_open_group(r) for r in self.conn.execute("SELECT * FROM open_groups ORDER BY name").fetchall()]

    def put_open_group(self, name: str, bumps: Iterable[RequestBump], requested_by: Optional[str]) -> OpenGroup:
        text = bumps_json(bumps)
        self.conn.execute(
            "INSERT INTO open_groups (name, bumps, requested_by, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET bumps = excluded.bumps",
            (name, text, requested_by, now()),
        )
        return self.open_group(name)

    def delete_open_group(self, name: str) -> None:
        self.conn.execute("DELETE FROM open_groups WHERE name = ?", (name,))

    def delivery(self, forge: str, delivery: str) -> Optional[Delivery]:
        row = self.conn.execute("SELECT * FROM deliveries WHERE forge = ? AND delivery = ?",
                                (forge, delivery)).fetchone()
        return None if row is None else as_delivery(row)

    def record_delivery(self, forge: str, delivery: str, *, request_id: Optional[int], outcome: str) -> Delivery:
        self.conn.execute("INSERT OR IGNORE INTO deliveries (forge, delivery, request_id, outcome, received_at) "
                          "VALUES (?, ?, ?, ?, ?)", (forge, delivery, request_id, outcome, now()))
        return self.delivery(forge, delivery)

    def cursor(self, plugin: str) -> Optional[int]:
        row = self.conn.execute("SELECT event_id FROM plugin_cursors WHERE plugin = ?", (plugin,)).fetchone()
        return None if row is None else row[0]

    def set_cursor(self, plugin: str, event_id: int) -> None:
        self.conn.execute(
            "INSERT INTO plugin_cursors (plugin, event_id) VALUES (?, ?) "
            "ON CONFLICT(plugin) DO UPDATE SET event_id = excluded.event_id",
            (plugin, event_id),
        )
    def acquire_lease(self, name: str, owner: str, ttl: float) -> Optional[str]:
        ts = now()
        row = self.conn.execute("SELECT owner, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
        if row is not None and row["owner"] != owner and row["expires_at"] > ts:
            return row["owner"]
        self.conn.execute(
            "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
            (name, owner, ts + ttl),
        )
        return None

    def release_lease(self, name: str, owner: str) -> None:
        self.conn.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))

    def leases(self) -> list[LeaseRow]:
        rows = self.conn.execute("SELECT name, owner, expires_at FROM leases ORDER BY name")
        return [LeaseRow(row["name"], row["owner"], float(row["expires_at"])) for row in rows]

