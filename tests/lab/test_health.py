"""convoy.lab.health's decisions on hand-made Attempt records (no lab, no Bazel), and
convoy.lab.rig_health's book: retry on another rig, the rigs' failure, health moves."""

from __future__ import annotations

import json
from pathlib import Path

from convoy import bep, models, retries
from convoy.bazel_result import BazelResult, Outcome
from convoy.config import StageSpec, parse_config
from convoy.lab import health
from convoy.lab.pools import Bot
from convoy.lab.rig_health import BAD, GOOD, MAINTENANCE, SUSPECT, HealthBook, Observation

T = "//integration:flash_and_drive_test"
U = "//integration:other_hardware_test"
POOL = "rover-rigs"
SPEC = StageSpec(name="hardware", command="test", check_pools=True)
FLAGS = ("--config=hil", "--remote_executor=grpc://127.0.0.1:50999")


def ran(label, rig, exit_code, pool=POOL):
    return {"target": label, "pool": pool, "worker": f"{pool}/{rig}", "rig": rig, "exit_code": exit_code}


def attempt(*targets, runs=(), kind=None, reason=None):
    statuses = tuple(bep.TargetResult(label=label, status=status) for label, status in targets)
    failed = any(t.failing for t in statuses)
    result = BazelResult(outcome=Outcome.TESTS_FAILED if failed else Outcome.PASSED, exit_code=3 if failed else 0,
                         duration=1.0, log_path=Path("/logs/t.log"), bep_path=Path("/logs/t.bep.json"),
                         targets=statuses, detail="")
    return retries.Attempt(result=result, targets=tuple(t[0] for t in targets) if kind else (), reason=reason,
                           kind=kind, rigs={"invocation_id": "i", "runs": list(runs), "error": None}, flags=FLAGS)


def lab_of(*rigs, unhealthy=()):
    return lambda flags: [Bot(name=r, pool=POOL, status="OK", healthy=r not in unhealthy) for r in rigs]


def test_a_test_that_failed_on_a_rig_runs_again_avoiding_it_while_the_pool_has_another_healthy_rig():
    asked = []

    def bots(flags):
        asked.append(tuple(flags))
        return lab_of("rover-rigs-1", "rover-rigs-2")(flags)

    first = attempt((T, bep.FAILED), runs=[ran(T, "rover-rigs-1", 75)])
    policy = health.retry_on_other_rig(None, SPEC, "rover", bots=bots)
    retry = policy([first], [T])
    assert retry == retries.Retry(
        targets=(T,), kind="rig", flags=("--test_env=CONVOY_AVOID_RIGS=rover-rigs-1",),
        reason=f"{T} failed on rover-rigs-1 (exit 75: a rig-side failure): run again on another rig of rover-rigs, "
               "not rover-rigs-1")
    assert asked == [FLAGS]  # the lab the run's flags name
    # Once per other rig: a pool of two retries once; the second failure is the last word.
    second = attempt((T, bep.FAILED), runs=[ran(T, "rover-rigs-2", 1)], kind="rig", reason=retry.reason)
    assert policy([first, second], [T]) is None
    # Three rigs: again, avoiding both.
    three = health.retry_on_other_rig(None, SPEC, "rover", bots=lab_of("rover-rigs-1", "rover-rigs-2", "rover-rigs-3"))
    assert three([first, second], [T]).flags == ("--test_env=CONVOY_AVOID_RIGS=rover-rigs-1,rover-rigs-2",)
    # The stage's rig_retries bounds it.
    once = StageSpec(name="hardware", command="test", check_pools=True, rig_retries=1)
    assert health.retry_on_other_rig(None, once, "rover", bots=lab_of("a", "b", "c"))([first, second], [T]) is None


def test_no_rerun_without_a_healthy_other_rig_nor_for_a_test_that_is_not_on_the_lab():
    first = attempt((T, bep.FAILED), (U, bep.FAILED), runs=[ran(T, "rover-rigs-1", 1)])
    alone = health.retry_on_other_rig(None, SPEC, "rover", bots=lab_of("rover-rigs-1"))
    assert alone([first], [T, U]) is None  # no other rig at all: no wait
    waits = []
    drained = health.retry_on_other_rig(None, SPEC, "rover", wait=waits.append,
                                        bots=lab_of("rover-rigs-1", "rover-rigs-2", unhealthy=("rover-rigs-2",)))
    assert drained([first], [T, U]) is None
    assert waits == [health.RESTING_SECONDS]  # asked again once: the other rig may only be resting
    # U has no run on a rig (a plain test, or the lab did not say): never this policy's.
    two = health.retry_on_other_rig(None, SPEC, "rover", bots=lab_of("rover-rigs-1", "rover-rigs-2"))
    assert two([first], [T, U]).targets == (T,)

    def unreachable(flags):
        raise OSError("no lab")

    assert health.retry_on_other_rig(None, SPEC, "rover", bots=unreachable)([first], [T]) is None


def test_tests_that_failed_on_different_rigs_are_not_sent_where_no_rig_is_left():
    first = attempt((T, bep.FAILED), (U, bep.FAILED), runs=[ran(T, "rover-rigs-1", 1), ran(U, "rover-rigs-2", 1)])
    policy = health.retry_on_other_rig(None, SPEC, "rover", bots=lab_of("rover-rigs-1", "rover-rigs-2"))
    retry = policy([first], [T, U])
    assert (retry.targets, retry.flags) == ((T,), ("--test_env=CONVOY_AVOID_RIGS=rover-rigs-1",))


def test_the_failure_is_the_rigs_only_when_every_run_on_every_rig_exited_75():
    infra = [attempt((T, bep.FAILED), runs=[ran(T, "rover-rigs-1", 75)]),
             attempt((T, bep.FAILED), runs=[ran(T, "rover-rigs-2", 75)], kind="rig", reason="r")]
    assert health.rig_failure(infra, T)
    product = [infra[0], attempt((T, bep.FAILED), runs=[ran(T, "rover-rigs-2", 1)], kind="rig", reason="r")]
    assert not health.rig_failure(product, T)
    assert not health.rig_failure([attempt((T, bep.FAILED))], T)  # no record of a rig: not the rigs'
    # judge turns it into an infrastructure error (re-queued), a product failure into a rejection.
    assert retries.judge(infra, infra=health.rig_failure).outcome is Outcome.INFRA_ERROR
    assert retries.judge(product, infra=health.rig_failure).outcome is Outcome.TESTS_FAILED


def test_a_failure_counts_against_a_rig_only_when_the_test_passed_on_another():
    moved = [attempt((T, bep.FAILED), runs=[ran(T, "rover-rigs-1", 75)]),
             attempt((T, bep.PASSED), runs=[ran(T, "rover-rigs-2", 0)], kind="rig", reason="r")]
    seen = health.observations(moved)
    assert [(o.rig, o.ok, o.counts) for o in seen] == [("rover-rigs-1", False, True), ("rover-rigs-2", True, False)]
    assert seen[0].reason == f"{T} exit 75: a rig-side failure; passed on rover-rigs-2"
    everywhere = [attempt((T, bep.FAILED), runs=[ran(T, "rover-rigs-1", 1)]),
                  attempt((T, bep.FAILED), runs=[ran(T, "rover-rigs-2", 1)], kind="rig", reason="r")]
    assert [o.counts for o in health.observations(everywhere)] == [False, False]


def test_the_book_moves_a_rig_good_suspect_bad_and_only_a_person_brings_it_back(tmp_path):
    book = HealthBook(tmp_path)
    fail = Observation(rig="r1", pool=POOL, ok=False, counts=True, target=T, reason="exit 75")
    nothing = Observation(rig="r1", pool=POOL, ok=False, counts=False, target=T, reason="failed everywhere")
    passed = Observation(rig="r1", pool=POOL, ok=True, target=T)
    assert book.state_of("r1") == GOOD
    assert [(c.old, c.new) for c in book.observe([fail], bad_after=3)] == [(GOOD, SUSPECT)]
    assert book.observe([nothing]) == []  # recorded, not counted
    assert [(c.old, c.new) for c in book.observe([passed])] == [(SUSPECT, GOOD)]  # a pass resets the streak
    changes = book.observe([fail, fail, fail], bad_after=3)
    assert [(c.old, c.new) for c in changes] == [(GOOD, SUSPECT), (SUSPECT, BAD)]
    assert changes[-1].event_data() == {"rig": "r1", "pool": POOL, "old": SUSPECT, "new": BAD, "by": "convoy",
                                        "reason": changes[-1].reason}
    assert "3 hardware failure(s) in a row" in changes[-1].reason
    assert book.observe([passed]) == [] and book.state_of("r1") == BAD  # a bad rig gets no work to pass
    record = json.loads((tmp_path / "health.json").read_text())["rigs"]["r1"]
    assert [f["counted"] for f in record["failures"]] == [True, False, True, True, True]  # the last 5
    back = book.set_state("r1", POOL, GOOD, reason="new flash chip", by="ana")
    assert (back.old, back.new, back.by, back.reason) == (BAD, GOOD, "ana", "new flash chip")
    assert book.set_state("r1", POOL, GOOD, reason="again", by="ana") is None
    assert book.set_state("r1", POOL, MAINTENANCE, reason="x", by="bo").new == MAINTENANCE
    assert book.observe([fail, passed]) == [] and book.state_of("r1") == MAINTENANCE
    assert not list(tmp_path.glob(".health.json.*"))  # no temporary file left


class _Tx:
    def __init__(self, events):
        self.events = events

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_event(self, type, **kwargs):
        self.events.append((type, kwargs["data"]))


class _Store:
    def __init__(self):
        self.events = []

    def transaction(self):
        return _Tx(self.events)


def test_observe_rigs_writes_the_labs_book_and_events_and_never_raises(tmp_path):
    config = parse_config("stages:\n  - {name: hardware, command: test, check_pools: true, rig_bad_after: 1,"
                          " lab_dir: lab}\n", str(tmp_path / "convoy.yaml"))
    spec = config.stages[0]
    moved = [attempt((T, bep.FAILED), runs=[ran(T, "rover-rigs-1", 75)]),
             attempt((T, bep.PASSED), runs=[ran(T, "rover-rigs-2", 0)], kind="rig", reason="r")]
    store = _Store()
    health.observe_rigs(store, config, spec, "rover", moved, None)  # no lab.json there: nothing recorded
    assert store.events == [] and not (tmp_path / "lab" / "health.json").exists()
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "lab.json").write_text(json.dumps({"server": "127.0.0.1:50111"}))  # another lab
    health.observe_rigs(store, config, spec, "rover", moved, None)
    assert store.events == []
    (tmp_path / "lab" / "lab.json").write_text(json.dumps({"server": "127.0.0.1:50999"}))
    health.observe_rigs(store, config, spec, "rover", moved, None)
    assert [(t, d["rig"], d["old"], d["new"]) for t, d in store.events] == [
        (models.RIG_HEALTH_CHANGED, "rover-rigs-1", GOOD, BAD)]
    assert HealthBook(tmp_path / "lab").state_of("rover-rigs-1") == BAD

    class Broken(_Store):
        def transaction(self):
            raise RuntimeError("the store is gone")

    (tmp_path / "lab" / "health.json").unlink()
    health.observe_rigs(Broken(), config, spec, "rover", moved, None)  # logged, not raised
