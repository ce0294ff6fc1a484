"""Which rig ran each hardware test: the `.rigs.json` record that
convoy.lab.stage.lab_invocation writes beside a task's log once its Bazel
run has ended, from what the lab's server knows (convoy.lab.service `runs`).

On the session's lab (tests/lab/conftest.py): a rover and a drone test run
through lab_invocation with the real Bazel; the record names each test, its
pool and a worker of that pool, and agrees with the workers' own records.
Without a lab: an unreachable lab gives an error line and no runs, and does
not fail the run; a Bazel run that raised leaves no record.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from convoy.lab import pools
from convoy.lab.stage import lab_invocation

from tests.support.lab import LabHandle, ends

POOL = {"//labtests:rover_a_test": "rover-rigs", "//labtests:drone_test": "drone-rigs"}
RUN_KEYS = {"target", "pool", "worker", "rig", "action", "started", "finished", "exit_code", "cached"}


def _ledger(tmp_path: Path) -> Path:
    """Where convoy.tasks puts a task's ledger: <logs>/request-<n>/build-<m>/<stage>-<configuration>.invocation."""
    return tmp_path / "logs" / "request-1" / "build-1" / "hardware-rover.invocation"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.bazel
@pytest.mark.slow
def test_the_record_names_each_tests_pool_and_rig(lab: LabHandle, hil, tmp_path: Path):
    ledger = _ledger(tmp_path)
    mark = len(lab.records())
    with lab_invocation(["--config=hil", f"--remote_executor=grpc://127.0.0.1:{lab.port}"], ledger) as flags:
        result = hil(*flags, *POOL)
        assert result.returncode == 0, result
    invocation_id = flags[0].partition("=")[2]
    record = json.loads(ledger.with_suffix(".rigs.json").read_text())
    assert (record["invocation_id"], record["error"]) == (invocation_id, None), record
    assert sorted((r["target"], r["pool"]) for r in record["runs"]) == sorted(POOL.items()), record
    workers = {f"{b.pool}/{b.name}": b for b in pools.bots(lab.address)}
    ran = {r["action"]: r for r in ends(lab.records_since(mark))}
    for run in record["runs"]:
        assert set(run) == RUN_KEYS, run
        assert run["worker"] in workers and workers[run["worker"]].pool == run["pool"], (run, sorted(workers))
        assert run["rig"] == run["worker"].rpartition("/")[2] == workers[run["worker"]].name
        assert (run["exit_code"], run["cached"]) == (0, False), run
        assert 0 < run["started"] <= run["finished"], run
        # The worker's own record of that action says the same.
        assert re.fullmatch(r"[0-9a-f]{64}/\d+", run["action"]), run
        mine = ran[run["action"]]
        assert (mine["worker"], mine["pool"], mine["target"], mine["status"]) == (
            run["rig"], run["pool"], run["target"], "OK"), mine
    # The server lists the invocation's finished operations with this filter (the
    # default "stage != completed" applies only to an empty filter); none is left unfinished.
    ops = pools.ask(lab.address, "operations", f"--filter=invocation_id={invocation_id}")
    assert ops and all(op["done"] and op["stage"] == "COMPLETED" for op in ops), ops
    assert not ledger.exists()


def test_an_unreachable_lab_gives_an_error_line_and_no_runs(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(pools, "cancel_invocation", lambda lab, invocation_id: [])  # this lab cannot cancel either
    ledger = _ledger(tmp_path)
    port = _closed_port()
    with lab_invocation(["--config=hil", f"--remote_executor=grpc://127.0.0.1:{port}"], ledger) as flags:
        pass  # Bazel ran (passed or failed: not the record's business)
    record = json.loads(ledger.with_suffix(".rigs.json").read_text())
    assert record["invocation_id"] == flags[0].partition("=")[2]
    assert record["runs"] == []
    error = record["error"]
    assert "\n" not in error and f"127.0.0.1:{port}" in error and "UNAVAILABLE" in error, error
    assert error.startswith(f"the lab did not say which rigs ran invocation {record['invocation_id']}: "), error
    assert not ledger.exists()
    assert [p.name for p in ledger.parent.iterdir()] == ["hardware-rover.rigs.json"]  # no temporary file left


def test_a_bazel_run_that_raised_leaves_no_record_and_is_still_cancelled(tmp_path: Path, monkeypatch):
    cancelled = []
    monkeypatch.setattr(pools, "cancel_invocation", lambda lab, invocation_id: cancelled.append(invocation_id) or [])
    monkeypatch.setattr(pools, "invocation_runs", lambda lab, invocation_id: pytest.fail("asked for the runs"))
    monkeypatch.setattr(pools, "finish_invocation", lambda lab, invocation_id: pytest.fail("asked for the runs"))
    ledger = _ledger(tmp_path)
    rigs = ledger.with_suffix(".rigs.json")
    rigs.parent.mkdir(parents=True)
    rigs.write_text('{"invocation_id": "an-earlier-run"}')
    with pytest.raises(KeyboardInterrupt):
        with lab_invocation(["--config=hil"], ledger) as flags:
            raise KeyboardInterrupt
    assert cancelled == [flags[0].partition("=")[2]]
    assert not rigs.exists()  # the earlier run's record does not pass for this one's
