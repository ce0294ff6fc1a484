"""A crash campaign: `convoy process` killed with SIGKILL at every failpoint and
at 25 random moments (CONVOY_CRASH_KILLS=50 for a longer campaign) across
several requests, with origin's main moving between some kills and the
restarts. Nothing may be lost, merged twice,
tagged twice, wrongly rejected or left stuck.

Every bump is good, so every request must end merged (or superseded, which
the campaign avoids by queueing components that have nothing queued). The
figures are printed (run with -s to see them) and must all be 0.

The random moments are drawn with a fixed seed (CONVOY_CRASH_SEED overrides
it, CONVOY_CRASH_KILLS the number of random kills) from 0 to 1.2 times the
time one request takes with warm Bazel servers, measured first, so that
they fall into every phase; a moment after the run ended does not count as
a kill, and the campaign goes on until that many kills landed. The integration
repository is the `hard` fixture of tests/queue/conftest.py.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest
from convoy import failpoints, models
from convoy.models import RequestState

from tests.support.integration import CONVOY, Integration
from tests.support.queue import GOOD_BUMPS

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

SEED = int(os.environ.get("CONVOY_CRASH_SEED", "20261202"))
# 25 in the suite, to keep it within its time (the 50 of earlier runs found the same: nothing).
RANDOM_KILLS = int(os.environ.get("CONVOY_CRASH_KILLS", "25"))
# The failpoints the serial queue meets (window_full is the speculative and batch modes': tests/queue/test_speculative.py).
SERIAL_FAILPOINTS = tuple(name for name in failpoints.NAMES if name != "window_full")
FINAL = {RequestState.MERGED, RequestState.SUPERSEDED}


def _queue_work(it: Integration, submitted: list[int], rng: random.Random) -> None:
    """Submits a good bump of one or two components that have nothing queued
    or testing, each to a version origin's main does not pin yet."""
    with_work = {it.request(r).component for r in submitted
                 if it.request(r).state in (RequestState.QUEUED, RequestState.TESTING)}
    choices = [(c, v) for c, v in GOOD_BUMPS if c not in with_work and it.origin_pin("rover", c) != v]
    rng.shuffle(choices)
    picked: dict[str, str] = {}
    for component, version in choices:
        if component not in picked and len(picked) < (1 if with_work else 2):
            picked[component] = version
    for component, version in picked.items():
        submitted.append(it.submit(f"--component={component}", f"--version={version}", "--configuration=rover",
                                   "--requested_by=crash-campaign"))


def _figures(it: Integration, submitted: list[int]) -> dict[str, list[int]]:
    main_subjects = it.origin("log", "--format=%s", "main").splitlines()
    tags = it.origin_tags()
    figures: dict[str, list[int]] = {"lost": [], "merged twice": [], "tagged twice": [], "wrongly rejected": [],
                                     "stuck": []}
    for request_id in submitted:
        request = it.request(request_id)
        if request is None:
            figures["lost"].append(request_id)
            continue
        merges = sum(s.endswith(f"(request {request_id})") for s in main_subjects)
        if merges > 1:
            figures["merged twice"].append(request_id)
        types = [e.type for e in it.events(request_id)]
        on_candidate = [n for n, c in tags.items() if request.candidate_commit and c == request.candidate_commit]
        if len(on_candidate) > 1 or types.count(models.RELEASE_TAGGED) > 1:
            figures["tagged twice"].append(request_id)
        if request.state in (RequestState.REJECTED, RequestState.ERROR, RequestState.CANCELLED):
            figures["wrongly rejected"].append(request_id)
        elif request.state not in FINAL:
            figures["stuck"].append(request_id)
        elif request.state == RequestState.MERGED and (merges != 1 or len(on_candidate) != 1):
            figures["lost"].append(request_id)  # said merged, but main or the tags do not have it
    return figures


def test_crash_campaign_loses_nothing(hard):
    it, mover = hard
    rng = random.Random(SEED)
    submitted: list[int] = []
    # How long one request takes with warm Bazel servers (the second of two),
    # to spread the random kills over its phases.
    for _ in range(2):
        _queue_work(it, submitted, rng)
        start = time.monotonic()
        run = it.process("--once")
        assert run.code == 0, run
        duration = time.monotonic() - start

    phases: dict[str, int] = {}  # where each kill left the request being processed
    kills = {"failpoint": 0, "random": 0, "main moved": 0, "exited before the kill": 0}
    plan = [("failpoint", name) for name in SERIAL_FAILPOINTS] + [("random", None)] * (3 * RANDOM_KILLS)
    for kind, name in plan:
        if kind == "random" and kills["random"] == RANDOM_KILLS:
            break
        _queue_work(it, submitted, rng)
        if kind == "failpoint":
            result = it.process("--all", failpoint=name)
            killed = result.code == -signal.SIGKILL
        else:
            proc = subprocess.Popen([str(CONVOY), "process", "--all"], cwd=it.checkout, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            try:
                proc.wait(timeout=rng.uniform(0, duration * 1.2))
                killed = False
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                killed = True
            _, err = proc.communicate(timeout=60)
            assert proc.returncode in (0, -signal.SIGKILL), err
            assert "Traceback" not in err, err
        kills[kind] += killed
        kills["exited before the kill"] += not killed
        if killed:
            testing = [it.request(r) for r in submitted if it.request(r).state == RequestState.TESTING]
            where = testing[0].phase.value if testing and testing[0].phase else "no request claimed yet"
            phases[where] = phases.get(where, 0) + 1
        if rng.random() < 0.5:
            mover.push()
            kills["main moved"] += 1
    final = it.process("--all")
    assert final.code == 0, final

    figures = _figures(it, submitted)
    print(f"\ncrash campaign (seed {SEED}): {len(submitted)} requests, "
          + ", ".join(f"{v} {k}" for k, v in kills.items()))
    print("  killed in phase: " + ", ".join(f"{k} {v}" for k, v in sorted(phases.items())))
    for what, ids in figures.items():
        print(f"  {what}: {len(ids)}" + (f" (requests {ids})" if ids else ""))
    assert kills["failpoint"] == len(SERIAL_FAILPOINTS)
    assert kills["random"] == RANDOM_KILLS, kills
    assert {what: ids for what, ids in figures.items() if ids} == {}
    assert len([r for r in submitted if it.request(r).state == RequestState.MERGED]) >= len(SERIAL_FAILPOINTS)
