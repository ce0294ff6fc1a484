"""The driver's hardware stage on the real lab: `convoy process` with a
convoy.yaml whose hardware stage runs `--config=hil` against the session's
lab (tests/lab/conftest.py) and has `check_pools: true`.

One integration repository for the module (real git, the real Bazel, made
by the `make_integration` fixture of tests/conftest.py), with the hardware
stage only: the other stages do not touch the lab and are tested elsewhere.
What ran where is read from the workers' records and the server's
operations, not from Bazel's output. (convoy.lab.stage without a lab:
test_stage.py.)
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Optional

import pytest

from convoy import models
from convoy.lab import pools
from convoy.models import RequestState

from tests.support.integration import CONVOY, Integration, config_text
from tests.support.lab import LabHandle, ends, resume_rig, stop_rig, wait_for
from tests.support.queue import assert_merged_once

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

TEST = "//integration:flash_and_drive_test"
POOL = {"rover": "rover-rigs", "drone": "drone-rigs"}
MESSAGES = ("v1.5.0", "v1.4.0")  # messages versions whose hardware test passes in both configurations

HARDWARE_STAGE = """\
stages:
  - name: hardware
    command: test
    tag_filter: convoy-hardware
    timeout: 300
    check_pools: true
    flags: [--config=hil, "--remote_executor=grpc://127.0.0.1:{port}", --remote_instance_name=convoy]
"""


@pytest.fixture(scope="module")
def line(lab: LabHandle, make_integration) -> Integration:
    return make_integration("hil-driver", config_text(stages=HARDWARE_STAGE.format(port=lab.port)))


def submit_messages(it: Integration, configuration: Optional[str] = None) -> int:
    """A bump of messages (both configurations, or one) to a version origin does not pin yet."""
    pinned = {it.origin_pin(c, "messages") for c in ([configuration] if configuration else POOL)}
    version = next(v for v in MESSAGES if v not in pinned)
    scope = [f"--configuration={configuration}"] if configuration else []
    return it.submit("--component=messages", f"--version={version}", "--requested_by=lab-test", *scope)


def hardware_tasks(it: Integration, request_id: int) -> dict:
    """configuration -> the hardware task of the request's last build (convoy show --json)."""
    build = it.show(request_id)["builds"][-1]
    stage = next(s for s in build["stages"] if s["name"] == "hardware")
    return {t["configuration"]: t for t in stage["tasks"]}


def invocation_of(task: dict) -> str:
    """The --invocation_id of the task's last Bazel run (its log's first line is the command)."""
    header = Path(task["log_path"]).read_text().splitlines()[0]
    return re.search(r"--invocation_id=(\S+)", header).group(1)


def operations(lab: LabHandle, invocation_id: str, unfinished: bool = False) -> list:
    query = f"invocation_id={invocation_id}" + (" & stage != completed" if unfinished else "")
    return pools.ask(lab.address, "operations", f"--filter={query}")


def test_a_good_bump_runs_its_hardware_tests_on_rigs_of_their_pool(lab: LabHandle, line: Integration):
    mark = len(lab.records())
    request_id = submit_messages(line)
    run = line.process("--once")
    assert run.code == 0, run
    assert_merged_once(line, request_id)
    done = ends(lab.records_since(mark))
    on_rigs = [r for r in done if r["rig"]]
    assert sorted((r["target"], r["pool"]) for r in on_rigs) == [(TEST, "drone-rigs"), (TEST, "rover-rigs")], done
    assert all(r["pool"] == "default" for r in done if not r["rig"]), done
    tasks = hardware_tasks(line, request_id)
    assert set(tasks) == set(POOL)
    for configuration, task in tasks.items():
        assert (task["state"], task["outcome"]) == ("succeeded", "PASSED"), task
        # The rig run of this configuration's test is an action of this task's invocation.
        invocation = invocation_of(task)
        actions = {op["action"] for op in operations(lab, invocation)}
        ran = [r for r in on_rigs if r["action"] in actions]
        assert [(r["pool"], r["status"], r["exit_code"]) for r in ran] == [(POOL[configuration], "OK", 0)], ran
        assert operations(lab, invocation, unfinished=True) == []
        assert not Path(task["log_path"]).with_suffix(".invocation").exists()  # no ledger left after a clean exit
    # The release's provenance names the rig that ran each configuration's test (the workers' own
    # records say the same), and convoy verify checks that each is a rig of its test's pool.
    tag = line.request(request_id).tag
    statement = json.loads((line.checkout / ".convoy" / "releases" / tag / "provenance.intoto.json").read_text())
    claimed = {b["annotations"]["configuration"]: b["annotations"]["hardware"]
               for b in statement["predicate"]["runDetails"]["byproducts"] if b["annotations"]["stage"] == "hardware"}
    for configuration, pool in POOL.items():
        [run_on] = claimed[configuration]
        [record] = [r for r in on_rigs if r["action"] == run_on["action"]]
        assert (run_on["target"], run_on["pool"], run_on["worker"]) == (TEST, pool, f"{pool}/{record['worker']}")
    checked = line.convoy("verify", tag)
    assert checked.code == 0, checked
    assert "2 hardware tests ran on rigs of their pools" in checked.out, checked


def test_a_pool_without_a_healthy_worker_requeues_the_request_and_reaches_no_rig(lab: LabHandle, line: Integration):
    stop_rig(lab, "drone-rigs-1")  # the lab's only drone rig stops answering
    try:
        mark = len(lab.records())
        request_id = submit_messages(line, "drone")
        run = line.process("--once")
        assert run.code == 0, run
        request = line.request(request_id)
        assert (request.state, request.attempts) == (RequestState.QUEUED, 1), request
        assert request.detail == "pool check before stage hardware failed: no healthy worker in pool drone-rigs"
        types = [e.type for e in line.events(request_id)]
        assert models.REQUEST_REQUEUED in types and models.REQUEST_REJECTED not in types, types
        assert hardware_tasks(line, request_id)["drone"]["runs"] == 0  # Bazel never ran its test
        assert lab.records_since(mark) == []  # no action of it reached a worker, let alone a rig
    finally:
        resume_rig(lab, "drone-rigs-1")
    assert line.convoy("cancel", str(request_id)).code == 0


HOLD = """\
/usr/bin/touch "$1/started"
while [ ! -e "$1/release" ]; do /bin/sleep 0.1; done
"""


def test_a_killed_driver_leaves_no_stale_action_for_a_rig(lab: LabHandle, line: Integration, tmp_path: Path):
    # The drone rig is busy (a command that waits for a file), so the killed
    # run's test stays queued on the server, as it would behind a long test.
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "hold.sh").write_text(HOLD)
    hold = subprocess.Popen(
        [str(lab.lab.python.parent / "bgd"), "execute", f"--remote=http://127.0.0.1:{lab.port}",
         "--instance-name=convoy", "command", "-p", "Pool", "drone-rigs", "--", str(tmp_path / "in"),
         "/bin/sh", "hold.sh", str(tmp_path)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    config = line.checkout / "convoy.yaml"
    original = config.read_text()
    resumed = None
    try:
        wait_for(lambda: (tmp_path / "started").exists(), 60, "the hold to take the drone rig")
        mark = len(lab.records())
        request_id = submit_messages(line, "drone")
        killed = line.process("--once", failpoint="task_running")  # SIGKILL once its Bazel client runs
        assert killed.code == -signal.SIGKILL, killed
        ledger = Path(hardware_tasks(line, request_id)["drone"]["log_path"]).with_suffix(".invocation")
        stale_id = json.loads(ledger.read_text())["invocation_id"]
        # The killed driver's Bazel client goes on alone and queues the test behind the hold.
        wait_for(lambda: [op for op in operations(lab, stale_id) if op["stage"] == "QUEUED"], 120,
                 "the killed run's test to be queued")
        # The resumed run's test differs from the stale one (another action digest), so
        # that the records tell them apart.
        config.write_text(original.replace("--remote_instance_name=convoy]",
                                           "--remote_instance_name=convoy, --test_env=LAB_RUN=resumed]"))
        resumed = subprocess.Popen([str(CONVOY), "process", "--once"], cwd=line.checkout, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        # Before its own run, the resumed driver cancels what the killed one left queued.
        wait_for(lambda: not operations(lab, stale_id, unfinished=True), 120, "the stale operation to be cancelled")
        stale = {op["action"] for op in operations(lab, stale_id)}
        assert stale
        (tmp_path / "release").touch()
        out, _ = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, out
    finally:
        (tmp_path / "release").touch()
        config.write_text(original)
        for process in (hold, resumed):
            if process is not None and process.poll() is None:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    assert f"resuming request #{request_id}" in out
    assert_merged_once(line, request_id)
    task = hardware_tasks(line, request_id)["drone"]
    assert (task["state"], task["runs"]) == ("succeeded", 2), task
    fresh = {op["action"] for op in operations(lab, invocation_of(task))}
    tests = [r for r in ends(lab.records_since(mark)) if r["target"] == TEST]
    assert [(r["pool"], r["status"], r["action"] in fresh) for r in tests] == [("drone-rigs", "OK", True)], tests
    assert not stale & {r["action"] for r in lab.records()}  # the stale test never reached a worker
