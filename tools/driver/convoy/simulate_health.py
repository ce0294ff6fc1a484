"""`convoy simulate`'s health model: flaky tests and their retries, quarantine, and the rigs one by one.

    rigs = Rigs(settings, rng)                  # each pool's rigs: sick or not, busy or idle, drained or not
    rigs.free()                                 # pool -> rigs the scheduler may hand out
    rigs.take(run, {"rigs": 1}, now)            # the rigs the scheduler gave `run` (the longest idle first)
    failed = rigs.failures(run)                 # the run's rigs that failed it themselves
    rigs.retry(run, failed, now); rigs.serve(now, order)   # ... it waits for rigs it has not failed on
    judge(run, failing=..., broken=..., settings=settings, rng=rng)   # PASS, FAIL, RERUN or QUARANTINED

What convoy process now does (convoy.retries, convoy.flaky,
convoy.lab.health), on a simulated clock. Every simulated stage is a test
stage, and every simulated test passed on main (none is new):

- A test fails because its candidate holds a request that breaks the stage
  (on every run), or spuriously, with probability `flake_rate` on each run.
  A failing test runs again in the same Bazel run until it has run
  `flaky_attempts` times (Bazel's --flaky_test_attempts). If it still
  fails, it is a quarantined test for `quarantine_rate` of the flaky
  failures (it passes, is counted, and runs no more), else convoy runs it
  again, at most `retry_failed` times (a stage's `retry_failed`). Each run
  again takes the stage's seconds again (the failing test is taken to be
  the stage's time, as the hardware test is) and is a retry. A breaking
  request fails every run: retries cost time on it and reject it anyway.
- On its rigs, a run fails because of a rig with that rig's failure rate
  (`rig_failure_rate`; `bad_rig_failure_rate` for the first `bad_rigs` of
  a pool: sick rigs). The rigs that failed go back, and the run waits for
  as many other rigs of their pools, each one it has not failed on (a rig
  retry: one more hardware run); the longest idle rig first, the run
  nearest the head first. When a pool has no rig left that the run has not
  failed on, it is an infrastructure error and the run starts again on any
  rig, counted against no rig.
- A rig's failure counts against it once the test passes on another rig (a
  failure on every rig says nothing about any one of them); a pass on a rig
  ends its streak. After `drain_after` counted failures in a row the rig is
  drained: it ends the run it has and takes no more work (0: never). The
  last rig of a pool that is not drained stays (a pool with no rig would
  stop the queue; the lab would page a person instead).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Mapping

PASS, FAIL, RERUN, QUARANTINED = "pass", "fail", "rerun", "quarantined"


@dataclass(eq=False)
class Rig:
    """One rig of a pool: how often it fails a run itself, its failures in a row, whether it is drained."""

    name: str
    pool: str
    failure_rate: float
    streak: int = 0
    drained: bool = False
    busy: bool = False
    since: float = 0.0  # when it last became busy or idle


class Run:
    """A stage run in flight: its item and stage, the rigs it holds or waits
    for, the rigs it failed on, and its test's runs so far."""

    def __init__(self, item, stage: int) -> None:
        self.item, self.stage = item, stage
        self.live = True
        self.held: list[Rig] = []
        self.wants: dict[str, int] = {}  # pool -> rigs it waits for (a rig retry)
        self.avoid: set[str] = set()  # the rigs it failed on
        self.failed_on: list[Rig] = []  # ... not counted against them yet (until the test passes elsewhere)
        self.tries = 1  # runs of the failing test in this Bazel run
        self.reruns = 0  # convoy's runs again


def judge(run: Run, *, failing: bool, broken: bool, settings, rng: random.Random) -> str:
    """What a run of the test comes to (see the module docstring); RERUN
    counts the run again on `run`."""
    if not failing:
        return PASS
    if run.tries < settings.flaky_attempts:
        run.tries += 1
        return RERUN
    if not broken and settings.quarantine_rate > 0 and rng.random() < settings.quarantine_rate:
        return QUARANTINED
    if run.reruns < settings.retry_failed:
        run.reruns += 1
        run.tries = 1
        return RERUN
    return FAIL


class Rigs:
    """Each pool's rigs, one by one, and the runs that wait for rigs to retry on."""

    def __init__(self, settings, rng: random.Random) -> None:
        self.rng = rng
        self.drain_after = settings.drain_after
        self.pools = {pool: [Rig(f"{pool}-{i}", pool, settings.bad_rig_failure_rate
                                 if i <= settings.bad_rigs.get(pool, 0) else settings.rig_failure_rate)
                             for i in range(1, n + 1)]
                      for pool, n in settings.rigs.items()}
        self.waiting: list[Run] = []
        self.seconds = 0.0  # rig seconds busy
        self.drained = 0

    def free(self) -> dict[str, int]:
        """Per pool: its idle rigs that are not drained, less those the waiting runs are owed."""
        owed: dict[str, int] = {}
        for run in self.waiting:
            for pool, n in run.wants.items():
                owed[pool] = owed.get(pool, 0) + n
        return {pool: max(0, len(self._idle(pool, ())) - owed.get(pool, 0)) for pool in self.pools}

    def busy(self) -> int:
        return sum(rig.busy for rigs in self.pools.values() for rig in rigs)

    def _idle(self, pool: str, avoid) -> list[Rig]:
        idle = [rig for rig in self.pools.get(pool, ()) if not rig.busy and not rig.drained and rig.name not in avoid]
        return sorted(idle, key=lambda rig: rig.since)  # the longest idle first (a stable sort: in order on ties)

    def take(self, run: Run, needs: Mapping[str, int], now: float) -> bool:
        """Gives `run` `needs` idle rigs (none it failed on); False, and nothing taken, if there are not so many."""
        chosen: list[Rig] = []
        for pool, n in needs.items():
            idle = self._idle(pool, run.avoid)
            if len(idle) < n:
                return False
            chosen += idle[:n]
        for rig in chosen:
            rig.busy, rig.since = True, now
        run.held += chosen
        return True

    def give_back(self, run: Run, rigs: list[Rig], now: float) -> None:
        for rig in rigs:
            self.seconds += now - rig.since
            rig.busy, rig.since = False, now
            run.held.remove(rig)

    def stop(self, run: Run, now: float) -> None:
        """`run` ended or was cancelled: its rigs go back and it waits for none."""
        self.give_back(run, list(run.held), now)
        if run in self.waiting:
            self.waiting.remove(run)

    def failures(self, run: Run) -> list[Rig]:
        """The rigs of `run` that failed its run themselves (drawn now, one by one)."""
        return [rig for rig in run.held if rig.failure_rate > 0 and self.rng.random() < rig.failure_rate]

    def retry(self, run: Run, failed: list[Rig], now: float) -> None:
        """The rigs that failed `run` go back; it waits for as many others."""
        self.give_back(run, failed, now)
        run.avoid.update(rig.name for rig in failed)
        run.failed_on += failed
        for rig in failed:
            run.wants[rig.pool] = run.wants.get(rig.pool, 0) + 1
        self.waiting.append(run)

    def serve(self, now: float, order: Callable[[Run], int]) -> list[Run]:
        """Gives the waiting runs, in `order`, the rigs they wait for while
        there are; returns those that have them (they run again now)."""
        served = []
        for run in sorted(self.waiting, key=order):
            if any(self._untried(run, pool) < n for pool, n in run.wants.items()):
                run.avoid.clear()  # no rig left it has not failed on: an infrastructure error, again on any rig
                run.failed_on = []
            if self.take(run, run.wants, now):
                run.wants = {}
                self.waiting.remove(run)
                served.append(run)
        return served

    def _untried(self, run: Run, pool: str) -> int:
        return sum(1 for rig in self.pools.get(pool, ()) if not rig.drained and rig.name not in run.avoid)

    def _left(self, pool: str) -> int:
        return sum(1 for rig in self.pools[pool] if not rig.drained)

    def passed(self, run: Run) -> None:
        """The test passed on `run`'s rigs: their streaks end, and each rig it
        failed on before counts a failure (drained at `drain_after` in a row)."""
        for rig in run.held:
            rig.streak = 0
        for rig in run.failed_on:
            rig.streak += 1
            if self.drain_after and rig.streak >= self.drain_after and not rig.drained and self._left(rig.pool) > 1:
                rig.drained = True
                self.drained += 1
        run.failed_on = []
