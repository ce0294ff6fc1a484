"""Rig health, as in LAVA: good, suspect, bad, maintenance; a rig-side failure
is the rig's, and a hardware test runs again on another rig of its pool.

    policy = retry_on_other_rig(config, spec, configuration)   # a convoy.retries Policy ("rig")
    rig_failure(attempts, label)                               # the failure left is the rigs' (INFRA_EXIT)
    observe_rigs(store, config, spec, configuration, attempts, verdict)   # the rigs' health; never raises

The convention (examples/rig/rig_client.py): a hardware test that meets a
rig-side failure (the rig does not answer, its flash fails) exits with
INFRA_EXIT, 75 (EX_TEMPFAIL); a wrong behaviour of the product is an
ordinary failure. The lab's record of each run (`Attempt.runs_of`: target,
pool, rig, exit_code per Bazel attempt of the test) says which rig ran it.

- **Retry on another rig** (`retry_on_other_rig`): a hardware test whose
  last run failed on rig X runs again, avoiding every rig it failed on, when
  its pool has a healthy rig it has not failed on (the server's view:
  convoy.lab.pools.bots), at most the stage's `rig_retries` times (default:
  the pool's rigs - 1). The rigs to avoid go in the test's environment,
  `--test_env=CONVOY_AVOID_RIGS=<rig>,...` (AVOID_ENV); a rig worker that
  gets such an action gives its lease back (UNAVAILABLE; BuildGrid requeues
  it) and rests a moment, reporting UNHEALTHY so that the scheduler hands
  the job to another rig instead of back to it (convoy.lab.worker_run,
  convoy.lab.worker). The variable also changes the action's digest, so a
  retry is never answered from a cache.
- **The rigs' failure** (`rig_failure`): every run of the test, on every
  rig it ran on, exited INFRA_EXIT. Then the task is an infrastructure
  error (the request goes back to the queue), not a rejection.
- **Health** (`observe_rigs`, convoy.lab.rig_health): a pass on a rig
  resets its streak (suspect -> good); a failure on a rig while the same
  test passed on another rig in the same task counts against it (good ->
  suspect -> ... -> bad at the stage's `rig_bad_after`, default 3). A
  failure on every rig says nothing about any one of them and counts
  against none (a change that breaks the hardware test everywhere must not
  drain the lab). A bad rig is drained: its worker reads health.json before
  it asks for work and reports UNHEALTHY, so it gets nothing and the pool
  check does not count it. Each change goes out as RIG_HEALTH_CHANGED
  through the driver's store (events.Dispatcher delivers it to plugins).

Which lab's directory: the stage's `lab_dir` (relative to the integration
repository), else `.convoy/lab` there (where `convoy lab up` puts it), and
only if its lab.json names the server the task's flags name
(convoy.lab.pools.LabAddress.of_flags, as the pool check and the cancel
do): a directory of another lab is never changed. A lab on another machine
has no directory here; then health is not recorded (logged).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from convoy import models
from convoy.config import Config, StageSpec
from convoy.lab import pools as lab_pools
from convoy.lab.rig_health import HealthBook, Observation
from convoy.retries import Attempt, Policy, Retry, Verdict
from convoy.store import Store

log = logging.getLogger("convoy.lab.health")

KIND = "rig"
INFRA_EXIT = 75  # examples/rig/rig_client.py: INFRA_EXIT (EX_TEMPFAIL), a rig-side failure
AVOID_ENV = "CONVOY_AVOID_RIGS"  # the rigs a retry must not run on (convoy.lab.worker_run)
LAB_DIR = Path(".convoy") / "lab"
# A rig that has just given back a lease it must avoid reports UNHEALTHY for ~2 s
# (convoy.lab.worker.AVOID_REST_SECONDS); before "no other rig", the lab is asked once more after this.
RESTING_SECONDS = 3.0

Bots = Callable[[Sequence[str]], Sequence[lab_pools.Bot]]  # the flags of the run -> the lab's workers


@dataclass(frozen=True)
class _Failed:
    """A hardware test whose last run failed: where, and the rigs it failed on so far."""

    label: str
    pool: str
    rig: str
    exit_code: Optional[int]
    avoid: frozenset[str]
    retries: int


def _ask_bots(flags: Sequence[str]) -> Sequence[lab_pools.Bot]:
    return lab_pools.bots(lab_pools.LabAddress.of_flags(flags))


def retry_on_other_rig(config: Config, spec: StageSpec, configuration: str, *,
                       bots: Bots = _ask_bots, wait: Callable[[float], None] = time.sleep) -> Policy:
    """The policy that runs a hardware test that failed on a rig again on another rig of its pool.

    Args:
        config, spec, configuration: the task's (the stage's `rig_retries` bounds the reruns).
        bots: the lab's workers as the server sees them, given the run's flags (a seam for tests).
        wait: sleeps before the lab is asked again, when the only other rigs may be resting.

    Returns:
        A convoy.retries Policy: a Retry of kind "rig" with `--test_env=CONVOY_AVOID_RIGS=...`, or None.
    """

    def policy(attempts: Sequence[Attempt], failing: Sequence[str]) -> Optional[Retry]:
        failed = [f for f in (_failed(attempts, label) for label in failing) if f is not None]
        if not failed:
            return None
        chosen: list[_Failed] = []
        for asked in range(2):
            try:
                workers = list(bots(attempts[0].flags))
            except Exception as e:  # noqa: BLE001 - a lab that does not answer: no rerun, the verdict stands
                log.warning("no rerun on another rig: the lab did not list its workers: %s", e)
                return None
            chosen = [f for f in failed if _may_retry(f, workers, spec.rig_retries)]
            others = any(_within_limit(f, workers, spec.rig_retries)
                         and any(w.pool == f.pool and w.name not in f.avoid for w in workers) for f in failed)
            if chosen or not others or asked:
                break
            wait(RESTING_SECONDS)  # the other rig may be resting after giving back this test's first run
        if not chosen:
            return None
        avoid = frozenset().union(*(f.avoid for f in chosen))
        if not all(_free_rigs(f.pool, avoid, workers) for f in chosen):  # together they would leave no rig
            chosen = [f for f in chosen if f.avoid == chosen[0].avoid]
            avoid = chosen[0].avoid
        names = ", ".join(sorted(avoid))
        why = "; ".join(f"{f.label} failed on {f.rig} ({_exit_text(f.exit_code)})" for f in chosen)
        pools = ", ".join(sorted({f.pool for f in chosen}))
        return Retry(targets=tuple(f.label for f in chosen), kind=KIND,
                     reason=f"{why}: run again on another rig of {pools}, not {names}",
                     flags=(f"--test_env={AVOID_ENV}={','.join(sorted(avoid))}",))

    return policy


def rig_failure(attempts: Sequence[Attempt], label: str) -> bool:
    """Whether `label`'s failure in `attempts` is the rigs' (infrastructure), not the change's:
    it ran on the lab, and every run of it, on every rig, exited INFRA_EXIT (the rig did not
    answer, its flash failed: examples/rig/rig_client.py)."""
    runs = [r for a in attempts for r in a.runs_of(label)]
    return bool(runs) and all(r.get("exit_code") == INFRA_EXIT for r in runs)


def observe_rigs(store: Store, config: Config, spec: StageSpec, configuration: str, attempts: Sequence[Attempt],
                 verdict: Verdict) -> None:
    """Updates the health of the rigs that ran the task's hardware tests (see the module
    docstring) and stores a RIG_HEALTH_CHANGED event for each change. Never raises: a
    health that cannot be recorded is logged, and the task's verdict stands."""
    try:
        seen = observations(attempts)
        if not seen:
            return
        directory = lab_directory(config, spec, attempts[0].flags)
        if directory is None:
            return
        changes = HealthBook(directory).observe(seen, bad_after=spec.rig_bad_after)
        if changes:
            with store.transaction() as tx:
                for change in changes:
                    tx.add_event(models.RIG_HEALTH_CHANGED, data=change.event_data())
        for change in changes:
            log.warning("rig %s of %s is now %s (was %s): %s", change.rig, change.pool, change.new, change.old,
                        change.reason)
    except Exception:  # noqa: BLE001 - the rigs' health must never fail the task it learns from
        log.exception("could not record the health of the rigs of %s/%s", spec.name, configuration)


def observations(attempts: Sequence[Attempt]) -> list[Observation]:
    """Each hardware run of the task's attempts, in order, as an Observation: a pass, or a failure
    that counts against its rig when the same test passed on another rig in the task."""
    runs = [r for a in attempts for r in (a.rigs or {}).get("runs", ()) if r.get("rig") and r.get("target")]
    passed = {}
    for r in runs:
        if r.get("exit_code") == 0:
            passed.setdefault(r["target"], set()).add(r["rig"])
    seen = []
    for r in runs:
        ok = r.get("exit_code") == 0
        elsewhere = sorted(passed.get(r["target"], set()) - {r["rig"]})
        reason = "" if ok else f"{r['target']} {_exit_text(r.get('exit_code'))}" + (
            f"; passed on {', '.join(elsewhere)}" if elsewhere else "")
        seen.append(Observation(rig=r["rig"], pool=r.get("pool", ""), ok=ok, counts=not ok and bool(elsewhere),
                                target=r["target"], reason=reason))
    return seen


def lab_directory(config: Config, spec: StageSpec, flags: Sequence[str]) -> Optional[Path]:
    """The directory of the lab the task ran on (the module docstring says which), or None (logged)."""
    checkout = Path(config.path).absolute().parent
    directory = checkout / (spec.lab_dir or LAB_DIR)
    server = lab_pools.LabAddress.of_flags(flags).server
    try:
        recorded = json.loads((directory / "lab.json").read_text(encoding="utf-8")).get("server")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded != server:
        log.warning("rig health not recorded: %s/lab.json %s, not the lab at %s that stage %s ran on; set the "
                    "stage's lab_dir to that lab's directory", directory,
                    f"names {recorded}" if recorded else "is missing", server, spec.name)
        return None
    return directory


def _failed(attempts: Sequence[Attempt], label: str) -> Optional[_Failed]:
    """`label` as a hardware test whose latest run on the lab failed, or None (not on the lab, or it passed)."""
    ran = [a for a in attempts if a.runs_of(label)]
    if not ran:
        return None
    last = ran[-1].runs_of(label)
    bad = [r for r in last if r.get("exit_code") != 0]
    if not bad or not bad[-1].get("rig"):
        return None
    avoid = frozenset(r["rig"] for a in ran for r in a.runs_of(label) if r.get("exit_code") != 0 and r.get("rig"))
    retries = sum(1 for a in attempts if a.kind == KIND and label in a.targets)
    return _Failed(label=label, pool=bad[-1].get("pool", ""), rig=bad[-1]["rig"], exit_code=bad[-1].get("exit_code"),
                   avoid=avoid, retries=retries)


def _within_limit(failed: _Failed, workers: Sequence[lab_pools.Bot], limit: Optional[int]) -> bool:
    """Whether `failed` may run again: fewer reruns than `limit` (None: the pool's rigs - 1)."""
    size = sum(1 for w in workers if w.pool == failed.pool)
    return failed.retries < (limit if limit is not None else size - 1)


def _may_retry(failed: _Failed, workers: Sequence[lab_pools.Bot], limit: Optional[int]) -> bool:
    return _within_limit(failed, workers, limit) and bool(_free_rigs(failed.pool, failed.avoid, workers))


def _free_rigs(pool: str, avoid: Iterable[str], workers: Iterable[lab_pools.Bot]) -> list[str]:
    """The healthy rigs of `pool` (as the server sees them: drained rigs report UNHEALTHY) not in `avoid`."""
    avoid = set(avoid)
    return [w.name for w in workers if w.pool == pool and w.healthy and w.name not in avoid]


def _exit_text(code: Optional[int]) -> str:
    if code == INFRA_EXIT:
        return f"exit {INFRA_EXIT}: a rig-side failure"
    return f"exit {code}" if code is not None else "no exit code"

