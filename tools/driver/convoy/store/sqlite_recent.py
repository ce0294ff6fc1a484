"""The SQL of the transaction's reads of what is recent: the newest requests
in some states, the stages of the newest merged requests, the newest
releases; `RecentReads(conn)` is a collaborator of SQLiteTransaction,
which forwards those methods of `Transaction` to it.

They are what `convoy serve`'s status and page show, read without reading
the history: each is a few lookups in an index from its newest end, so its
cost depends on how much it returns, not on how many requests the store
has kept (`GET /api/status` of a store of 1,000 requests read every one of
them to keep 20). The indexes are the schema's own: `requests_by_state
(state, id)` (and `requests_by_kind (kind, state, id)` from schema version
4), and the unique keys of builds `(request_id, number)` and of stages
`(build_id, position)`; tests/store/test_recent_reads.py checks the plans.

Only the merge queue's requests count: from schema version 4 a request
has a `kind`, and a try's (`convoy try`) is never listed here. A database
from before it is read as it is (every request is the merge queue's).
"""

from __future__ import annotations

import sqlite3
from typing import Iterable

from convoy.models import BuildState, Release, Request, RequestState, Stage, StageState
from convoy.store.rows import as_release, as_request, as_stage

MERGE_QUEUE = "request"  # requests.kind of the merge queue's requests (schema version 4; a try's is 'try')


class RecentReads:
    """`Transaction.latest_requests`, `merged_stages` and `latest_releases`, in SQL, on `conn`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def latest_requests(self, states: Iterable[RequestState], limit: int) -> list[Request]:
        # One look per state at the newest end of its index, then the rows themselves by id.
        kind, ids = self._queue_only(), []
        for state in dict.fromkeys(RequestState(s).value for s in states):
            ids += [row[0] for row in self.conn.execute(
                f"SELECT id FROM requests WHERE state = ?{kind} ORDER BY id DESC LIMIT ?", (state, limit))]
        newest = sorted(ids, reverse=True)[:max(0, limit)]
        if not newest:
            return []
        rows = self.conn.execute(
            f"SELECT * FROM requests WHERE id IN ({', '.join('?' for _ in newest)}) ORDER BY id DESC", newest)
        return [as_request(row) for row in rows]

    def merged_stages(self, limit: int) -> list[Stage]:
        rows = self.conn.execute(
            "SELECT stages.* FROM stages JOIN builds ON builds.id = stages.build_id "
            f"WHERE builds.request_id IN (SELECT id FROM requests WHERE state = ?{self._queue_only()} "
            "                             ORDER BY id DESC LIMIT ?) "
            "AND builds.state = ? AND stages.state = ? "
            "ORDER BY builds.request_id, builds.number, stages.position",
            (RequestState.MERGED.value, limit, BuildState.SUCCEEDED.value, StageState.SUCCEEDED.value))
        return [as_stage(row) for row in rows]

    def latest_releases(self, limit: int) -> list[Release]:
        rows = self.conn.execute("SELECT * FROM releases ORDER BY id DESC LIMIT ?", (limit,))
        return [as_release(row) for row in rows]

    def _queue_only(self) -> str:
        """The condition that keeps the merge queue's requests ('' before schema version 4: all are)."""
        if not hasattr(self, "_queue_kind"):
            columns = {row[1] for row in self.conn.execute("PRAGMA table_info(requests)")}
            self._queue_kind = f" AND kind = '{MERGE_QUEUE}'" if "kind" in columns else ""
        return self._queue_kind
