"""Schema version 5: requests.priority and the table test_results. A version-4 database is
migrated in place when a writer opens it (every request normal, no results); a reader reads it
as it is. `passed_on_main` counts only results of a succeeded build of a merged request.
"""

from __future__ import annotations

from convoy.models import PRIORITY_HIGH, BuildState, RequestState
from convoy.store import SCHEMA_VERSION, SQLiteStore

from tests.store.test_schema_migration import columns, make_at, raw


def test_a_version_4_database_gets_priorities_and_results(tmp_path):
    db = make_at(tmp_path / "state.db", 4)
    assert "priority" not in columns(db, "requests")
    with SQLiteStore(db, readonly=True) as store, store.read() as tx:  # a reader migrates nothing
        assert [r.priority for r in tx.requests()] == [0, 0]
        assert tx.test_results() == [] and tx.passed_on_main("//t:t", "rover") is False
    assert raw(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [("4",)]
    with SQLiteStore(db) as store, store.transaction() as tx:
        assert [r.priority for r in tx.requests()] == [0, 0]
        request = tx.insert_request(component="messages", version="v1.6.0", requested_by="me",
                                    priority=PRIORITY_HIGH)
        assert tx.request(request.id).priority == PRIORITY_HIGH
    assert "priority" in columns(db, "requests")
    assert raw(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]


def test_passed_on_main_counts_merged_builds_only(tmp_path):
    with SQLiteStore(tmp_path / "state.db") as store, store.transaction() as tx:
        merged = tx.insert_request(component="messages", version="v1", requested_by="me")
        rejected = tx.insert_request(component="messages", version="v2", requested_by="me")
        good = tx.insert_build(merged.id, "a" * 40, "b" * 40)
        bad = tx.insert_build(rejected.id, "b" * 40, "c" * 40)
        tx.update_build(good.id, state=BuildState.SUCCEEDED)
        tx.update_build(bad.id, state=BuildState.FAILED)
        tx.update_request(merged.id, state=RequestState.MERGED)
        tx.update_request(rejected.id, state=RequestState.REJECTED)
        row = dict(configuration="rover", stage="integration", request_id=merged.id, build_id=good.id)
        tx.add_test_results([dict(row, target="//t:old", status="passed"),
                             dict(row, target="//t:flaky", status="flaky", attempts=2),
                             dict(row, target="//t:red", status="failed")])
        tx.add_test_results([dict(row, target="//t:new", status="passed", request_id=rejected.id,
                                  build_id=bad.id, rigs=["rover-rigs-1", "rover-rigs-2"])])
        assert tx.passed_on_main("//t:old", "rover") and tx.passed_on_main("//t:flaky", "rover")
        assert not tx.passed_on_main("//t:old", "drone")  # another configuration
        assert not tx.passed_on_main("//t:red", "rover")  # its last result on main failed
        assert not tx.passed_on_main("//t:new", "rover")  # only ever run on a rejected candidate
        newest = tx.test_results(target="//t:new")
        assert [(r.status, r.rigs, r.attempts) for r in newest] == [("passed", ("rover-rigs-1", "rover-rigs-2"), 1)]
        assert [r.target for r in tx.test_results(limit=2)] == ["//t:new", "//t:red"]
