"""The PostgreSQL SQL of the transaction's small tables (meta, open groups,
deliveries, plugin cursors, leases), of the tests' results and of the
reads of what is recent: `PgTables(conn)` is a collaborator of
PostgresTransaction, which forwards those methods of `Transaction` to it.
Each is the SQL of its SQLite twin (sqlite_meta.py, sqlite_results.py,
sqlite_recent.py) in PostgreSQL's words, on the current schema only (an
older PostgreSQL store is refused, never read as it is).

Names are ordered by their bytes (`COLLATE "C"`), as SQLite orders them,
whatever the database's collation.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from convoy.models import (
    BuildState, Delivery, LeaseRow, OpenGroup, Release, Request, RequestBump, RequestState, Stage, StageState, TestResult,
)
from convoy.store.base import now
from convoy.store.rows import (
    as_delivery, as_open_group, as_release, as_request, as_stage, as_test_result, bumps_json, check_meta,
    result_values, results_sql,
)

PASSING = ("passed", "flaky")  # bep.PASSED, bep.FLAKY
MERGE_QUEUE = "request"  # requests.kind of the merge queue's requests


def sql_limit(limit: int) -> Optional[int]:
    """A LIMIT as SQLite reads it: a negative one is none (PostgreSQL's LIMIT NULL)."""
    return None if limit < 0 else limit


class PgTables:
    """The small tables, the tests' results and what is recent, in SQL, on `conn` (a psycopg connection)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def _one(self, sql: str, args: Iterable[Any] = ()) -> Optional[dict]:
        return self.conn.execute(sql, tuple(args)).fetchone()

    def _all(self, sql: str, args: Iterable[Any] = ()) -> list[dict]:
        return self.conn.execute(sql, tuple(args)).fetchall()

    # meta
    def meta(self, key: str) -> Optional[str]:
        row = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        check_meta(key, value)
        self.conn.execute("INSERT INTO meta (key, value) VALUES (%s, %s) "
                          "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (key, value))

    # open groups
    def open_group(self, name: str) -> Optional[OpenGroup]:
        row = self._one("SELECT * FROM open_groups WHERE name = %s", (name,))
        return None if row is None else as_open_group(row)

    def open_groups(self) -> list[OpenGroup]:
        return [as_open_group(r) for r in self._all('SELECT * FROM open_groups ORDER BY name COLLATE "C"')]

    def put_open_group(self, name: str, bumps: Iterable[RequestBump], requested_by: Optional[str]) -> OpenGroup:
        self.conn.execute(
            "INSERT INTO open_groups (name, bumps, requested_by, created_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET bumps = EXCLUDED.bumps",
            (name, bumps_json(bumps), requested_by, now()))
        return self.open_group(name)

    def delete_open_group(self, name: str) -> None:
        self.conn.execute("DELETE FROM open_groups WHERE name = %s", (name,))

    # deliveries
    def delivery(self, forge: str, delivery: str) -> Optional[Delivery]:
        row = self._one("SELECT * FROM deliveries WHERE forge = %s AND delivery = %s", (forge, delivery))
        return None if row is None else as_delivery(row)

    def record_delivery(self, forge: str, delivery: str, *, request_id: Optional[int], outcome: str) -> Delivery:
        self.conn.execute("INSERT INTO deliveries (forge, delivery, request_id, outcome, received_at) "
                          "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                          (forge, delivery, request_id, outcome, now()))
        return self.delivery(forge, delivery)

    # plugin cursors
    def cursor(self, plugin: str) -> Optional[int]:
        row = self._one("SELECT event_id FROM plugin_cursors WHERE plugin = %s", (plugin,))
        return None if row is None else row["event_id"]

    def set_cursor(self, plugin: str, event_id: int) -> None:
        self.conn.execute("INSERT INTO plugin_cursors (plugin, event_id) VALUES (%s, %s) "
                          "ON CONFLICT (plugin) DO UPDATE SET event_id = EXCLUDED.event_id", (plugin, event_id))

    # leases
    def acquire_lease(self, name: str, owner: str, ttl: float) -> Optional[str]:
        ts = now()
        row = self._one("SELECT owner, expires_at FROM leases WHERE name = %s", (name,))
        if row is not None and row["owner"] != owner and row["expires_at"] > ts:
            return row["owner"]
        self.conn.execute(
            "INSERT INTO leases (name, owner, expires_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at",
            (name, owner, ts + ttl))
        return None

    def release_lease(self, name: str, owner: str) -> None:
        self.conn.execute("DELETE FROM leases WHERE name = %s AND owner = %s", (name, owner))

    def leases(self) -> list[LeaseRow]:
        rows = self.conn.execute('SELECT name, owner, expires_at FROM leases ORDER BY name COLLATE "C"').fetchall()
        return [LeaseRow(row["name"], row["owner"], float(row["expires_at"])) for row in rows]

    # the tests' results
    def add_test_results(self, rows: Iterable[dict]) -> None:
        values = result_values(rows, now())
        if not values:
            return
        with self.conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO test_results (target, configuration, stage, status, attempts, rigs, detail, "
                "request_id, build_id, task_id, recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                values)

    def test_results(self, *, target: Optional[str] = None, configuration: Optional[str] = None,
                     task_id: Optional[int] = None, limit: Optional[int] = None) -> list[TestResult]:
        sql, args = results_sql("%s", target=target, configuration=configuration, task_id=task_id)
        if limit is not None:
            sql += " LIMIT %s"
            args.append(sql_limit(int(limit)))
        return [as_test_result(row) for row in self._all(sql, args)]

    def passed_on_main(self, target: str, configuration: str) -> bool:
        row = self._one(
            "SELECT test_results.status FROM test_results "
            "JOIN builds ON builds.id = test_results.build_id JOIN requests ON requests.id = builds.request_id "
            "WHERE test_results.target = %s AND test_results.configuration = %s "
            "AND builds.state = %s AND requests.state = %s ORDER BY test_results.id DESC LIMIT 1",
            (target, configuration, BuildState.SUCCEEDED.value, RequestState.MERGED.value))
        return row is not None and row["status"] in PASSING

    # what is recent
    def latest_requests(self, states: Iterable[RequestState], limit: int) -> list[Request]:
        wanted = list(dict.fromkeys(RequestState(s).value for s in states))
        if not wanted or limit <= 0:
            return []
        rows = self._all("SELECT * FROM requests WHERE kind = %s AND state = ANY(%s) ORDER BY id DESC LIMIT %s",
                         (MERGE_QUEUE, wanted, limit))
        return [as_request(row) for row in rows]

    def merged_stages(self, limit: int) -> list[Stage]:
        rows = self._all(
            "SELECT stages.* FROM stages JOIN builds ON builds.id = stages.build_id "
            "WHERE builds.request_id IN (SELECT id FROM requests WHERE state = %s AND kind = %s "
            "                             ORDER BY id DESC LIMIT %s) "
            "AND builds.state = %s AND stages.state = %s "
            "ORDER BY builds.request_id, builds.number, stages.position",
            (RequestState.MERGED.value, MERGE_QUEUE, sql_limit(limit), BuildState.SUCCEEDED.value,
             StageState.SUCCEEDED.value))
        return [as_stage(row) for row in rows]

    def latest_releases(self, limit: int) -> list[Release]:
        return [as_release(row) for row in self._all("SELECT * FROM releases ORDER BY id DESC LIMIT %s",
                                                     (sql_limit(limit),))]
