"""convoy.lab.stage without a lab: which lab a stage's flags name, the
ledger of a task run's invocation (what a killed run left is cancelled),
and which pools a stage needs from `bazel query` output. (On the real lab:
test_driver_lab.py.)"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from convoy.lab import pools
from convoy.lab.stage import lab_address, lab_invocation, pools_in_query


def test_the_lab_is_the_one_the_stage_flags_name():
    assert lab_address(["--config=hil"]) == pools.LabAddress.local()
    lab = lab_address(["--remote_executor=grpc://a:1", "--config=hil", "--remote_executor=grpc://lab-1:50052",
                       "--remote_instance_name=hil"])
    assert (lab.server, lab.instance) == ("lab-1:50052", "hil")


def test_a_task_run_cancels_what_a_killed_run_of_it_left_then_its_own(tmp_path: Path, monkeypatch):
    cancelled = []
    monkeypatch.setattr(pools, "cancel_invocation", lambda lab, i: cancelled.append((lab.server, i)) or [])

    @contextlib.contextmanager
    def invocation(lab):
        yield "new-id"
        cancelled.append((lab.server, "new-id"))

    monkeypatch.setattr(pools, "invocation", invocation)
    logs = tmp_path / "logs"
    ledger = logs / "request-2" / "build-1" / "hardware-drone.invocation"
    for path, invocation_id in [(logs / "request-1" / "build-3" / "hardware-drone.invocation", "killed-id"),
                                (logs / "request-1" / "build-3" / "hardware-rover.invocation", "sibling-id")]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"invocation_id": invocation_id, "server": "old:1", "instance": "convoy"}))
    with lab_invocation(["--config=hil", "--remote_executor=grpc://new:2"], ledger) as flags:
        assert flags == ("--invocation_id=new-id",)
        assert cancelled == [("old:1", "killed-id")]  # on the lab it was queued on
        assert json.loads(ledger.read_text()) == {"invocation_id": "new-id", "server": "new:2", "instance": "convoy"}
    assert cancelled == [("old:1", "killed-id"), ("new:2", "new-id")]
    assert not ledger.exists()
    assert (logs / "request-1" / "build-3" / "hardware-rover.invocation").exists()  # another task's: not touched


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
