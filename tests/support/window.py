"""What the speculative and batch queues' end-to-end tests share: their
convoy.yaml, a `convoy process` running in the background, and the check
that main only ever moved to a commit that was tested exactly as pushed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

from convoy.models import RequestState

from tests.support.integration import CONVOY, Integration, config_text

STAGES = """\
stages:
  - {name: build, command: build, timeout: 300}
  - {name: integration, command: test, tag_filter: convoy-integration, timeout: 300}
  - {name: hardware, command: test, tag_filter: convoy-hardware, timeout: 300}
"""


def window_config(mode: str, *, window: int = 3, batch_size: int = 3, max_bisect: int = 3) -> str:
    text = config_text(stages=STAGES)
    serial = "queue: {mode: serial, poll_interval: 0.1}\n"
    assert serial in text
    return text.replace(serial, f"queue: {{mode: {mode}, poll_interval: 0.1, window: {window}, "
                                f"batch_size: {batch_size}, max_bisect: {max_bisect}}}\n")


def use_mode(it: Integration, mode: str, **numbers: int) -> Integration:
    """Sets the queue's mode (and window numbers) in the checkout's convoy.yaml; returns `it`."""
    (it.checkout / "convoy.yaml").write_text(window_config(mode, **numbers))
    return it


def held_hardware(directory: Path) -> tuple[dict, Path]:
    """A `bazel` first on PATH that is the real one, except that a hardware
    test run waits while the file `hold` exists (removing it lets every held
    run go on): returns (the environment with that PATH, hold)."""
    return held_stage(directory, "convoy-hardware")


def held_stage(directory: Path, tag_filter: str) -> tuple[dict, Path]:
    """held_hardware for the test runs of any stage: those with `--test_tag_filters=<tag_filter>`."""
    real = shutil.which("bazel")
    hold = directory / "hold"
    hold.touch()
    (directory / "bin").mkdir(exist_ok=True)
    wrapper = directory / "bin" / "bazel"
    wrapper.write_text(f"""#!/bin/bash
if [[ " $* " == *"--test_tag_filters={tag_filter}"* ]]; then
  trap 'exit 8' INT
  for _ in $(seq 600); do [ -e {hold} ] || break; sleep 0.2; done
fi
exec {real} "$@"
""")
    wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{directory / 'bin'}{os.pathsep}{os.environ['PATH']}"}, hold


def start_process(it: Integration, *args: str, failpoint: Optional[str] = None,
                  env: Optional[dict] = None) -> subprocess.Popen:
    env = dict(env or os.environ)
    env.pop("CONVOY_FAILPOINT", None)
    if failpoint:
        env["CONVOY_FAILPOINT"] = failpoint
    return subprocess.Popen([str(CONVOY), "process", *args], cwd=it.checkout, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def main_history(it: Integration, since: str) -> list[str]:
    """The commits main moved through after `since`, oldest first (first parents)."""
    return it.origin("rev-list", "--first-parent", "--reverse", f"{since}..main").split()


def assert_green(it: Integration, since: str, merged: list[list[int]]) -> None:
    """Main moved from `since` through one commit per entry of `merged` (the
    requests merged together, in order), each the candidate of a build that
    passed, built on the commit main was at before it, and tagged there."""
    history = main_history(it, since)
    assert len(history) == len(merged), (history, merged)
    tags = it.origin_tags()
    parent = since
    for commit, together in zip(history, merged):
        requests = [it.request(rid) for rid in together]
        assert all(r.state == RequestState.MERGED for r in requests), [(r.id, r.state, r.detail) for r in requests]
        assert {r.candidate_commit for r in requests} == {commit}
        assert len({r.tag for r in requests}) == 1 and tags[requests[0].tag] == commit
        builds = it.show(together[0])["builds"]
        passed = [b for b in builds if b["candidate_commit"] == commit]
        assert len(passed) == 1 and passed[0]["state"] == "succeeded", builds
        assert passed[0]["base_commit"] == parent  # tested exactly as pushed
        parent = commit
    assert len(set(tags.values())) == len(tags)  # never two tags for one commit


def tip(it: Integration) -> str:
    return it.origin("rev-parse", "main")


def submit(it: Integration, component: str, version: str) -> int:
    return it.submit(f"--component={component}", f"--version={version}")


def cancel_while_held(it: Integration, directory: Path, request_id: int, ready: Callable[[], bool],
                      what: str) -> str:
    """Runs `convoy process --all` with its hardware stage held (`held_hardware`), cancels
    `request_id` once `ready()`, lets the hardware go once the cancel is done; returns the
    process's output (its exit status must be 0)."""
    env, hold = held_hardware(directory)
    proc = start_process(it, "--all", env=env)
    try:
        wait_for(ready, what)
        assert it.request(request_id).state == RequestState.TESTING
        cancelled = it.convoy("cancel", str(request_id))
        assert cancelled.code == 0, cancelled
        wait_for(lambda: it.request(request_id).state == RequestState.CANCELLED, "the cancel")
        hold.unlink()
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    return out


def kill_with_the_window_full(it: Integration, directory: Path) -> str:
    """Runs `convoy process --all` with the failpoint window_full and the
    integration stage held (`held_stage`), so that every item of the window
    is in flight at once however fast the disk cache makes the builds (a
    cached stage can pass before the item behind has entered one, and the
    window is then never full); returns the output of the killed process."""
    env, hold = held_stage(directory, "convoy-integration")
    proc = start_process(it, "--all", failpoint="window_full", env=env)
    try:
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        hold.unlink()  # the held runs the kill orphaned go on and end
    assert proc.returncode == -9, out
    return out
