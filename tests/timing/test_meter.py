"""convoy.timing.Meter: time measured per kind (bazel, git), overlapping time counted once."""

from __future__ import annotations

import threading
import time

from convoy import gitutil
from convoy.timing import Meter


def test_meter_counts_overlapping_time_once_and_measures_git(tmp_path):
    meter = Meter()
    with meter.active():
        def bazel():
            with meter.measure("bazel"):
                time.sleep(0.3)
        threads = [threading.Thread(target=bazel) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        gitutil.run(["--version"])
    assert 0.29 < meter.seconds("bazel") < 0.5
    assert meter.seconds("git") > 0
    assert gitutil.run is not None and gitutil.run.__name__ == "run"  # restored
