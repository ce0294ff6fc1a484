"""The driver survives anything: kills at every failpoint, infrastructure errors,
the branch moving during a build, a cancel mid-build, a tag made by hand.

One integration repository for the module; each test bumps a component of
the rover configuration only (one task per stage, so the suite stays fast)
to a version that differs from what origin's main pins at that moment, so
the tests do not depend on each other's order. `convoy process` runs as a
real process; CONVOY_FAILPOINT makes it SIGKILL itself (convoy.failpoints).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from convoy import models
from convoy.models import Phase, RequestState

from tests.support.env import isolated_env
from tests.support.integration import CONVOY, Integration, config_text, write_script
from tests.support.queue import PHASE_AFTER_KILL, assert_merged_once, submit_rover

pytestmark = [pytest.mark.bazel, pytest.mark.slow]


@dataclass
class Ops:
    integration: Integration
    armed: Path  # exists: the next build stage's start pushes a commit to origin main from `clone`
    clone: Path


@pytest.fixture(scope="module")
def ops(make_integration, tmp_path_factory) -> Ops:
    base = tmp_path_factory.mktemp("ops")
    armed, clone = base / "move-branch.armed", base / "other-clone"
    mover = write_script(base / "move_branch.py", """
        import json, os, subprocess, sys
        event = json.load(sys.stdin)
        armed, clone = sys.argv[1], sys.argv[2]
        if event["data"].get("stage") != "build" or not os.path.exists(armed):
            sys.exit(0)
        os.remove(armed)
        def git(*args):
            subprocess.run(["git", "-C", clone, *args], check=True, capture_output=True, timeout=60)
        git("fetch", "-q", "origin")
        git("reset", "-q", "--hard", "origin/main")
        with open(os.path.join(clone, "NOTES.md"), "a") as f:
            f.write("Someone else's change.\\n")
        git("add", "NOTES.md")
        git("commit", "-q", "-m", "Unrelated change pushed during a build")
        git("push", "-q", "origin", "HEAD:main")
    """)
    plugins = (f'  - {{name: mover, type: command, command: ["{sys.executable}", "{mover}", "{armed}", "{clone}"], '
               "timeout: 30, events: [STAGE_START]}\n")
    integration = make_integration("ops", config_text(plugins=plugins))
    with isolated_env(base / "home"):
        integration.git("clone", "-q", str(integration.bare), str(clone))
    yield Ops(integration, armed, clone)
    integration.shutdown_bazel()


@pytest.mark.parametrize("failpoint", list(PHASE_AFTER_KILL))
def test_killed_driver_resumes_and_merges_and_tags_exactly_once(ops, failpoint):
    it = ops.integration
    request_id = submit_rover(it)
    base = it.origin("rev-parse", "main")
    killed = it.process("--once", failpoint=failpoint)
    assert killed.code == -signal.SIGKILL, killed
    request = it.request(request_id)
    assert (request.state, request.phase) == (RequestState.TESTING, PHASE_AFTER_KILL[failpoint])
    pushed = failpoint in ("after_push", "after_tag", "after_tag_push")
    assert it.origin("rev-parse", "main") == (request.candidate_commit if pushed else base)
    if failpoint == "after_tag":
        local = it.git("for-each-ref", "--format=%(refname:short)", "--points-at", request.candidate_commit,
                       "refs/tags")
        assert local and local not in it.origin_tags()
    resumed = it.process("--all")
    assert resumed.code == 0, resumed
    assert f"resuming request #{request_id}" in resumed.out
    request = assert_merged_once(it, request_id)
    if failpoint == "after_tag":
        assert request.tag == local
    if failpoint == "task_running":
        build = it.show(request_id)["builds"][0]
        first = build["stages"][0]["tasks"][0]
        assert (first["state"], first["runs"]) == ("succeeded", 2)
        starts = [e for e in it.events(request_id) if e.type == models.TASK_START and e.task_id == first["id"]]
        assert [e.data["run"] for e in starts] == [1, 2]


def test_no_request_is_lost_when_the_driver_dies(ops):
    it = ops.integration
    first = submit_rover(it)
    component = it.request(first).component
    second = submit_rover(it, skip=(component,))
    killed = it.process("--all", failpoint="task_running")
    assert killed.code == -signal.SIGKILL, killed
    assert it.request(second).state == RequestState.QUEUED
    resumed = it.process("--all")
    assert resumed.code == 0, resumed
    assert_merged_once(it, first)
    assert_merged_once(it, second)
    subjects = it.origin("log", "--format=%s", "-2", "main").splitlines()
    assert [s.endswith(f"(request {n})") for s, n in zip(subjects, (second, first))] == [True, True]


def test_branch_moved_during_the_build_is_rebuilt_on_the_new_tip(ops):
    it = ops.integration
    ops.armed.touch()
    request_id = submit_rover(it)
    run = it.process("--all")
    assert run.code == 0, run
    assert not ops.armed.exists()
    request = assert_merged_once(it, request_id)
    builds = it.show(request_id)["builds"]
    assert [b["state"] for b in builds] == ["succeeded", "succeeded"]
    moved = it.origin("rev-parse", f"{request.candidate_commit}^")
    assert it.origin("log", "--format=%s", "-1", moved) == "Unrelated change pushed during a build"
    assert builds[1]["base_commit"] == moved and builds[0]["base_commit"] == it.origin("rev-parse", f"{moved}^")
    assert builds[0]["detail"] == (f"main moved from {builds[0]['base_commit'][:10]} to {moved[:10]} during build 1; "
                                   "rebuilt on the new tip")
    starts = [e for e in it.events(request_id) if e.type == models.BUILD_START]
    assert [e.data["number"] for e in starts] == [1, 2] and starts[1].data["reason"] == builds[0]["detail"]
    assert "rebuilt on the new tip" in run.out


def test_infrastructure_errors_requeue_then_error_and_retry_recovers(ops):
    it = ops.integration
    request_id = submit_rover(it)
    # git: the integration repository's remote is unreachable.
    away = it.bare.with_name("origin-away.git")
    it.bare.rename(away)
    try:
        run = it.process("--all")
    finally:
        away.rename(it.bare)
    assert run.code == 0, run
    request = it.request(request_id)
    assert (request.state, request.attempts) == (RequestState.ERROR, 2)
    assert "git fetch" in request.detail and "origin" in request.detail
    events = [e for e in it.events(request_id) if e.type != models.PLUGIN_ERROR]
    assert [e.type for e in events] == [models.REQUEST_QUEUED, models.REQUEST_REQUEUED, models.REQUEST_ERROR]
    assert (events[1].data["attempts"], events[1].data["limit"]) == (1, 1)
    # Bazel: a flag it does not know is exit 2, the pipeline's configuration, not the component.
    config = it.checkout / "convoy.yaml"
    original = config.read_text()
    config.write_text(original.replace("  flags: []", '  flags: ["--no_such_flag_for_convoy"]'))
    try:
        assert it.convoy("retry", str(request_id)).code == 0
        run = it.process("--all")
    finally:
        config.write_text(original)
    assert run.code == 0, run
    request = it.request(request_id)
    assert (request.state, request.attempts) == (RequestState.ERROR, 2)
    assert "bazel exited 2 (command line error)" in request.detail
    builds = it.show(request_id)["builds"]
    assert [b["state"] for b in builds] == ["failed", "failed"]
    assert all(b["detail"].startswith("infrastructure error: build/rover: INFRA_ERROR") for b in builds)
    assert it.request(request_id).state != RequestState.REJECTED
    # Fixed: a retry merges it.
    assert it.convoy("retry", str(request_id)).code == 0
    run = it.process("--all")
    assert run.code == 0, run
    assert_merged_once(it, request_id)


def test_cancel_during_a_build_stops_it(ops):
    it = ops.integration
    request_id = submit_rover(it)
    proc = subprocess.Popen([str(CONVOY), "process", "--all"], cwd=it.checkout, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            events = [e.type for e in it.events(request_id)]
            if models.TASK_START in events:
                break
            time.sleep(0.1)
        run = it.convoy("cancel", str(request_id))
        assert run.code == 0, run
        assert "cancel requested" in run.out
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, (out, err)
    request = it.request(request_id)
    assert request.state == RequestState.CANCELLED
    [build] = it.show(request_id)["builds"]
    assert build["state"] == "failed" and build["detail"] == "cancelled"
    assert it.origin("log", "--format=%s", "main").count(f"(request {request_id})") == 0
    assert [e.type for e in it.events(request_id)][-1] == models.REQUEST_CANCELLED


def test_tag_by_hand_tags_a_tested_tip_and_the_driver_keeps_it(ops):
    it = ops.integration
    request_id = submit_rover(it)
    killed = it.process("--once", failpoint="after_push")
    assert killed.code == -signal.SIGKILL, killed
    candidate = it.request(request_id).candidate_commit
    run = it.convoy("tag")
    assert run.code == 0, run
    [name] = [n for n, c in it.origin_tags().items() if c == candidate]
    assert run.out == (f"tagged {candidate[:12]} as {name}, pushed it to origin and published it to "
                       f".convoy/releases/{name}\n")
    assert (it.checkout / ".convoy" / "releases" / name / "provenance.intoto.json").is_file()
    again = it.convoy("tag")
    assert (again.code, again.out) == (0, f"{candidate[:12]} is already released as {name}; nothing to do\n")
    resumed = it.process("--all")
    assert resumed.code == 0, resumed
    request = assert_merged_once(it, request_id)
    assert request.tag == name


def test_a_half_made_worktree_is_cleaned_up(ops):
    it = ops.integration
    worktree = it.checkout / ".convoy" / "worktrees" / "candidate"
    admin = Path(it.git("rev-parse", "--git-common-dir")) / "worktrees"
    if not admin.is_absolute():
        admin = it.checkout / admin
    for lock in admin.glob("*/"):
        (lock / "index.lock").write_text("")  # as a git killed mid-commit leaves it
    worktree.mkdir(parents=True, exist_ok=True)
    (worktree / ".git").unlink(missing_ok=True)  # as a killed `git worktree add` may leave it
    (worktree / "stray-file").write_text("left behind\n")
    request_id = submit_rover(it)
    run = it.process("--all")
    assert run.code == 0, run
    assert_merged_once(it, request_id)
    assert not (worktree / "stray-file").exists()


def test_the_pools_a_hardware_stage_needs_come_from_bazel_query(ops):
    from convoy.candidate import prepare_worktree
    from convoy.config import load_config
    from convoy.lab.stage import needed_pools
    from convoy.tasks import slot_output_base

    it = ops.integration
    worktree = prepare_worktree(it.checkout, it.origin("rev-parse", "main"))
    config = load_config(it.checkout / "convoy.yaml")
    hardware, integration = config.stage("hardware"), config.stage("integration")
    slot = slot_output_base(it.checkout, 0)
    assert needed_pools(worktree, hardware, "drone", config, slot) == {"drone-rigs"}
    assert needed_pools(worktree, hardware, "rover", config, slot) == {"rover-rigs"}
    assert needed_pools(worktree, integration, "rover", config, slot) == set()


def test_sigterm_stops_the_build_and_the_next_process_finishes_it(ops, tmp_path):
    it = ops.integration
    request_id = submit_rover(it)
    # `bazel` on PATH: the real one, except that the first build task's client
    # waits 60 s before it becomes Bazel, so the SIGTERM always finds a task
    # running (a real client, stopped by run_bazel's SIGINT) and never lands
    # between two stages.
    real_bazel = shutil.which("bazel")
    hold, held = tmp_path / "hold", tmp_path / "held"
    hold.touch()
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "bazel"
    wrapper.write_text(f"""#!/bin/bash
if [[ " $* " == *" build "* ]] && rm {hold} 2>/dev/null; then
  trap 'exit 8' INT
  touch {held}
  sleep 60 & wait $!
fi
exec {real_bazel} "$@"
""")
    wrapper.chmod(0o755)
    env = {**os.environ, "PATH": f"{wrapper_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen([str(CONVOY), "process", "--all"], cwd=it.checkout, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not held.exists():
            time.sleep(0.05)
        assert held.exists(), "the build task never started"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, (out, err)
    assert "convoy: SIGTERM: stopping the running Bazel commands..." in out
    assert "convoy: stopped; the next convoy process resumes where this one left off" in out
    request = it.request(request_id)
    assert (request.state, request.phase) == (RequestState.TESTING, Phase.BUILDING)
    stages = {s["name"]: [t["state"] for t in s["tasks"]] for s in it.show(request_id)["builds"][0]["stages"]}
    assert stages.pop("build") == ["ready"], stages  # the held client was stopped; it runs again next time
    assert {state for states in stages.values() for state in states} <= {"waiting"}, stages
    resumed = it.process("--all")
    assert resumed.code == 0, resumed
    assert_merged_once(it, request_id)
