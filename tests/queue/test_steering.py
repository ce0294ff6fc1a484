"""Steering the queue: pause, resume, drain, priority and promote, and who did each.

- No Bazel (the `state_checkout` of tests/conftest.py: request 1 queued, 2
  rejected): every action is an event naming who did it (`--by`, else the OS
  user); a paused queue's `convoy process --all` starts nothing, a draining
  one's `--forever` exits 0; `convoy status` says so; bad inputs are one line
  that changes nothing.
- The window's decisions (chain.Scheduler, no git): a high-priority request
  overtakes three queued ones; a promote goes ahead of what has not passed
  its build, resets it and has it built again on top of it.
- The real Bazel (the `hard` repository of tests/queue/conftest.py, serial
  mode): a request in flight when the queue is paused merges and nothing new
  starts; after `convoy resume` the queue goes on, and a drain finishes what
  is in flight and exits `convoy process --forever` 0; a high-priority
  request overtakes three queued ones.
"""

from __future__ import annotations

import json
import signal

import pytest

from convoy import control, models, requests
from convoy.models import Phase, RequestState
from convoy.queue import chain
from convoy.store import SQLiteStore

from tests.support.queue import assert_merged_once, next_good_bump, submit_rover

STAGES = [chain.StageSpec("build"), chain.StageSpec("integration")]


def cli(root, capsys, *args: str) -> tuple[int, str, str]:
    """`convoy <args> --repo=root` in this process: (exit code, stdout, stderr)."""
    from convoy import main

    capsys.readouterr()
    code = main.main(["convoy", *args, f"--repo={root}"])
    out, err = capsys.readouterr()
    return code, out, err


def events(root) -> list[models.Event]:
    with SQLiteStore(root / ".convoy" / "state.db") as store, store.read() as tx:
        return tx.events()


def held(root) -> control.QueueControl:
    with SQLiteStore(root / ".convoy" / "state.db") as store, store.read() as tx:
        return control.state(tx)


def request(root, request_id: int) -> models.Request:
    with SQLiteStore(root / ".convoy" / "state.db") as store, store.read() as tx:
        return tx.request(request_id)


# -- who did it ---------------------------------------------------------------------------------------


def test_every_action_is_an_event_naming_who_did_it(state_checkout, capsys, monkeypatch):
    root = state_checkout
    monkeypatch.setenv("LOGNAME", "ops-login")  # getpass.getuser(): --by's default
    before = len(events(root))
    assert cli(root, capsys, "pause", "--reason=upgrading Bazel", "--by=alice")[0] == 0
    assert cli(root, capsys, "drain", "--by=carol")[0] == 0
    assert cli(root, capsys, "resume")[0] == 0
    assert cli(root, capsys, "promote", "1", "--by=dave")[0] == 0
    assert cli(root, capsys, "cancel", "1", "--by=erin")[0] == 0
    assert cli(root, capsys, "retry", "2", "--by=frank")[0] == 0
    found = [(e.type, e.request_id, e.data.get("by"), e.data.get("reason")) for e in events(root)[before:]]
    assert found == [
        (models.QUEUE_PAUSED, None, "alice", "upgrading Bazel"),
        (models.QUEUE_DRAINING, None, "carol", "upgrading Bazel"),  # a paused queue keeps its reason
        (models.QUEUE_RESUMED, None, "ops-login", None),
        (models.REQUEST_PROMOTED, 1, "dave", None),
        (models.REQUEST_CANCELLED, 1, "erin", "cancelled while queued"),
        (models.REQUEST_QUEUED, 2, "frank", None),
    ]
    resumed = events(root)[before + 2]
    assert (resumed.data["was"], resumed.data["paused_by"]) == ("draining", "carol")
    assert request(root, 1).priority == models.PRIORITY_HIGH
    assert held(root) == control.QueueControl(by="ops-login", since=held(root).since)
    code, out, _ = cli(root, capsys, "events")
    assert code == 0 and "- queue paused by alice (upgrading Bazel)" in out
    assert "#1 promoted to high priority by dave" in out


def test_a_paused_queue_starts_nothing_and_says_so(state_checkout, capsys):
    root = state_checkout
    code, out, err = cli(root, capsys, "pause", "--reason=lab upgrade", "--by=alice")
    assert (code, err) == (0, "")
    assert out.startswith("the queue is paused since ") and out.rstrip().endswith(
        " by alice: lab upgrade; what is in flight finishes, nothing new starts until: convoy resume")
    code, out, _ = cli(root, capsys, "process", "--all")
    assert code == 0
    assert request(root, 1).state == RequestState.QUEUED  # not taken: nothing was built
    assert out.strip().splitlines()[-1].endswith("by alice: lab upgrade; nothing new starts until: convoy resume")
    code, out, _ = cli(root, capsys, "status")
    assert code == 0 and out.splitlines()[0].startswith("the queue is paused since ")
    rows = json.loads(cli(root, capsys, "status", "--json")[1])
    queued = next(r for r in rows if r["id"] == 1)
    assert queued["priority"] == "normal"
    assert {k: queued["held"][k] for k in ("state", "paused", "draining", "reason", "by")} == {
        "state": "paused", "paused": True, "draining": False, "reason": "lab upgrade", "by": "alice"}
    assert isinstance(queued["held"]["since"], float)
    assert "held" not in next(r for r in rows if r["id"] == 2)  # rejected: not held by the pause
    again = cli(root, capsys, "pause", "--reason=other")
    assert again[0] == 0 and "already; nothing changed (to go on: convoy resume)" in again[1]
    assert held(root).reason == "lab upgrade"


def test_a_draining_queue_exits_process_forever_once_nothing_is_in_flight(state_checkout, capsys):
    root = state_checkout
    code, out, _ = cli(root, capsys, "drain", "--by=carol")
    assert code == 0 and "draining" in out and "by carol: draining for an upgrade" in out
    code, out, _ = cli(root, capsys, "process", "--forever", "--poll_interval=30")  # would wait 30 s if it waited
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith("convoy: drained: nothing is in flight; the queue is draining since ")
    assert last.endswith("by carol: draining for an upgrade; it starts nothing new until: convoy resume")
    assert request(root, 1).state == RequestState.QUEUED
    assert cli(root, capsys, "drain")[1].rstrip().endswith("already; nothing changed")


# -- bad inputs: one line, nothing changed ------------------------------------------------------------


def test_bad_inputs_are_one_line_and_change_nothing(state_checkout, capsys):
    root = state_checkout
    with SQLiteStore(root / ".convoy" / "state.db") as store, store.transaction() as tx:
        merged = tx.insert_request(component="widget", version="v1.1.0", requested_by="ci", state=RequestState.MERGED)
    before = len(events(root))
    cases = [
        (("promote", "999"), 2,
         "convoy: error: no request #999 in this checkout's queue; see them with: convoy status"),
        (("promote", str(merged.id)), 2, f"convoy: error: request #{merged.id} (widget v1.1.0) is already merged; only "
                                         "a queued request can be promoted; see the queue with: convoy status"),
        (("submit", "--component=widget", "--version=v1.1.0", "--priority=urgent"), 2,
         "convoy: error: --priority=urgent is not a priority (one of: high, normal); for example --priority=high"),
        (("pause", "--by=a\x1bb"), 2, "convoy: error: --by=a\\x1bb contains control characters (\\x1b); pass it "
                                      "without them"),
    ]
    for args, status, line in cases:
        code, out, err = cli(root, capsys, *args)
        assert (code, out, err.splitlines()) == (status, "", [line]), args
    code, out, err = cli(root, capsys, "resume")
    assert (code, out, err) == (0, "the queue is not paused; nothing to resume\n", "")
    assert cli(root, capsys, "promote", "1")[0] == 0
    assert cli(root, capsys, "promote", "1")[1] == (
        "request #1 (widget v1.0.0) is high priority already; nothing changed\n")
    assert [e.type for e in events(root)[before:]] == [models.REQUEST_PROMOTED]  # only the one real change
    assert held(root) == control.QueueControl()
    assert request(root, merged.id).priority == models.PRIORITY_NORMAL
    assert [r.id for r in _queued(root)] == [1]  # the refused submit queued nothing


def _queued(root) -> list[models.Request]:
    with SQLiteStore(root / ".convoy" / "state.db") as store, store.read() as tx:
        return requests.in_queue_order(tx)


# -- the window's decisions -------------------------------------------------------------------------------


def test_the_queue_order_is_highest_priority_then_oldest(store):
    with store.transaction() as tx:
        ids = [tx.insert_request(component=f"c{n}", version="v1.0.0", requested_by="ci").id for n in range(3)]
        high = tx.insert_request(component="hot", version="v1.0.0", requested_by="ci",
                                 priority=models.PRIORITY_HIGH).id
        order = requests.in_queue_order(tx)
    assert [r.id for r in order] == [high, *ids]
    scheduler = chain.Scheduler(chain.Policy.of("speculative", window=4), STAGES)
    new = scheduler.take([r.id for r in order], {r.id: r.priority for r in order})
    assert [item.requests for item in new] == [(high,), *((i,) for i in ids)]
    assert [type(a).__name__ for a in scheduler.plan("tip", {})] == ["Build"]
    assert scheduler.plan("tip", {})[0].item.requests == (high,)


def _made_chain(window: int = 3) -> chain.Scheduler:
    """Requests 1, 2, 3 in the window, each built on the one ahead and running its first stage."""
    scheduler = chain.Scheduler(chain.Policy.of("speculative", window=window), STAGES)
    scheduler.take([1, 2, 3], {})
    base = "tip"
    for item in scheduler.chain:
        item.made(base, f"c{item.key}")
        item.running = True
        base = item.candidate
    return scheduler


def test_a_promote_goes_ahead_of_a_full_window_and_resets_what_was_behind_it():
    scheduler = _made_chain()
    assert scheduler.take([4], {4: models.PRIORITY_HIGH}) == []  # the window is full
    new, reset = scheduler.promote([4], {4: models.PRIORITY_HIGH})
    assert [i.requests for i in new] == [(4,)]
    assert [i.requests for i in scheduler.chain] == [(4,), (1,), (2,), (3,)]
    assert [i.requests for i in reset] == [(1,), (2,), (3,)]  # their builds are cancelled
    assert all(i.candidate is None for i in scheduler.chain)
    [build] = scheduler.plan("tip", {})  # the promoted one first, on the tip; the rest wait for it
    assert (build.item.requests, build.base) == ((4,), "tip")
    scheduler.chain[0].made("tip", "c4")
    [build] = scheduler.plan("tip", {})[1:]  # (Enter of #4's first stage, then) #1 again, on #4
    assert (build.item.requests, build.base) == ((1,), "c4")
    assert scheduler.promote([4], {4: models.PRIORITY_HIGH}) == ([], [])  # in the chain: it stays


def test_a_promote_leaves_what_passed_at_the_head_and_a_testing_promote_stays():
    scheduler = _made_chain()
    head = scheduler.chain[0]
    head.passed_stages, head.running = len(STAGES), False  # #1 passed on the tip: it merges as it is
    new, reset = scheduler.promote([2, 3], {2: models.PRIORITY_HIGH})  # #2 is testing: promoted, it stays
    assert (new, reset) == ([], [])
    assert [i.priority for i in scheduler.chain] == [0, models.PRIORITY_HIGH, 0]
    new, reset = scheduler.promote([5], {5: models.PRIORITY_HIGH})  # equal to #2's: behind it, ahead of #3
    assert [i.requests for i in scheduler.chain] == [(1,), (2,), (5,), (3,)]
    assert [i.requests for i in reset] == [(3,)]
    actions = scheduler.plan("tip", {})
    assert isinstance(actions[0], chain.Merge) and actions[0].item is head
    assert [(a.item.requests, a.base) for a in actions if isinstance(a, chain.Build)] == [((5,), "c2")]


# -- the real Bazel ---------------------------------------------------------------------------------------


@pytest.mark.bazel
@pytest.mark.slow
def test_pause_finishes_what_is_in_flight_and_resume_then_drain_go_on(hard):
    it, _ = hard
    first = submit_rover(it)
    second = submit_rover(it, skip=(it.request(first).component,))
    killed = it.process("--once", failpoint="after_candidate")  # #first is in flight (its candidate made)
    assert killed.code == -signal.SIGKILL, killed
    assert it.request(first).phase == Phase.BUILDING
    assert it.convoy("pause", "--reason=lab upgrade", "--by=alice").code == 0
    paused = it.process("--all")
    assert paused.code == 0, paused
    assert_merged_once(it, first)  # what ran finished
    assert it.request(second).state == RequestState.QUEUED  # nothing new started
    assert "by alice: lab upgrade; nothing new starts until: convoy resume" in paused.out.splitlines()[-1]

    assert it.convoy("resume", "--by=bob").code == 0
    taken = it.process("--once", failpoint="after_candidate")  # the queue goes on: #second is taken
    assert taken.code == -signal.SIGKILL, taken
    assert it.request(second).state == RequestState.TESTING
    third = submit_rover(it, skip=(it.request(first).component, it.request(second).component))
    assert it.convoy("drain", "--by=carol").code == 0
    drained = it.process("--forever")
    assert drained.code == 0, drained
    assert_merged_once(it, second)
    assert it.request(third).state == RequestState.QUEUED
    assert drained.out.splitlines()[-1].startswith("convoy: drained: nothing is in flight; the queue is draining")
    types = [(e.type, e.data.get("by")) for e in it.events() if e.type.startswith("QUEUE_")]
    assert types[-3:] == [(models.QUEUE_PAUSED, "alice"), (models.QUEUE_RESUMED, "bob"),
                          (models.QUEUE_DRAINING, "carol")]
    assert it.convoy("resume").code == 0
    assert it.convoy("cancel", str(third), "--by=cleanup").code == 0


NORMAL_BUMPS = {"messages": "v1.6.0", "planner": "v2.4.0", "controller": "v1.3.0", "firmware": "v3.1.0"}


@pytest.mark.bazel
@pytest.mark.slow
def test_a_high_priority_request_overtakes_three_queued_ones(hard):
    it, _ = hard
    component, version = next_good_bump(it)
    normal = [it.submit(f"--component={name}", f"--version={v}", "--requested_by=ops-test")
              for name, v in NORMAL_BUMPS.items() if name != component][:3]
    high = it.submit(f"--component={component}", f"--version={version}", "--configuration=rover",
                     "--priority=high", "--requested_by=ops-test")
    rows = {r["id"]: r for r in json.loads(it.convoy("status", "--json").out)}
    assert [rows[i]["priority"] for i in (*normal, high)] == ["normal"] * 3 + ["high"]
    run = it.process("--once")
    assert run.code == 0, run
    assert_merged_once(it, high)
    assert [it.request(i).state for i in normal] == [RequestState.QUEUED] * 3
    started = [e.request_id for e in it.events() if e.type == models.BUILD_START]
    assert started[-1] == high and not set(normal) & set(started)
    for request_id in normal:
        assert it.convoy("cancel", str(request_id)).code == 0
