"""The store's contract (convoy/store/base.py), on every backend: each test
runs twice, on SQLite and on a real PostgreSQL (`any_store` of
tests/conftest.py: a private cluster of Debian's binaries, a new database
per test). Every method of `Transaction` is called and what it returns is
checked, with the same expectations for both: the same records, the same
ids in the same order, the same JSON fields, the same refusals. Then what
only a server has: the schema's versions (`convoy db upgrade`), a server
that is down, and a real `convoy submit` and `convoy status` against it
through CONVOY_STORE_URL.
"""

from __future__ import annotations

import threading
import time

import pytest

from convoy import main, models
from convoy.errors import ConvoyError
from convoy.models import (
    KIND_TRY, BuildState, Phase, RequestBump, RequestState, StageState, TargetOutcome, TaskState,
)
from convoy.store import SCHEMA_VERSION, open_store, stored_version, upgrade_store

from tests.support.postgres import free_port
from tests.support.state import CONFIG, MANIFEST
from tests.support.store import queue

SHA = "a" * 40


def _request(tx, component="messages", version="v1.5.0", **fields):
    return tx.insert_request(component=component, version=version, commit=SHA, requested_by="t", **fields)


# --- requests ----------------------------------------------------------------------------------------


def test_a_request_is_inserted_read_and_updated_with_every_field(any_store):
    bumps = [RequestBump(component="planner", version="v2.0.0", commit="b" * 40, commit_given=True)]
    with any_store.transaction() as tx:
        request = _request(tx, commit_given=True, archive_url="https://example.com/m.tar.gz", strip_prefix="m-1",
                           configuration="rover", bumps=bumps, priority=10)
        assert request.id == 1
        assert (request.component, request.version, request.commit, request.commit_given) == (
            "messages", "v1.5.0", SHA, True)
        assert (request.archive_url, request.strip_prefix, request.configuration) == (
            "https://example.com/m.tar.gz", "m-1", "rover")
        assert request.state == RequestState.QUEUED and request.phase is None and request.attempts == 0
        assert request.bumps == tuple(bumps) and request.components == ("messages", "planner")
        assert request.kind == models.KIND_REQUEST and request.priority == 10
        assert request.created_at == request.updated_at and request.created_at <= time.time()
        assert request.finished_at is None and request.total_seconds == 0.0
        updated = tx.update_request(request.id, state=RequestState.TESTING, phase=Phase.BUILDING, attempts=2,
                                    base_commit="c" * 40, candidate_commit="d" * 40, tag="v2026.12.1",
                                    detail="building", cancel_requested=True, finished_at=123.5, bumps=[])
        assert updated.state == RequestState.TESTING and updated.phase == Phase.BUILDING
        assert (updated.attempts, updated.base_commit, updated.candidate_commit, updated.tag, updated.detail) == (
            2, "c" * 40, "d" * 40, "v2026.12.1", "building")
        assert updated.cancel_requested is True and updated.finished_at == 123.5 and updated.bumps == ()
        assert updated.updated_at >= request.updated_at
        tx.add_request_time(request.id, 10.5, 7.25, 1.0)
        tx.add_request_time(request.id, 1.0, 1.0, 1.0)
    with any_store.read() as tx:
        read = tx.request(request.id)
        assert (read.total_seconds, read.bazel_seconds, read.git_seconds) == (11.5, 8.25, 2.0)
        assert read.state == RequestState.TESTING and read.cancel_requested is True
        assert tx.request(999) is None and tx.request(2**63) is None


def test_requests_are_listed_oldest_first_by_state_component_and_kind(any_store):
    with any_store.transaction() as tx:
        first = _request(tx, "messages")
        second = _request(tx, "planner", bumps=[RequestBump(component="messages", version="v1.6.0")])
        third = _request(tx, "firmware", state=RequestState.MERGED)
        attempt = _request(tx, "messages", kind=KIND_TRY)
        assert [first.id, second.id, third.id, attempt.id] == [1, 2, 3, 4]
    with any_store.read() as tx:
        assert [r.id for r in tx.requests()] == [1, 2, 3]
        assert [r.id for r in tx.requests([RequestState.QUEUED])] == [1, 2]
        assert [r.id for r in tx.requests(["merged", RequestState.QUEUED])] == [1, 2, 3]
        assert [r.id for r in tx.requests(component="messages")] == [1, 2]  # a group's other bump counts
        assert [r.id for r in tx.requests([RequestState.MERGED], component="messages")] == []
        assert [r.id for r in tx.requests(kind=KIND_TRY)] == [4]
        assert tx.request(4).is_try
        assert tx.requests([]) == []


def test_updating_refuses_unknown_columns_and_missing_rows(any_store):
    with any_store.transaction() as tx:
        request = _request(tx)
        with pytest.raises(ValueError):
            tx.insert_request(component="m", version="v1", requested_by="t", colour="red")
        with pytest.raises(ValueError):
            tx.update_request(request.id, id=5)
        with pytest.raises(KeyError):
            tx.update_request(999, detail="x")
        build = tx.insert_build(request.id, "b" * 40, "c" * 40)
        with pytest.raises(ValueError):
            tx.update_build(build.id, request_id=2)
        with pytest.raises(KeyError):
            tx.update_build(999, detail="x")
        assert tx.update_build(build.id) == build  # nothing to change


# --- builds, stages, tasks ---------------------------------------------------------------------------


def test_builds_are_numbered_per_request_and_found_by_commit(any_store):
    with any_store.transaction() as tx:
        one, two = _request(tx), _request(tx, "planner")
        a = tx.insert_build(one.id, "b" * 40, "c" * 40)
        b = tx.insert_build(two.id, "b" * 40, "c" * 40)
        c = tx.insert_build(one.id, "e" * 40, "f" * 40)
        assert [(x.id, x.request_id, x.number) for x in (a, b, c)] == [(1, 1, 1), (2, 2, 1), (3, 1, 2)]
        assert a.state == BuildState.BUILDING and a.finished_at is None and a.started_at <= time.time()
        assert (a.base_commit, a.candidate_commit) == ("b" * 40, "c" * 40)
        done = tx.update_build(a.id, state=BuildState.SUCCEEDED, finished_at=5.0, detail="ok")
        assert (done.state, done.finished_at, done.detail) == (BuildState.SUCCEEDED, 5.0, "ok")
    with any_store.read() as tx:
        assert [x.number for x in tx.builds(one.id)] == [1, 2]
        assert [x.id for x in tx.builds_of_commit("c" * 40)] == [1, 2]
        assert tx.builds_of_commit("0" * 40) == [] and tx.build(99) is None
        assert tx.build(a.id).state == BuildState.SUCCEEDED


def test_stages_and_tasks_with_their_targets(any_store):
    with any_store.transaction() as tx:
        build = tx.insert_build(_request(tx).id, "b" * 40, "c" * 40)
        test = tx.insert_stage(build.id, 1, "test", "test")
        compile_ = tx.insert_stage(build.id, 0, "build", "build")
        assert (test.build_id, test.position, test.name, test.command, test.state) == (
            build.id, 1, "test", "test", StageState.WAITING)
        assert [s.name for s in tx.stages(build.id)] == ["build", "test"]  # by position
        started = tx.update_stage(compile_.id, state=StageState.BUILDING, started_at=1.0)
        assert (started.state, started.started_at, started.finished_at) == (StageState.BUILDING, 1.0, None)
        rover = tx.insert_task(compile_.id, build.id, "rover")
        drone = tx.insert_task(compile_.id, build.id, "drone")
        other = tx.insert_task(test.id, build.id, "rover")
        assert (rover.stage_id, rover.build_id, rover.configuration, rover.state, rover.targets, rover.runs) == (
            compile_.id, build.id, "rover", TaskState.WAITING, (), 0)
        targets = (TargetOutcome(label="//a:t", status="PASSED", cached=True, duration_ms=12),
                   TargetOutcome(label="//a:b", status="FAILED"))
        done = tx.update_task(rover.id, state=TaskState.SUCCEEDED, slot=1, pid=4242, outcome="passed",
                              exit_code=0, log_path="/l", bep_path="/b", targets=targets, detail="d", runs=2,
                              started_at=1.0, finished_at=2.0)
        assert done.targets == targets and (done.slot, done.pid, done.exit_code, done.runs) == (1, 4242, 0, 2)
        assert (done.outcome, done.log_path, done.bep_path, done.detail) == ("passed", "/l", "/b", "d")
        with pytest.raises(ValueError):
            tx.update_task(rover.id, configuration="drone")
    with any_store.read() as tx:
        assert [t.id for t in tx.tasks(build_id=build.id)] == [rover.id, drone.id, other.id]
        assert [t.id for t in tx.tasks(stage_id=compile_.id)] == [rover.id, drone.id]
        assert [t.id for t in tx.tasks(states=[TaskState.WAITING])] == [drone.id, other.id]
        assert [t.id for t in tx.tasks(stage_id=test.id, states=["waiting"])] == [other.id]
        assert tx.task(rover.id).targets == targets and tx.task(999) is None


def test_a_tasks_log_tail_is_kept_with_its_end(any_store):
    """tasks.log_tail (schema 6): the log's last 16 KiB, whatever text it holds, read back as written."""
    tail = "".join(f"line {n}: caf\u00e9 \ufffd \u2603\t\r\n" for n in range(700))[-16384:]
    with any_store.transaction() as tx:
        build = tx.insert_build(_request(tx).id, "b" * 40, "c" * 40)
        stage = tx.insert_stage(build.id, 0, "build", "build")
        task = tx.insert_task(stage.id, build.id, "rover")
        assert task.log_tail is None
        done = tx.update_task(task.id, state=TaskState.FAILED, outcome="BUILD_FAILURE", finished_at=2.0,
                              log_tail=tail)
        assert done.log_tail == tail
        other = tx.insert_task(stage.id, build.id, "drone")
    with any_store.read() as tx:
        assert tx.task(task.id).log_tail == tail and tx.task(other.id).log_tail is None
        assert [t.log_tail for t in tx.tasks(build_id=build.id)] == [tail, None]
    with any_store.transaction() as tx:
        assert tx.update_task(task.id, log_tail=None).log_tail is None


# --- events, cursors, releases -----------------------------------------------------------------------


def test_events_ascend_with_their_json_data_and_filters(any_store):
    with any_store.transaction() as tx:
        one, two = _request(tx), _request(tx)
        first = tx.add_event(models.REQUEST_QUEUED, request_id=one.id, data={"b": [1, 2], "a": {"x": None}})
        tx.add_event(models.REQUEST_QUEUED, request_id=two.id)
        third = tx.add_event(models.TASK_START, request_id=one.id, build_id=3, stage_id=4, task_id=5,
                             data={"when": time})  # not JSON: stored as its str()
        assert (first.id, third.id) == (1, 3)
        assert first.data == {"a": {"x": None}, "b": [1, 2]} and first.ts.endswith("Z")
        assert (third.build_id, third.stage_id, third.task_id) == (3, 4, 5)
        assert isinstance(third.data["when"], str)
        assert tx.added_events == 3
    with any_store.read() as tx:
        events = tx.events()
        assert [e.id for e in events] == [1, 2, 3] and events[0] == first
        assert events[1].data == {}
        assert [e.id for e in tx.events(after=1)] == [2, 3]
        assert [e.id for e in tx.events(request_id=one.id)] == [1, 3]
        assert [e.id for e in tx.events(after=1, request_id=one.id, limit=1)] == [3]
        assert [e.id for e in tx.events(limit=2)] == [1, 2]
        assert tx.last_event_id() == 3


def test_an_empty_store_has_no_events_and_plugins_keep_cursors(any_store):
    with any_store.read() as tx:
        assert tx.events() == [] and tx.last_event_id() == 0 and tx.cursor("log") is None
    with any_store.transaction() as tx:
        tx.set_cursor("log", 4)
        tx.set_cursor("log", 7)
        tx.set_cursor("hook", 1)
    with any_store.read() as tx:
        assert (tx.cursor("log"), tx.cursor("hook"), tx.cursor("other")) == (7, 1, None)


def test_releases_are_recorded_once_per_tag(any_store):
    with any_store.transaction() as tx:
        request = _request(tx)
        build = tx.insert_build(request.id, "b" * 40, "c" * 40)
        first = tx.insert_release(request_id=request.id, build_id=build.id, tag="v2026.12.1", commit="c" * 40,
                                  notes="first")
        other = tx.insert_release(request_id=None, build_id=None, tag="v2026.12.2", commit="d" * 40, notes="")
        assert (first.id, first.request_id, first.build_id, first.tag, first.commit, first.notes) == (
            1, request.id, build.id, "v2026.12.1", "c" * 40, "first")
        assert first.created_at <= time.time() and other.request_id is None
    with any_store.read() as tx:
        assert [r.tag for r in tx.releases()] == ["v2026.12.1", "v2026.12.2"]
        assert [r.tag for r in tx.releases(request_id=request.id)] == ["v2026.12.1"]
        assert [r.tag for r in tx.latest_releases(1)] == ["v2026.12.2"]
        assert [r.tag for r in tx.latest_releases(5)] == ["v2026.12.2", "v2026.12.1"]
    with pytest.raises(Exception):  # the tag is unique: the transaction fails and writes nothing
        with any_store.transaction() as tx:
            tx.insert_release(request_id=None, build_id=None, tag="v2026.12.1", commit="e" * 40, notes="again")
    with any_store.read() as tx:
        assert len(tx.releases()) == 2


# --- leases, meta, open groups, deliveries -----------------------------------------------------------


def test_a_lease_has_one_live_holder(any_store):
    with any_store.transaction() as tx:
        assert tx.acquire_lease("queue", "host:1", ttl=60) is None
        assert tx.acquire_lease("queue", "host:2", ttl=60) == "host:1"
        assert tx.acquire_lease("queue", "host:1", ttl=60) is None  # renewal
        tx.release_lease("queue", "host:2")  # not the holder's: nothing
        assert tx.acquire_lease("queue", "host:2", ttl=60) == "host:1"
        tx.release_lease("queue", "host:1")
        assert tx.acquire_lease("queue", "host:2", ttl=-1) is None  # expired at once
        assert tx.acquire_lease("queue", "host:3", ttl=60) is None
        assert tx.acquire_lease("other", "host:1", ttl=60) is None  # each name its own
        assert tx.acquire_lease("Other", "host:4", ttl=-1) is None
    with any_store.read() as tx:
        rows = tx.leases()  # every row, expired ones too, by name (its bytes)
        assert [(r.name, r.owner) for r in rows] == [("Other", "host:4"), ("other", "host:1"), ("queue", "host:3")]
        assert rows[0].expires_at < time.time() < rows[1].expires_at


def test_meta_holds_text_and_keeps_the_schema_version_its_own(any_store):
    with any_store.transaction() as tx:
        assert tx.meta("schema_version") == str(SCHEMA_VERSION)
        assert tx.meta("queue.chain") is None
        tx.set_meta("queue.chain", '{"ids": [1]}')
        tx.set_meta("queue.chain", "[]")
        with pytest.raises(ValueError):
            tx.set_meta("schema_version", "9")
        with pytest.raises(TypeError):
            tx.set_meta("queue.chain", 5)
    with any_store.read() as tx:
        assert tx.meta("queue.chain") == "[]"


def test_open_groups_keep_their_first_requester_and_sort_by_bytes(any_store):
    bumps = [RequestBump(component="messages", version="v1.6.0"), {"component": "planner", "version": "v2.0.0"}]
    with any_store.transaction() as tx:
        group = tx.put_open_group("rollout", bumps, "alice")
        assert group.name == "rollout" and group.requested_by == "alice" and group.created_at > 0
        assert [b.component for b in group.bumps] == ["messages", "planner"]
        again = tx.put_open_group("rollout", bumps[:1], "bob")
        assert again.requested_by == "alice" and again.created_at == group.created_at
        assert [b.component for b in again.bumps] == ["messages"]
        for name in ("b-group", "B-group", "a", "_x"):
            tx.put_open_group(name, [], None)
    with any_store.read() as tx:
        assert [g.name for g in tx.open_groups()] == ["B-group", "_x", "a", "b-group", "rollout"]
        assert tx.open_group("a").bumps == () and tx.open_group("a").requested_by is None
        assert tx.open_group("missing") is None
    with any_store.transaction() as tx:
        tx.delete_open_group("rollout")
        tx.delete_open_group("missing")
    with any_store.read() as tx:
        assert tx.open_group("rollout") is None and len(tx.open_groups()) == 4


def test_a_delivery_keeps_its_first_record(any_store):
    with any_store.transaction() as tx:
        request = _request(tx)
        first = tx.record_delivery("github", "d-1", request_id=request.id, outcome="submitted")
        again = tx.record_delivery("github", "d-1", request_id=None, outcome="ignored")
        other = tx.record_delivery("gitlab", "d-1", request_id=None, outcome="ignored")
        assert (first.forge, first.delivery, first.request_id, first.outcome) == (
            "github", "d-1", request.id, "submitted")
        assert again == first and other.outcome == "ignored" and other.request_id is None
    with any_store.read() as tx:
        assert tx.delivery("github", "d-1") == first and tx.delivery("github", "d-2") is None


# --- the tests' results, what is recent --------------------------------------------------------------


def _merged_build(tx, state=RequestState.MERGED, build_state=BuildState.SUCCEEDED):
    request = _request(tx, state=state)
    build = tx.insert_build(request.id, "b" * 40, "c" * 40)
    tx.update_build(build.id, state=build_state)
    return request, build


def test_test_results_newest_first_and_whether_a_test_passed_on_main(any_store):
    with any_store.transaction() as tx:
        request, build = _merged_build(tx)
        _, failed = _merged_build(tx, build_state=BuildState.FAILED)
        pending, candidate = _merged_build(tx, state=RequestState.TESTING)
        task = tx.insert_task(tx.insert_stage(build.id, 0, "test", "test").id, build.id, "rover")
        row = {"configuration": "rover", "stage": "test", "request_id": request.id, "build_id": build.id}
        tx.add_test_results([
            {**row, "target": "//a:t", "status": "passed", "attempts": 2, "rigs": ["rig-1"], "task_id": task.id},
            {**row, "target": "//a:u", "status": "failed", "detail": "exit 1"},
            {**row, "target": "//a:t", "status": "passed", "configuration": "drone"},
        ])
        tx.add_test_results([{**row, "target": "//a:u", "status": "failed", "build_id": failed.id},
                             {**row, "target": "//a:v", "status": "passed", "build_id": candidate.id}])
        tx.add_test_results([])
    with any_store.read() as tx:
        results = tx.test_results()
        assert [r.id for r in results] == [5, 4, 3, 2, 1]
        first = results[-1]
        assert (first.target, first.configuration, first.stage, first.status, first.attempts, first.rigs) == (
            "//a:t", "rover", "test", "passed", 2, ("rig-1",))
        assert (first.detail, first.request_id, first.build_id, first.task_id) == (None, request.id, build.id, task.id)
        assert results[-2].attempts == 1 and results[-2].detail == "exit 1" and results[-2].rigs == ()
        assert [r.id for r in tx.test_results(target="//a:t")] == [3, 1]
        assert [r.id for r in tx.test_results(target="//a:t", configuration="rover")] == [1]
        assert [r.id for r in tx.test_results(task_id=task.id)] == [1]
        assert [r.id for r in tx.test_results(limit=2)] == [5, 4]
        assert tx.passed_on_main("//a:t", "rover") and tx.passed_on_main("//a:t", "drone")
        assert not tx.passed_on_main("//a:u", "rover")  # failed on main (the failed build does not count)
        assert not tx.passed_on_main("//a:v", "rover")  # only in a request not merged
        assert not tx.passed_on_main("//a:new", "rover")


def test_what_is_recent(any_store):
    with any_store.transaction() as tx:
        ids = []
        for n, state in enumerate([RequestState.MERGED, RequestState.QUEUED, RequestState.MERGED,
                                   RequestState.REJECTED, RequestState.MERGED]):
            request, build = _merged_build(tx, state=state)
            ids.append(request.id)
            for position, name in ((1, "test"), (0, "build")):
                stage = tx.insert_stage(build.id, position, name, name)
                tx.update_stage(stage.id, state=StageState.SUCCEEDED if n != 2 or name == "build"
                                else StageState.FAILED)
            failed = tx.insert_build(request.id, "b" * 40, "c" * 40)  # a failed build: its stages never count
            tx.update_build(failed.id, state=BuildState.FAILED)
            tx.update_stage(tx.insert_stage(failed.id, 0, "build", "build").id, state=StageState.SUCCEEDED)
        _request(tx, state=RequestState.MERGED, kind=KIND_TRY)  # a try is never the queue's
    with any_store.read() as tx:
        latest = tx.latest_requests([RequestState.MERGED, RequestState.QUEUED], 3)
        assert [r.id for r in latest] == [ids[4], ids[2], ids[1]]
        assert [r.id for r in tx.latest_requests(["merged", "merged"], 10)] == [ids[4], ids[2], ids[0]]
        assert tx.latest_requests([RequestState.MERGED], 0) == [] and tx.latest_requests([], 5) == []
        stages = tx.merged_stages(2)
        assert [(s.build_id, s.name) for s in stages] == [(5, "build"), (9, "build"), (9, "test")]
        assert [s.name for s in tx.merged_stages(1)] == ["build", "test"]
        assert tx.merged_stages(0) == []


# --- transactions ------------------------------------------------------------------------------------


def test_a_failed_transaction_writes_neither_the_change_nor_its_event(any_store):
    request = queue(any_store)
    with pytest.raises(RuntimeError):
        with any_store.transaction() as tx:
            tx.update_request(request.id, state=RequestState.CANCELLED)
            tx.add_event(models.REQUEST_CANCELLED, request_id=request.id)
            raise RuntimeError("the machine went away")
    with any_store.read() as tx:
        assert tx.request(request.id).state == RequestState.QUEUED
        assert [e.type for e in tx.events()] == [models.REQUEST_QUEUED]


def test_the_change_and_its_event_commit_together_and_listeners_hear_it(any_store):
    heard = []
    any_store.on_commit(lambda: heard.append(1))
    request = queue(any_store)
    assert heard == [1]
    with any_store.transaction() as tx:
        tx.update_request(request.id, detail="no event")
    assert heard == [1]  # only a transaction that added events
    with any_store.transaction() as tx:
        tx.update_request(request.id, state=RequestState.CANCELLED)
        tx.add_event(models.REQUEST_CANCELLED, request_id=request.id)
        with any_store.read() as inside:  # a read in this thread's transaction sees it
            assert inside.request(request.id).state == RequestState.CANCELLED
    assert heard == [1, 1]
    with any_store.read() as tx:
        assert tx.request(request.id).state == RequestState.CANCELLED
        assert [e.type for e in tx.events(request_id=request.id)] == [models.REQUEST_QUEUED,
                                                                        models.REQUEST_CANCELLED]


def test_a_read_is_a_snapshot_and_sees_no_uncommitted_write(any_store):
    request = queue(any_store)
    started, wrote, done = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def writer():
        with any_store.transaction() as tx:
            tx.update_request(request.id, detail="written")
            wrote.set()
            done.wait(10)

    with any_store.read() as tx:
        seen.append(tx.request(request.id).detail)
        thread = threading.Thread(target=writer)
        thread.start()
        assert wrote.wait(10)
        seen.append(tx.request(request.id).detail)  # the same snapshot: not the uncommitted write
        started.set()
    with any_store.read() as tx:
        seen.append(tx.request(request.id).detail)  # still uncommitted
    done.set()
    thread.join(10)
    with any_store.read() as tx:
        seen.append(tx.request(request.id).detail)
    assert seen == [None, None, None, "written"]


def test_two_writers_never_interleave(any_store):
    # Each writer reads a counter, waits, and writes it plus one: interleaved, both would read
    # the same value and one increment would be lost; and each one's steps stay together.
    with any_store.transaction() as tx:
        tx.set_meta("counter", "0")
    steps, lock = [], threading.Lock()

    def writer(name):
        for _ in range(3):
            with any_store.transaction() as tx:
                with lock:
                    steps.append((name, "begin"))
                value = int(tx.meta("counter"))
                time.sleep(0.02)
                tx.set_meta("counter", str(value + 1))
                tx.add_event(models.TASK_START, data={"writer": name, "value": value})
                with lock:
                    steps.append((name, "end"))

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with any_store.read() as tx:
        assert tx.meta("counter") == "6"
        values = [e.data["value"] for e in tx.events()]
    assert values == [0, 1, 2, 3, 4, 5]  # ids in commit order
    assert all(steps[i][0] == steps[i + 1][0] and steps[i][1] == "begin" for i in range(0, len(steps), 2))


def test_a_writer_waits_for_the_lock_as_long_as_it_is_told_then_says_who_holds_it(any_store, monkeypatch):
    monkeypatch.setenv("CONVOY_STATE_WAIT", "0.3")
    holding, release, failures = threading.Event(), threading.Event(), []

    def holder():
        with any_store.transaction() as tx:
            tx.set_meta("held", "yes")
            holding.set()
            release.wait(10)

    def waiter():
        try:
            with any_store.transaction() as tx:
                tx.set_meta("waited", "yes")
        except ConvoyError as e:
            failures.append(str(e))

    first = threading.Thread(target=holder)
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=waiter)
    second.start()
    second.join(10)
    release.set()
    first.join(10)
    [message] = failures
    assert "\n" not in message and "another convoy holds the" in message and "for more than 0.3 s" in message
    with any_store.read() as tx:
        assert (tx.meta("held"), tx.meta("waited")) == ("yes", None)
    with any_store.transaction() as tx:  # the lock is free again
        tx.set_meta("waited", "later")


def test_threads_each_have_a_connection_and_ids_ascend(any_store):
    request = queue(any_store)

    def writer(n):
        with any_store.transaction() as tx:
            tx.add_event(models.TASK_START, request_id=request.id, data={"n": n})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with any_store.read() as tx:
        events = tx.events(request_id=request.id)
    assert len(events) == 9 and [e.id for e in events] == sorted(e.id for e in events)
    assert sorted(e.data.get("n") for e in events[1:]) == list(range(8))


def test_a_read_only_store_reads_and_refuses_to_write(any_store):
    queue(any_store)
    url = _url(any_store)
    with open_store(url, readonly=True) as reader:
        with reader.read() as tx:
            assert [r.id for r in tx.requests()] == [1]
        with pytest.raises(RuntimeError):
            with reader.transaction():
                pass


def _url(store) -> str:
    return getattr(store, "url", None) or f"sqlite://{store.path}"


# --- the schema's versions ---------------------------------------------------------------------------


def test_an_empty_store_is_created_only_when_asked(tmp_path, pg_url):
    for url in (f"sqlite://{tmp_path}/new/state.db", pg_url):
        for kwargs in ({"readonly": True}, {"create": False}):
            with pytest.raises(ConvoyError) as error:
                open_store(url, **kwargs)
            assert "nothing was submitted there yet; run: convoy submit" in str(error.value)
        assert stored_version(url) is None
        with open_store(url) as store, store.read() as tx:
            assert tx.meta("schema_version") == str(SCHEMA_VERSION)
        assert stored_version(url) == str(SCHEMA_VERSION)


def _make_pg_version(url, version):
    """The store at `url` made what a version-`version` store was: version 5 had no tasks.log_tail,
    version 4 neither requests.priority nor test_results."""
    import psycopg

    open_store(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE tasks DROP COLUMN log_tail")
        if version <= 4:
            conn.execute("ALTER TABLE requests DROP COLUMN priority")
            conn.execute("DROP TABLE test_results")
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(version),))


@pytest.mark.parametrize("version", [4, 5])
def test_an_older_postgresql_schema_is_refused_until_convoy_db_upgrade(pg_url, tmp_path, capsys, version):
    _make_pg_version(pg_url, version)
    for kwargs in ({}, {"readonly": True}):
        with pytest.raises(ConvoyError) as error:
            open_store(pg_url, **kwargs)
        message = str(error.value)
        assert "\n" not in message and f"schema is version {version}, older than this convoy's" in message
        assert message.endswith("migrate it: convoy db upgrade")
    assert stored_version(pg_url) == str(version)
    checkout = _checkout(tmp_path)
    env = {"CONVOY_STORE_URL": pg_url}
    assert _convoy(capsys, env, "db", "version", f"--repo={checkout}") == (
        0, f"store {pg_url}: schema version {version}; this convoy's: {SCHEMA_VERSION}\n", "")
    assert _convoy(capsys, env, "db", "upgrade", f"--repo={checkout}") == (
        0, f"store {pg_url}: migrated the schema from version {version} to {SCHEMA_VERSION}\n", "")
    with open_store(pg_url) as store, store.transaction() as tx:
        assert _request(tx, priority=10).priority == 10
        tx.add_test_results([{"target": "//a:t", "configuration": "rover", "stage": "test", "status": "passed"}])
        build = tx.insert_build(1, "b" * 40, "c" * 40)
        task = tx.insert_task(tx.insert_stage(build.id, 0, "build", "build").id, build.id, "rover")
        assert tx.update_task(task.id, log_tail="the end\n").log_tail == "the end\n"
    assert upgrade_store(pg_url) == SCHEMA_VERSION  # again: nothing to do
    assert _convoy(capsys, env, "db", "upgrade", f"--repo={checkout}")[1].endswith("nothing to do\n")


def test_a_newer_schema_is_refused_naming_the_upgrade_of_convoy(any_store):
    url = _url(any_store)
    if url.startswith("postgresql"):
        any_store._connection().execute("UPDATE meta SET value = %s WHERE key = 'schema_version'",
                                        (str(SCHEMA_VERSION + 1),))
    else:
        any_store._connection().execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                                        (str(SCHEMA_VERSION + 1),))
    any_store.close()
    for kwargs in ({}, {"readonly": True}):
        with pytest.raises(ConvoyError) as error:
            open_store(url, **kwargs)
        assert "\n" not in str(error.value) and f"schema {SCHEMA_VERSION + 1}" in str(error.value).replace(
            "schema is version", "schema")
        if url.startswith("postgresql"):
            assert str(error.value).endswith("upgrade convoy to the version that wrote it")
    with pytest.raises(ConvoyError):
        upgrade_store(url)


@pytest.mark.parametrize("value", ["0", "two", None])
def test_a_postgresql_database_that_is_not_convoys_is_refused_and_left_alone(pg_url, value):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        if value is not None:
            conn.execute("INSERT INTO meta VALUES ('schema_version', %s)", (value,))
    for call in (open_store, upgrade_store):
        with pytest.raises(ConvoyError) as error:
            call(pg_url)
        assert str(error.value).endswith("is not convoy's state database (a PostgreSQL database with tables but "
                                         "without convoy's schema version); give convoy an empty database of its own")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
                            ).fetchone() == (1,)


def test_a_postgresql_store_without_a_table_is_damaged(pg_url):
    import psycopg

    open_store(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE leases")
    with pytest.raises(ConvoyError) as error:
        open_store(pg_url, readonly=True)
    assert "the state database is damaged (no table leases)" in str(error.value)


def test_sqlite_upgrade_is_its_migration_on_open(tmp_path, capsys):
    checkout = _checkout(tmp_path)
    assert _convoy(capsys, {}, "db", "version", f"--repo={checkout}")[1].endswith(
        f"no schema yet (empty); this convoy's: {SCHEMA_VERSION}\n")
    assert _convoy(capsys, {}, "db", "upgrade", f"--repo={checkout}")[1].endswith(
        f"created the schema, version {SCHEMA_VERSION}\n")
    assert (checkout / ".convoy" / "state.db").is_file()
    code, out, _ = _convoy(capsys, {}, "db", "version", "--json", f"--repo={checkout}")
    assert code == 0 and f'"schema_version": "{SCHEMA_VERSION}"' in out


# --- the server: down, a password, the command line --------------------------------------------------


@pytest.mark.parametrize("url", [
    "postgresql://convoy:s3cret-pw@127.0.0.1:{port}/convoy",
    "postgresql://convoy@127.0.0.1:{port}/convoy?password=s3cret-pw&connect_timeout=5",
])
def test_a_server_that_is_down_is_one_line_without_the_password(url, tmp_path, capsys):
    url = url.format(port=free_port())
    with pytest.raises(ConvoyError) as error:
        open_store(url)
    message = str(error.value)
    assert "\n" not in message and "s3cret-pw" not in message and "***" in message
    assert "cannot connect to PostgreSQL" in message and "start the server" in message
    code, out, err = _convoy(capsys, {"CONVOY_STORE_URL": url}, "status", f"--repo={_checkout(tmp_path)}")
    assert code == 2 and out == "" and "s3cret-pw" not in err and len(err.splitlines()) == 1
    assert "cannot connect to PostgreSQL" in err


def test_a_lost_connection_is_one_line_and_the_next_use_connects_again(pg_url, pg_server):
    with open_store(pg_url) as store:
        queue(store)
        with pg_server.admin() as admin:  # the server ends every session of the database (as a restart would)
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                          (pg_url.rsplit("/", 1)[1],))
        with pytest.raises(ConvoyError) as error:
            with store.read() as tx:
                tx.requests()
        assert "\n" not in str(error.value) and "PostgreSQL failed" in str(error.value)
        with store.read() as tx:
            assert [r.id for r in tx.requests()] == [1]


def test_a_wrong_database_and_a_malformed_url_are_one_line(pg_server):
    with pytest.raises(ConvoyError) as error:
        open_store(pg_server.url("no_such_database"))
    assert "\n" not in str(error.value) and "no_such_database" in str(error.value)
    with pytest.raises(ConvoyError) as error:
        open_store("postgresql://u:pw@127.0.0.1:5432/d?no_such_option=1")
    assert "\n" not in str(error.value) and "pw" not in str(error.value).replace("postgresql", "")


def test_convoy_submit_and_status_use_the_store_of_convoy_store_url(pg_url, tmp_path, capsys):
    checkout = _checkout(tmp_path)
    env = {"CONVOY_STORE_URL": pg_url}
    code, out, err = _convoy(capsys, env, "status", f"--repo={checkout}")
    assert code == 0, err  # an empty database: nothing submitted yet, like a checkout without state
    code, out, err = _convoy(capsys, env, "submit", "--component=widget", "--version=v1.1.0", f"--repo={checkout}")
    assert code == 0, err
    assert not (checkout / ".convoy" / "state.db").exists()  # not the checkout's own store
    code, out, err = _convoy(capsys, env, "status", "--json", f"--repo={checkout}")
    assert code == 0, err
    assert '"component": "widget"' in out and '"state": "queued"' in out
    with open_store(pg_url, readonly=True) as store, store.read() as tx:
        [request] = tx.requests()
        assert (request.component, request.version, request.state) == ("widget", "v1.1.0", RequestState.QUEUED)
        assert [e.type for e in tx.events()] == [models.REQUEST_QUEUED]
    code, out, err = _convoy(capsys, {}, "status", f"--repo={checkout}")  # without it: the checkout's, empty
    assert code == 0 and "widget" not in out


def test_convoy_yaml_names_the_store_and_the_variable_wins(pg_url, pg_server, tmp_path, capsys):
    checkout = _checkout(tmp_path, config=f"store: {pg_url}\n")
    code, _, err = _convoy(capsys, {}, "submit", "--component=widget", "--version=v1.1.0", f"--repo={checkout}")
    assert code == 0, err
    with open_store(pg_url, readonly=True) as store, store.read() as tx:
        assert len(tx.requests()) == 1
    other = pg_server.new_database()
    try:
        code, out, err = _convoy(capsys, {"CONVOY_STORE_URL": other}, "db", "version", f"--repo={checkout}")
        assert code == 0 and out == f"store {other}: no schema yet (empty); this convoy's: {SCHEMA_VERSION}\n"
    finally:
        pg_server.drop_database(other)


def test_every_method_of_the_interface_is_called_here():
    import inspect
    import re

    from convoy.store.base import Transaction

    text = inspect.getsource(inspect.getmodule(test_every_method_of_the_interface_is_called_here))
    assert not [m for m in sorted(Transaction.__abstractmethods__) if not re.search(rf"\.{m}\(", text)]


# --- helpers -----------------------------------------------------------------------------------------


def _checkout(tmp_path, config=""):
    """An integration checkout of tests/support/state.py's manifest (the component widget, v1.0.0 and
    v1.1.0), with its convoy.yaml and `config` added to it."""
    root = tmp_path / "integration"
    for path, text in {"manifests/manifest.yaml": MANIFEST, "convoy.yaml": CONFIG + config,
                       "components/widget/v1.0.0/README": "1.0\n", "components/widget/v1.1.0/README": "1.1\n"}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def _convoy(capsys, env, *args):
    """`convoy ARGS` in-process with the variables `env` set; (exit code, stdout, stderr)."""
    mp = pytest.MonkeyPatch()
    try:
        for name, value in env.items():
            mp.setenv(name, value)
        capsys.readouterr()
        code = main.main(["convoy", *args])
        out, err = capsys.readouterr()
        return code, out, err
    finally:
        mp.undo()

