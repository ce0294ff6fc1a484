"""The SQL of the tests' results (table test_results, schema version 5): one
row per test target per task, written when the task ends; `TestResults(conn)`
is a collaborator of SQLiteTransaction, which forwards those methods of
`Transaction` to it.

`passed_on_main(target, configuration)` is what the queue asks before it
runs a failing test again: the target's latest result in a succeeded build
of a merged request (a build whose candidate became main) was a pass. A
target with no such result is new on main, and its failure is never retried
into a merge.
"""

from __future__ import annotations

import sqlite3
from typing import Iterable, Optional

from convoy.models import BuildState, RequestState, TestResult
from convoy.store.base import now
from convoy.store.rows import as_test_result, result_values, results_sql

PASSING = ("passed", "flaky")  # bep.PASSED, bep.FLAKY


class TestResults:
    """`Transaction.add_test_results`, `test_results` and `passed_on_main`, in SQL."""

    __test__ = False  # not a pytest class

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def _has_results(self) -> bool:
        """Whether the database has the table (a read-only open of a database before version 5 has not)."""
        if not hasattr(self, "_results_table"):
            self._results_table = self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'test_results'").fetchone() is not None
        return self._results_table

    def add_test_results(self, rows: Iterable[dict]) -> None:
        ts = now()
        self.conn.executemany(
            "INSERT INTO test_results (target, configuration, stage, status, attempts, rigs, detail, request_id, "
            "build_id, task_id, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", result_values(rows, ts))

    def test_results(self, *, target: Optional[str] = None, configuration: Optional[str] = None,
                     task_id: Optional[int] = None, limit: Optional[int] = None) -> list[TestResult]:
        if not self._has_results():
            return []
        sql, args = results_sql("?", target=target, configuration=configuration, task_id=task_id)
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [as_test_result(row) for row in self.conn.execute(sql, args)]

    def passed_on_main(self, target: str, configuration: str) -> bool:
        if not self._has_results():
            return False
        row = self.conn.execute(
            "SELECT test_results.status FROM test_results "
            "JOIN builds ON builds.id = test_results.build_id JOIN requests ON requests.id = builds.request_id "
            "WHERE test_results.target = ? AND test_results.configuration = ? "
            "AND builds.state = ? AND requests.state = ? ORDER BY test_results.id DESC LIMIT 1",
            (target, configuration, BuildState.SUCCEEDED.value, RequestState.MERGED.value)).fetchone()
        return row is not None and row[0] in PASSING

