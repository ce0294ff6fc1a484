"""The hardware lab end to end: real PostgreSQL, BuildGrid, rig workers and Bazel.

What is checked comes from the workers' own records (records.jsonl: which
worker of which pool ran which target's action, when) and from what the
server says, not from the tests' output alone.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
import zipfile
from pathlib import Path

import pytest

from convoy.lab import pools

from tests.support.lab import LabHandle, ends, resume_rig, stop_rig, wait_for

pytestmark = pytest.mark.slow  # the session's lab

ROVER = ["//labtests:rover_a_test", "//labtests:rover_b_test"]
# Where each test must run, in the default (rover) configuration.
EXPECTED_POOL = {
    "//labtests:rover_a_test": "rover-rigs",
    "//labtests:rover_b_test": "rover-rigs",
    "//labtests:drone_test": "drone-rigs",
    "//integration:flash_and_drive_test": "rover-rigs",
    "//labtests:plain_test": "default",
    "//integration:plan_to_motion_test": "default",
    "//integration:telemetry_roundtrip_test": "default",
    "//integration:protocol_compat_test": "default",
}


def _results(output: str) -> dict:
    found = re.findall(r"^(//\S+)\s+(?:\(cached\) )?(PASSED|FAILED|SKIPPED|NO STATUS|TIMEOUT|FLAKY)", output, re.M)
    return dict(found)


def _overlap(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def test_lab_status_lists_pools_workers_and_rig_health(lab: LabHandle, convoy, capsys):
    assert convoy("lab", "status", f"--lab_dir={lab.lab.dir}") == 0
    out = capsys.readouterr().out
    assert out.startswith("lab: up\n"), out
    assert "pool rover-rigs: 2 worker(s), 2 healthy" in out
    assert "pool drone-rigs: 1 worker(s), 1 healthy" in out
    assert "pool default: 1 worker(s), 1 healthy" in out
    assert re.search(r"rover-rigs-1 +server: OK +rig 127\.0\.0\.1:\d+ \(rover\) healthy +idle", out), out


def test_lab_up_again_keeps_what_runs(lab: LabHandle, convoy, capsys):
    before = {k: v["pid"] for k, v in lab.lab.state()["processes"].items()}
    assert convoy("lab", "up", f"--lab_dir={lab.lab.dir}") == 0
    assert {k: v["pid"] for k, v in lab.lab.state()["processes"].items()} == before
    assert f"grpc://127.0.0.1:{lab.port}" in capsys.readouterr().out


@pytest.mark.bazel
def test_hardware_tests_land_on_their_pool_and_nothing_else_does(lab: LabHandle, hil):
    mark = len(lab.records())
    result = hil("//labtests/...", "//integration/...")
    assert result.returncode == 0, result
    assert _results(result.output) == {target: "PASSED" for target in EXPECTED_POOL}, result
    done = ends(lab.records_since(mark))
    assert {r["target"] for r in done} == set(EXPECTED_POOL)
    for r in done:
        assert r["pool"] == EXPECTED_POOL[r["target"]], f"{r['target']} ran on {r['worker']} of pool {r['pool']}"
        assert r["status"] == "OK" and r["exit_code"] == 0, r
        assert bool(r["rig"]) == (r["pool"] != "default"), r
    # A hardware test is one action on a rig: its test.xml comes back from
    # the rig (no second spawn takes the rig to write it).
    rig_runs = [r for r in done if r["pool"] != "default"]
    assert len(rig_runs) == 4, rig_runs
    testlogs = hil.bazel.output_path("bazel-testlogs")
    assert "<testsuite" in (testlogs / "labtests" / "drone_test" / "test.xml").read_text()
    with zipfile.ZipFile(testlogs / "labtests" / "drone_test" / "test.outputs" / "outputs.zip") as z:
        assert '"board": "drone"' in z.read("rig.json").decode()


def test_a_rig_refuses_an_action_that_does_not_name_its_pool(lab: LabHandle, tmp_path):
    # The scheduler matches a job without Pool to any bot; the rig worker
    # must not run it. (bgd execute: BuildGrid's own client; Rig pins the rig.)
    (tmp_path / "in").mkdir()
    marker = tmp_path / "ran"
    mark = len(lab.records())
    proc = subprocess.run(
        [str(lab.lab.python.parent / "bgd"), "execute", f"--remote=http://127.0.0.1:{lab.port}", "--instance-name=convoy",
         "command", "-p", "Rig", "rover-rigs-1", str(tmp_path / "in"), "/usr/bin/touch", str(marker)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert "runs only actions with Pool=rover-rigs; this one has no Pool" in proc.stdout, proc.stdout + proc.stderr
    assert not marker.exists()
    assert [(r["worker"], r["status"]) for r in ends(lab.records_since(mark))] == [("rover-rigs-1", "FAILED_PRECONDITION")]


@pytest.mark.bazel
def test_two_rigs_of_a_pool_run_two_tests_at_once_never_two_on_one_rig(lab: LabHandle, hil, tmp_path):
    mark = len(lab.records())
    # Each test waits until both have started: they pass only if they ran at once.
    result = hil(*ROVER, f"--test_env=LAB_BARRIER={tmp_path}:2")
    assert result.returncode == 0, result
    a, b = (next(r for r in ends(lab.records_since(mark), t)) for t in ROVER)
    assert {a["worker"], b["worker"]} == {"rover-rigs-1", "rover-rigs-2"}
    assert a["rig"] != b["rig"]
    assert _overlap(a, b)
    # Over everything the lab ran so far: never two actions on one rig at once.
    by_rig: dict = {}
    for r in ends(lab.records()):
        if r["rig"]:
            by_rig.setdefault(r["rig"], []).append(r)
    for runs in by_rig.values():
        runs.sort(key=lambda r: r["start"])
        for first, second in zip(runs, runs[1:]):
            assert first["end"] <= second["start"], f"{first} and {second} overlap on one rig"


@pytest.mark.bazel
def test_an_unhealthy_rig_is_taken_out_and_tests_go_to_the_healthy_one(lab: LabHandle, hil):
    stop_rig(lab, "rover-rigs-1")
    try:
        assert lab.bots()["rover-rigs-1"].status == "UNHEALTHY"
        mark = len(lab.records())
        result = hil(*ROVER)
        assert result.returncode == 0, result
        done = ends(lab.records_since(mark))
        assert sorted(r["target"] for r in done) == ROVER
        assert {r["worker"] for r in done} == {"rover-rigs-2"}
    finally:
        resume_rig(lab, "rover-rigs-1")


def test_pool_without_a_healthy_worker_is_reported_not_waited_for(lab: LabHandle):
    pools.check_pools({"rover-rigs", "drone-rigs"}, lab.address)
    stop_rig(lab, "drone-rigs-1")
    try:
        with pytest.raises(pools.NoHealthyWorker) as e:
            pools.check_pools({"rover-rigs", "drone-rigs", "boat-rigs"}, lab.address)
        assert e.value.problems == ("no healthy worker in pool boat-rigs", "no healthy worker in pool drone-rigs")
    finally:
        resume_rig(lab, "drone-rigs-1")


@pytest.mark.bazel
def test_an_interrupted_run_leaves_nothing_queued_for_a_rig(lab: LabHandle, hil):
    stop_rig(lab, "drone-rigs-1")  # the drone test will wait in the queue
    try:
        with pools.invocation(lab.address) as invocation:
            argv = [
                "bazel", f"--output_user_root={hil.bazel_root}", "test", "--symlink_prefix=/", "--config=hil",
                f"--remote_executor=grpc://127.0.0.1:{lab.port}", "--nocache_test_results", "--noremote_accept_cached",
                f"--invocation_id={invocation}", "--test_env=LAB_STALE=1", "//labtests:drone_test",
            ]
            process = subprocess.Popen(
                argv, cwd=hil.bazel.workspace, env=hil.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                queued = wait_for(
                    lambda: pools.ask(lab.address, "operations", f"--filter=invocation_id={invocation}"), 120,
                    "the drone test to be queued",
                )
                process.send_signal(signal.SIGINT)  # Ctrl-C
                assert process.wait(timeout=60) != 0
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            # Measured: Bazel 4.2.3 leaves its queued operation behind on Ctrl-C.
            ops = pools.ask(lab.address, "operations", f"--filter=invocation_id={invocation}")
            assert [op["stage"] for op in ops] == ["QUEUED"]
        # Leaving invocation() cancelled it.
        assert pools.ask(lab.address, "operations", f"--filter=invocation_id={invocation} & stage != completed") == []
    finally:
        resume_rig(lab, "drone-rigs-1")
    stale = queued[0]["action"]
    mark = len(lab.records())
    result = hil("//labtests:drone_test")  # the rig is back and takes the next test, not the stale one
    assert result.returncode == 0, result
    assert [r["target"] for r in ends(lab.records_since(mark))] == ["//labtests:drone_test"]
    assert stale not in {r["action"] for r in lab.records()}


@pytest.mark.bazel
def test_a_failing_hardware_test_fails_with_its_log(lab: LabHandle, hil):
    mark = len(lab.records())
    result = hil("//labtests:drone_test", "--test_env=LAB_FAIL=1")
    assert result.returncode != 0
    assert _results(result.output) == {"//labtests:drone_test": "FAILED"}, result
    assert "failing on purpose on the drone rig at 127.0.0.1:" in result.output  # the log came back from the rig
    (run,) = ends(lab.records_since(mark))
    assert (run["worker"], run["status"], run["exit_code"]) == ("drone-rigs-1", "OK", 1)


@pytest.mark.bazel
def test_an_action_timeout_is_enforced_on_the_rig(lab: LabHandle, hil, tmp_path):
    mark = len(lab.records())
    result = hil("//labtests:rover_a_test", f"--test_env=LAB_HOLD={tmp_path}", "--test_timeout=5")
    assert result.returncode != 0
    assert _results(result.output) == {"//labtests:rover_a_test": "TIMEOUT"}, result
    (run,) = ends(lab.records_since(mark))
    assert run["status"] == "DEADLINE_EXCEEDED" and run["pool"] == "rover-rigs", run


def _held_run(lab: LabHandle, hil, target: str, gate: Path):
    """Starts `bazel test <target>` that holds its rig until gate/release exists; returns (future, start record)."""
    mark = len(lab.records())
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(hil, target, f"--test_env=LAB_HOLD={gate}")
    pool.shutdown(wait=False)
    name = target.rpartition(":")[2]
    wait_for(lambda: (gate / f"{name}.started").exists() or future.done(), 120, f"{target} to start on a rig")
    assert not future.done(), future.result()
    start = next(r for r in lab.records_since(mark) if r["event"] == "start" and r["target"] == target)
    return future, start, mark


@pytest.mark.bazel
def test_a_worker_killed_during_a_test_gives_a_retry_not_a_hang(lab: LabHandle, hil, tmp_path):
    future, start, mark = _held_run(lab, hil, "//labtests:rover_a_test", tmp_path)
    victim = start["worker"]
    pgid = wait_for(lambda: lab.lab.worker_state(victim).get("pgid"), 10, "the worker to report its command")
    try:
        os.kill(lab.pid(f"worker:{victim}"), signal.SIGKILL)
        # The test's whole process group dies with its worker (guard.py).
        wait_for(lambda: not _group_alive(pgid), 10, "the killed worker's command to go away")
        (tmp_path / "release").touch()
        result = future.result(timeout=300)
    finally:
        (tmp_path / "release").touch()
        lab.up()  # bring the killed worker back
    assert result.returncode == 0, result
    runs = [r for r in lab.records_since(mark) if r["target"] == "//labtests:rover_a_test"]
    assert [(r["event"], r["worker"]) for r in runs if r["worker"] == victim] == [("start", victim)]
    retried = ends(runs)
    assert len(retried) == 1 and retried[0]["worker"] != victim and retried[0]["status"] == "OK", runs
    assert retried[0]["action"] == start["action"]
    lab.wait_bot(victim, healthy=True)


@pytest.mark.bazel
def test_a_server_restart_is_survived(lab: LabHandle, hil, tmp_path):
    future, start, mark = _held_run(lab, hil, "//labtests:rover_b_test", tmp_path)
    old = lab.pid("server")
    try:
        os.kill(old, signal.SIGKILL)
        lab.up()  # the server comes back on its port, with its database
        assert lab.pid("server") != old
        (tmp_path / "release").touch()
        result = future.result(timeout=300)
    finally:
        (tmp_path / "release").touch()
    assert result.returncode == 0, result
    assert _results(result.output) == {"//labtests:rover_b_test": "PASSED"}, result
    done = ends(lab.records_since(mark), "//labtests:rover_b_test")
    assert [(r["worker"], r["status"]) for r in done] == [(start["worker"], "OK")]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
