"""The reads of what is recent (convoy/store/sqlite_recent.py): `latest_requests`,
`merged_stages` and `latest_releases` return what reading the whole store
and keeping the newest would (a try, from schema version 4, is not the
merge queue's; a version-1 database is read as it is), and cost the same
whatever the history behind them: SQLite runs exactly as many instructions
over 100 requests and the same 40 newest as over 500 and those 40, and the
plans look things up in indexes, from their newest end, with no sort.
"""

from __future__ import annotations

import random

import pytest

from convoy import models
from convoy.models import BuildState, RequestState, StageState
from convoy.store import SQLiteStore

from tests.store.test_schema_migration import make_v1

FINISHED = tuple(s for s in RequestState if s.is_final)
STAGES = ("build", "integration", "hardware")
LIMITS = (0, 1, 3, 20, 1000)
STAGES_OF = {  # a build's stages, by how the build ended
    BuildState.SUCCEEDED: (StageState.SUCCEEDED,) * 3,
    BuildState.FAILED: (StageState.SUCCEEDED, StageState.FAILED, StageState.SKIPPED),
    BuildState.BUILDING: (StageState.SUCCEEDED, StageState.BUILDING, StageState.WAITING),
}


def request_in(tx, state: RequestState, rng: random.Random, n: int):
    """A request that reached `state` as `convoy process` leaves it: its builds (a merged one may have
    failed once before), their stages, a release for a merged one."""
    at = 1000.0 + n * 100
    request = tx.insert_request(component="messages", version=f"v1.{n}.0", commit=f"{n:040x}", requested_by="t",
                                created_at=at, updated_at=at)
    if state in (RequestState.QUEUED, RequestState.CANCELLED, RequestState.SUPERSEDED):
        tx.update_request(request.id, state=state, finished_at=None if state == RequestState.QUEUED else at + 1)
        return request
    outcomes = {RequestState.MERGED: [BuildState.SUCCEEDED], RequestState.TESTING: [BuildState.BUILDING],
                RequestState.REJECTED: [BuildState.FAILED], RequestState.ERROR: [BuildState.FAILED]}[state]
    if state == RequestState.MERGED and rng.random() < 0.3:
        outcomes = [BuildState.FAILED, BuildState.SUCCEEDED]  # failed (an infrastructure error), then passed
    for outcome in outcomes:
        build = tx.insert_build(request.id, "b" * 40, "c" * 40)
        for position, (name, state_of_stage) in enumerate(zip(STAGES, STAGES_OF[outcome])):
            stage = tx.insert_stage(build.id, position, name, "test")
            tx.insert_task(stage.id, build.id, "rover")
            took = rng.uniform(10, 100)
            if state_of_stage in (StageState.SUCCEEDED, StageState.FAILED):
                tx.update_stage(stage.id, state=state_of_stage, started_at=at, finished_at=at + took)
                at += took
            else:
                tx.update_stage(stage.id, state=state_of_stage, started_at=at if state_of_stage == StageState.BUILDING
                                else None)
        tx.update_build(build.id, state=outcome, finished_at=None if outcome == BuildState.BUILDING else at)
    tx.update_request(request.id, state=state, finished_at=None if state == RequestState.TESTING else at)
    if state == RequestState.MERGED:
        tx.insert_release(request_id=request.id, build_id=build.id, tag=f"v2026.1.{n}", commit="c" * 40, notes="")
    return request


def fill(store, history: int, seed: int = 7) -> None:
    """`history` finished requests of every kind, then the same 40 newest (the same seed: the same ones)."""
    rng = random.Random(seed)
    finished = (RequestState.MERGED,) * 6 + (RequestState.REJECTED, RequestState.CANCELLED,
                                            RequestState.SUPERSEDED, RequestState.ERROR)
    with store.transaction() as tx:
        for n in range(history):
            request_in(tx, rng.choice(finished), rng, n)
        tx.insert_release(request_id=None, build_id=None, tag="v2026.0.0-by-hand", commit="d" * 40, notes="")
    rng = random.Random(seed + 1)
    with store.transaction() as tx:
        for n in range(history, history + 40):
            request_in(tx, rng.choice(finished + (RequestState.QUEUED, RequestState.TESTING)), rng, n)


@pytest.fixture
def filled(store):
    fill(store, 60)
    return store


def test_the_latest_finished_requests_are_the_newest_of_all(filled):
    with filled.read() as tx:
        everything = tx.requests()
        for limit in LIMITS:
            newest = [r for r in reversed(everything) if r.state.is_final][:limit]
            assert tx.latest_requests(FINISHED, limit) == newest
            assert tx.latest_requests([RequestState.MERGED], limit) == [
                r for r in reversed(everything) if r.state == RequestState.MERGED][:limit]
        assert tx.latest_requests([], 5) == []
        assert [r.state for r in tx.latest_requests([RequestState.TESTING, RequestState.TESTING], 100)] == [
            RequestState.TESTING] * len(tx.requests([RequestState.TESTING]))


def test_merged_stages_are_the_passed_stages_of_the_passed_builds_of_the_newest_merged(filled):
    with filled.read() as tx:
        merged = tx.requests([RequestState.MERGED])
        assert any(b.state == BuildState.FAILED for r in merged for b in tx.builds(r.id))  # one failed, then passed
        for limit in LIMITS[1:]:
            expected = [stage for r in merged[-limit:] for build in tx.builds(r.id)
                        if build.state == BuildState.SUCCEEDED
                        for stage in tx.stages(build.id) if stage.state == StageState.SUCCEEDED]
            assert tx.merged_stages(limit) == expected
        assert tx.merged_stages(0) == []


def test_the_latest_releases_are_the_newest(filled):
    with filled.read() as tx:
        everything = tx.releases()
        for limit in LIMITS:
            assert tx.latest_releases(limit) == everything[::-1][:limit]


def test_tries_are_not_the_merge_queues(store):
    kind = getattr(models, "KIND_TRY", None)
    if kind is None:
        pytest.skip("no tries in this convoy (schema version 4 adds them)")
    with store.transaction() as tx:
        kept = request_in(tx, RequestState.MERGED, random.Random(1), 1)
        tried = tx.insert_request(component="messages", version="v9.0.0", requested_by="t", kind=kind)
        tx.update_request(tried.id, state=RequestState.REJECTED, finished_at=5000.0)
    with store.read() as tx:
        assert [r.id for r in tx.latest_requests(FINISHED, 10)] == [kept.id]
        assert {s.build_id for s in tx.merged_stages(10)} == {tx.builds(kept.id)[-1].id}


def test_a_database_from_before_kinds_is_read_as_it_is(tmp_path):
    db = make_v1(tmp_path / "state.db")  # request 1 merged, 2 queued; no builds, no releases
    with SQLiteStore(db, readonly=True) as store, store.read() as tx:
        assert [(r.id, r.state) for r in tx.latest_requests(FINISHED, 5)] == [(1, RequestState.MERGED)]
        assert tx.merged_stages(5) == [] and tx.latest_releases(5) == []


def instructions(tx, read) -> int:
    """How many instructions SQLite's VM runs for `read(tx)` (the cost, without a clock)."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    tx.conn.set_progress_handler(tick, 1)
    try:
        read(tx)
    finally:
        tx.conn.set_progress_handler(None, 1)
    return count[0]


# Each over what the 40 newest requests hold (and, for a state rarer there, what the 100 before have).
READS = {
    "latest finished": lambda tx: tx.latest_requests(FINISHED, 5),
    "latest merged": lambda tx: tx.latest_requests([RequestState.MERGED], 5),
    "merged stages": lambda tx: tx.merged_stages(5),
    "latest releases": lambda tx: tx.latest_releases(5),
}


@pytest.mark.parametrize("name", sorted(READS))
def test_the_cost_does_not_grow_with_the_history(tmp_path, name):
    costs = []
    for history in (100, 500):
        with SQLiteStore(tmp_path / f"{history}.db") as store:
            fill(store, history)
            with store.read() as tx:
                read = READS[name]
                read(tx)  # the kind of database (schema 4's `kind`?), asked once per transaction
                costs.append(instructions(tx, read))
    small, large = costs
    assert large == small, f"{name}: {small} instructions after 100 requests, {large} after 500"


@pytest.mark.parametrize("name", sorted(READS))
def test_the_plans_use_indexes_from_their_newest_end(store, name):
    fill(store, 20)
    statements = []
    with store.read() as tx:
        READS[name](tx)
        tx.conn.set_trace_callback(statements.append)
        try:
            READS[name](tx)
        finally:
            tx.conn.set_trace_callback(None)
        plans = [row["detail"] for sql in statements for row in tx.conn.execute("EXPLAIN QUERY PLAN " + sql)]
    assert statements and plans
    assert not [p for p in plans if "TEMP B-TREE" in p], plans  # read in order: nothing sorted
    assert not [p for p in plans if p.startswith("SCAN") and p != "SCAN releases"], plans  # only releases from its end
