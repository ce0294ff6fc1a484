"""Rig health on the real lab (convoy.lab.health): `convoy process` runs a
hardware stage against the session's lab (tests/lab/conftest.py: two rover
rigs), on one integration repository for the module.

A physical rig cannot break on cue here: the simulated rig's `fault` op
(examples/rig/rig_sim.py, tests/support/lab.py's `rig_fault`) is the
stand-in for broken hardware: with "flash" every flash fails as the rig's
own failure, and the sample's hardware test exits 75 (examples/rig/rig_client.py).

- a rig whose flash breaks: the test fails there (75), runs again on the
  other rig and passes, the request merges, `convoy show` names both rigs
  and why; after `rig_bad_after` (2 here) such tasks the rig is bad: a
  RIG_HEALTH_CHANGED event each step, its worker reports UNHEALTHY and the
  next hardware test never reaches it. The first run is sent to the broken
  rig by the stage's own `--test_env=CONVOY_AVOID_RIGS=rover-rigs-2` (the
  retry's flag, which comes later, overrides it), so that which rig takes
  the test is not left to the scheduler;
- `convoy lab rig X --maintenance` drains X, `--good` puts it back, each an
  event naming who; `convoy lab status` shows health and last failures;
- exit 75 on every rig: an infrastructure error, the request re-queued;
- a change that breaks the hardware test on every rig (controller v1.3.0
  does not fit the drone's flash; a second drone rig is added for it and
  removed after): rejected.
"""

from __future__ import annotations

import contextlib
import io
from typing import Iterator

import pytest

from convoy import models
from convoy.lab.rig_health import BAD, GOOD, MAINTENANCE, SUSPECT, HealthBook
from convoy.models import RequestState

from tests.lab.test_driver_lab import hardware_tasks, submit_messages
from tests.support.integration import Integration, config_text
from tests.support.lab import LabHandle, ends, rig_fault, run_convoy, wait_for

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

TEST = "//integration:flash_and_drive_test"
BROKEN, OTHER = "rover-rigs-1", "rover-rigs-2"
PIN = "--test_env=CONVOY_AVOID_RIGS=rover-rigs-2"  # the first run goes to the broken rig

STAGE = """\
stages:
  - name: hardware
    command: test
    tag_filter: convoy-hardware
    timeout: 300
    check_pools: true
    rig_bad_after: 2
    lab_dir: {lab_dir}
    flags: [--config=hil, "--remote_executor=grpc://127.0.0.1:{port}", --remote_instance_name=convoy{extra}]
"""


@pytest.fixture(scope="module")
def line(lab: LabHandle, make_integration) -> Integration:
    return make_integration("hil-health", config_text(stages=STAGE.format(port=lab.port, lab_dir=lab.lab.dir,
                                                                          extra="")))


@contextlib.contextmanager
def stage_flags(lab: LabHandle, line: Integration, extra: str) -> Iterator[None]:
    """The hardware stage with `extra` flags (", --flag") while the block runs."""
    config = line.checkout / "convoy.yaml"
    original = config.read_text()
    config.write_text(original.replace(STAGE.format(port=lab.port, lab_dir=lab.lab.dir, extra=""),
                                       STAGE.format(port=lab.port, lab_dir=lab.lab.dir, extra=extra)))
    try:
        yield
    finally:
        config.write_text(original)


def rig_events(line: Integration, since: int = 0) -> list[dict]:
    return [e.data for e in line.events() if e.type == models.RIG_HEALTH_CHANGED and e.id > since]


def last_event(line: Integration) -> int:
    return max((e.id for e in line.events()), default=0)


def lab_status(lab: LabHandle) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_convoy("lab", "status", f"--lab_dir={lab.lab.dir}")
    return out.getvalue()


def rover_target(line: Integration, request_id: int) -> dict:
    [target] = [t for t in hardware_tasks(line, request_id)["rover"]["targets"] if t["label"] == TEST]
    return target


def test_a_broken_rig_is_retried_around_then_drained(lab: LabHandle, line: Integration):
    book = HealthBook(lab.lab.dir)
    since = last_event(line)
    rig_fault(lab, BROKEN, "flash")
    try:
        with stage_flags(lab, line, f", {PIN}"):
            for step, state in enumerate((SUSPECT, BAD)):
                mark = len(lab.records())
                request_id = submit_messages(line, "rover")
                run = line.process("--once")
                assert run.code == 0, run
                assert line.request(request_id).state == RequestState.MERGED, run
                target = rover_target(line, request_id)
                assert (target["status"], target["rigs"]) == ("flaky", [BROKEN, OTHER]), target
                assert f"failed on {BROKEN} (exit 75: a rig-side failure)" in target["notes"][0], target
                assert f"not {BROKEN}" in target["notes"][0]
                ran = [(r["worker"], r["exit_code"]) for r in ends(lab.records_since(mark), TEST) if r["status"] == "OK"]
                assert ran == [(BROKEN, 75), (OTHER, 0)], ran
                # Leases given back because the run avoided the rig: a few, not a hot loop (each is
                # one of BuildGrid's 5 tries of the job; the worker rests 2 s after one).
                gave_back = [r for r in ends(lab.records_since(mark), TEST) if r["status"] == "UNAVAILABLE"]
                print(f"request {request_id}: {len(gave_back)} lease(s) given back")
                assert len(gave_back) <= 3, gave_back
                assert book.state_of(BROKEN) == state and book.state_of(OTHER) == GOOD
        moved = rig_events(line, since)
        assert [(e["rig"], e["pool"], e["old"], e["new"], e["by"]) for e in moved] == [
            (BROKEN, "rover-rigs", GOOD, SUSPECT, "convoy"), (BROKEN, "rover-rigs", SUSPECT, BAD, "convoy")]
        assert "passed on rover-rigs-2" in moved[-1]["reason"]
        lab.wait_bot(BROKEN, healthy=False, timeout=30)  # drained: its worker reports UNHEALTHY
        shown = lab_status(lab)
        assert "health bad" in shown and f"failed " in shown and "exit 75: a rig-side failure" in shown, shown
        # The next hardware test never reaches the bad rig.
        mark = len(lab.records())
        request_id = submit_messages(line, "rover")
        run = line.process("--once")
        assert run.code == 0 and line.request(request_id).state == RequestState.MERGED, run
        assert rover_target(line, request_id)["rigs"] == [OTHER]
        assert [r for r in lab.records_since(mark) if r["worker"] == BROKEN] == []
    finally:
        rig_fault(lab, BROKEN, None)
        assert run_convoy("lab", "rig", BROKEN, "--good", "--by=lab-test", "--reason=repaired",
                          f"--lab_dir={lab.lab.dir}", f"--repo={line.checkout}") == 0
        lab.wait_bot(BROKEN, healthy=True)
    [back] = rig_events(line, since)[2:]
    assert (back["old"], back["new"], back["by"], back["reason"]) == (BAD, GOOD, "lab-test", "repaired")


def test_maintenance_drains_a_rig_and_good_puts_it_back(lab: LabHandle, line: Integration):
    since = last_event(line)
    try:
        assert run_convoy("lab", "rig", OTHER, "--maintenance", "--by=ana", "--reason=new motor",
                          f"--lab_dir={lab.lab.dir}", f"--repo={line.checkout}") == 0
        lab.wait_bot(OTHER, healthy=False, timeout=30)
        assert "health maintenance" in lab_status(lab) and "by ana: new motor" in lab_status(lab)
    finally:
        assert run_convoy("lab", "rig", OTHER, "--good", "--by=ana", f"--lab_dir={lab.lab.dir}",
                          f"--repo={line.checkout}") == 0
        lab.wait_bot(OTHER, healthy=True, timeout=30)
    assert [(e["rig"], e["old"], e["new"], e["by"]) for e in rig_events(line, since)] == [
        (OTHER, GOOD, MAINTENANCE, "ana"), (OTHER, MAINTENANCE, GOOD, "ana")]
    assert run_convoy("lab", "rig", "no-such-rig", "--good", f"--lab_dir={lab.lab.dir}") == 2


def test_exit_75_on_every_rig_is_an_infrastructure_error_not_a_rejection(lab: LabHandle, line: Integration):
    since = last_event(line)
    for rig in (BROKEN, OTHER):
        rig_fault(lab, rig, "flash")
    try:
        request_id = submit_messages(line, "rover")
        run = line.process("--once")
        assert run.code == 0, run
        request = line.request(request_id)
        assert request.state == RequestState.QUEUED, (request, run)
        types = [e.type for e in line.events(request_id)]
        assert models.REQUEST_REQUEUED in types and models.REQUEST_REJECTED not in types, types
        task = hardware_tasks(line, request_id)["rover"]
        assert task["outcome"] == "INFRA_ERROR" and "rig-side failures, not the change's" in task["detail"], task
        assert sorted(rover_target(line, request_id)["rigs"]) == [BROKEN, OTHER]
        assert rig_events(line, since) == []  # a failure on every rig counts against none
    finally:
        for rig in (BROKEN, OTHER):
            rig_fault(lab, rig, None)
    assert line.convoy("cancel", str(request_id)).code == 0


def test_a_change_that_breaks_the_hardware_test_on_every_rig_is_rejected(lab: LabHandle, line: Integration):
    assert run_convoy("lab", "up", f"--lab_dir={lab.lab.dir}", "--rigs=rover-rigs:2,drone-rigs:2") == 0
    try:
        request_id = line.submit("--component=controller", "--version=v1.3.0", "--configuration=drone",
                                 "--requested_by=lab-test")
        run = line.process("--once")
        assert run.code == 0, run
        assert line.request(request_id).state == RequestState.REJECTED, run
        [target] = [t for t in hardware_tasks(line, request_id)["drone"]["targets"] if t["label"] == TEST]
        assert (target["status"], sorted(target["rigs"])) == ("failed", ["drone-rigs-1", "drone-rigs-2"]), target
    finally:
        assert run_convoy("lab", "up", f"--lab_dir={lab.lab.dir}", "--rigs=rover-rigs:2,drone-rigs:1") == 0
