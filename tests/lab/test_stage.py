"""convoy.lab.stage without a lab: which lab a stage's flags name, the
ledger of a task run's invocation (what a killed run left is cancelled),
and which pools a stage needs from `bazel query` output. (On the real lab:
test_driver_lab.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from convoy.lab import pools, procs
from convoy.lab.stage import lab_address, lab_invocation, pools_in_query


def test_the_lab_is_the_one_the_stage_flags_name():
    assert lab_address(["--config=hil"]) == pools.LabAddress.local()
    lab = lab_address(["--remote_executor=grpc://a:1", "--config=hil", "--remote_executor=grpc://lab-1:50052",
                       "--remote_instance_name=hil"])
    assert (lab.server, lab.instance) == ("lab-1:50052", "hil")


def test_a_task_run_cancels_what_a_killed_run_of_it_left_then_its_own_but_not_a_live_one(tmp_path: Path, monkeypatch):
    cancelled = []
    monkeypatch.setattr(pools, "cancel_invocation", lambda lab, i: cancelled.append((lab.server, i)) or [])
    monkeypatch.setattr(pools, "new_invocation_id", lambda: "new-id")
    # the end of the run: one call cancels what is left and lists the runs
    monkeypatch.setattr(pools, "finish_invocation",
                        lambda lab, i: cancelled.append((lab.server, i)) or {"cancelled": [], "runs": []})
    logs = tmp_path / "logs"
    ledger = logs / "request-2" / "build-1" / "hardware-drone.invocation"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a driver that was killed: its pid runs nothing now
    me = {"pid": os.getpid(), "started": procs.started(os.getpid())}
    owners = {"killed-id": {"pid": gone.pid, "started": 1}, "old-format-id": None,
              "recycled-id": {"pid": os.getpid(), "started": me["started"] - 1},  # the pid, another process
              "live-id": me, "sibling-id": None}
    for path, invocation_id in [(logs / "request-1" / "build-3" / "hardware-drone.invocation", "killed-id"),
                                (logs / "request-1" / "build-4" / "hardware-drone.invocation", "old-format-id"),
                                (logs / "request-1" / "build-5" / "hardware-drone.invocation", "recycled-id"),
                                (logs / "request-3" / "build-1" / "hardware-drone.invocation", "live-id"),
                                (logs / "request-1" / "build-3" / "hardware-rover.invocation", "sibling-id")]:
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"invocation_id": invocation_id, "server": "old:1", "instance": "convoy"}
        if owners[invocation_id] is not None:
            entry["owner"] = owners[invocation_id]
        path.write_text(json.dumps(entry))
    with lab_invocation(["--config=hil", "--remote_executor=grpc://new:2"], ledger) as flags:
        assert flags == ("--invocation_id=new-id",)
        # on the lab each was queued on; not the run under way in another lane (its owner runs)
        assert cancelled == [("old:1", "killed-id"), ("old:1", "old-format-id"), ("old:1", "recycled-id")]
        assert json.loads(ledger.read_text()) == {"invocation_id": "new-id", "server": "new:2", "instance": "convoy",
                                                  "owner": me}
    assert cancelled[-1] == ("new:2", "new-id")
    assert not ledger.exists()
    assert (logs / "request-1" / "build-3" / "hardware-rover.invocation").exists()  # another task's: not touched
    assert (logs / "request-3" / "build-1" / "hardware-drone.invocation").exists()  # live: not touched


QUERY_OUTPUT = """\
# /w/integration/BUILD.bazel:30:17
py_test(
  name = "telemetry_roundtrip_test",
  tags = ["convoy-integration"],
  srcs = ["//integration:telemetry_roundtrip_test.py"],
)
# Rule telemetry_roundtrip_test instantiated at (most recent call last):
#   /w/integration/BUILD.bazel:30:17  in <toplevel>

# /w/integration/BUILD.bazel:49:14
py_test(
  name = "flash_and_drive_test",
  tags = ["convoy-hardware", "convoy-pool=drone-rigs", "exclusive"],
  exec_properties = {"test.Pool": "drone-rigs"},
)

# /w/integration/BUILD.bazel:60:14
py_test(
  name = "rover_only_rig_test",
  tags = ["convoy-hardware", "convoy-pool=rover-rigs"],
  target_compatible_with = ["@platforms//:incompatible"],
)

# /w/integration/BUILD.bazel:70:14
py_test(
  name = "manual_rig_test",
  tags = ["convoy-hardware", "convoy-pool=bench", "manual"],
)
"""


def test_pools_come_from_the_selected_compatible_tests():
    assert pools_in_query(QUERY_OUTPUT, "convoy-hardware") == {"drone-rigs", "bench"}
    assert pools_in_query(QUERY_OUTPUT, "convoy-hardware,-manual") == {"drone-rigs"}
    assert pools_in_query(QUERY_OUTPUT, "convoy-integration") == set()
    assert pools_in_query(QUERY_OUTPUT, None) == {"drone-rigs", "bench"}
