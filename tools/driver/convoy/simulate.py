"""`convoy simulate`'s engine: the real scheduler (convoy.queue.chain) on a simulated clock.

    settings = Settings(requests=60, arrival_per_hour=60, failure_rate=0.1, rigs={"rigs": 4},
                        stage_seconds={"build": 120, "integration": 300, "configuration": 120, "hardware": 1800})
    report = simulate(Policy.of("speculative", window=4), settings)
    report.merges_per_hour, report.hardware_runs_per_merge, report.green_violations

The scheduler's decisions are the ones `convoy process` takes
(`Scheduler.take` and `Scheduler.plan`, the same class, with the same
`Policy.of(mode)` from convoy.modes: the serial mode is that scheduler
with a window of 1 in `convoy process` too); only the executor is
simulated. Making a candidate takes no time; a stage run takes its
stage's seconds (±10%, from the seeded random generator); a stage with a
pool holds one rig of it for the run. A request "breaks" (with probability
`failure_rate`) one stage, chosen at random, and any candidate that holds it
fails that stage; any stage run also fails, whatever it holds, with
probability `flake_rate`. The build graph of a failure is modelled too: a
request bumps one of `components` components, the failing test depends on
the culprit's component and one other at random, and the suspects are the
failing candidate's requests whose component is among them.

What the queue does about flakes and sick rigs is modelled by
convoy.simulate_health: Bazel's `flaky_attempts` and convoy's
`retry_failed` runs again of a failing test, `quarantine_rate`, rigs one by
one that fail runs themselves (`rig_failure_rate`; `bad_rigs` sick ones at
`bad_rig_failure_rate`), a rig retry on another rig, and draining a rig
after `drain_after` failures in a row. Its draws come from a generator of
their own, so that with none of it the day is the one it was without it.

Every merge is checked, not assumed: a merge is a green violation if the
candidate's base is not the branch tip, if it did not pass every stage, or
if it holds a request that breaks something. Reported per mode: merges per
hour (requests merged / hours from the first arrival to the last merge),
mean and p95 minutes from submit to merge, stage runs per merge, hardware
(pool) runs per merge (each run of a test on rigs: retries too), rig
utilisation, green violations, good requests rejected, retries (Bazel's
and convoy's runs again of a failing test), rig retries, quarantined
failures and rigs drained; and the queue length and rigs in use over time,
for the plot.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

from convoy.queue.chain import (RESHAPING, Build, Enter, Failure, Item, Merge, Policy, Reject, Scheduler, Split,
                                StageSpec)
from convoy.simulate_health import FAIL, PASS, QUARANTINED, RERUN, Rigs, Run, judge

DEFAULT_STAGE_SECONDS = {"build": 120.0, "integration": 300.0, "configuration": 120.0, "hardware": 1800.0}
HARDWARE_POOL = "rigs"
MAX_EVENTS = 2_000_000


@dataclass(frozen=True)
class Settings:
    requests: int = 60
    arrival_per_hour: float = 60.0
    failure_rate: float = 0.1
    flake_rate: float = 0.0
    stage_seconds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_STAGE_SECONDS))
    pools: Mapping[str, str] = field(default_factory=lambda: {"hardware": HARDWARE_POOL})  # stage -> pool
    rigs: Mapping[str, int] = field(default_factory=lambda: {HARDWARE_POOL: 4})  # pool -> rigs
    components: int = 12
    seed: int = 1
    flaky_attempts: int = 1  # Bazel's --flaky_test_attempts: runs of a failing test in one Bazel run
    retry_failed: int = 0  # convoy's runs again of a failing test that passed on main
    quarantine_rate: float = 0.0  # the share of flaky failures that hit a quarantined test
    rig_failure_rate: float = 0.0  # the chance that a rig fails a hardware run itself
    bad_rigs: Mapping[str, int] = field(default_factory=dict)  # pool -> sick rigs (the first of the pool)
    bad_rig_failure_rate: float = 0.8  # ... each fails a run itself with this chance
    drain_after: int = 3  # a rig's counted failures in a row before it is drained (0: never)


@dataclass
class Report:
    mode: str
    requests: int
    merged: int
    rejected: int
    wrongly_rejected: int  # rejected, but broke nothing (a flake at the tip): a false rejection
    hours: float
    merges_per_hour: float
    mean_minutes: float
    p95_minutes: float
    stage_runs: int
    runs_per_merge: float
    hardware_runs: int
    hardware_runs_per_merge: float
    rig_utilisation: float
    green_violations: int
    splits: int
    retries: int = 0  # runs again of a failing test (Bazel's flaky attempts and convoy's retry_failed)
    rig_retries: int = 0  # hardware runs again after a rig failed one itself (the wasted runs)
    quarantined: int = 0  # flaky failures of a quarantined test (passed, not retried)
    rigs_drained: int = 0
    timeline: list = field(default_factory=list)  # (seconds, queue length, rigs in use)

    def to_json(self, *, timeline: bool = False) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k != "timeline"}
        if timeline:
            data["timeline"] = [list(point) for point in self.timeline]
        return data


@dataclass
class _Request:
    id: int
    arrives: float
    breaks: Optional[int]  # the stage it breaks, or None
    component: int
    merged_at: Optional[float] = None
    rejected: bool = False


class Simulation:
    """One mode's run: requests arrive, the scheduler decides, stage runs end."""

    def __init__(self, policy: Policy, settings: Settings) -> None:
        self.policy, self.settings = policy, settings
        self.rng = random.Random(settings.seed)
        self.rigs = Rigs(settings, random.Random(f"health {settings.seed}"))
        names = list(settings.stage_seconds)
        self.stages = [StageSpec(name, settings.pools.get(name)) for name in names]
        self.durations = [float(settings.stage_seconds[name]) for name in names]
        self.scheduler = Scheduler(policy, self.stages)
        self.requests = self._requests()
        self.contents: dict[str, frozenset[int]] = {"main": frozenset()}
        self.tip = "main"
        self.ids = itertools.count(1)
        self.events: list = []
        self.seq = itertools.count()
        self.now = 0.0
        self.arrived: list[int] = []
        self.runs: dict[int, Run] = {}  # id(item) -> its run
        self.stage_runs = self.hardware_runs = self.violations = self.splits = 0
        self.retries = self.rig_retries = self.quarantined = 0
        self.timeline: list[tuple[float, int, int]] = []

    def _requests(self) -> list[_Request]:
        s, rng = self.settings, self.rng
        at, made = 0.0, []
        for rid in range(1, s.requests + 1):
            breaks = rng.randrange(len(self.stages)) if rng.random() < s.failure_rate else None
            made.append(_Request(rid, at, breaks, rng.randrange(max(1, s.components))))
            at += rng.expovariate(s.arrival_per_hour / 3600.0) if s.arrival_per_hour > 0 else 0.0
        return made

    # -- the clock ------------------------------------------------------------------------

    def _at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.events, (when, next(self.seq), action))

    def run(self) -> Report:
        for request in self.requests:
            self._at(request.arrives, lambda r=request: self.arrived.append(r.id))
        count = 0
        while self.events:
            self.now, _, action = heapq.heappop(self.events)
            action()
            self._settle()
            count += 1
            if count > MAX_EVENTS:
                raise RuntimeError("the simulation did not end (a scheduler loop?)")
        open_ = [r.id for r in self.requests if r.merged_at is None and not r.rejected]
        if open_:
            raise RuntimeError(f"the simulation stalled with requests {open_[:5]} still open (a scheduler bug)")
        return self._report()

    def _settle(self) -> None:
        """Asks the scheduler until it has nothing more to do at this instant."""
        for _ in range(10_000):
            self._serve()
            finished = {r.id for r in self.requests if r.merged_at is not None or r.rejected}
            self.scheduler.take([r for r in self.arrived if r not in finished])
            actions = self.scheduler.plan(self.tip, self._free())
            if not actions:
                break
            for action in actions:
                self._apply(action)
                if isinstance(action, RESHAPING):
                    break  # the rest of the plan assumed the chain as it was
        self._sample()

    def _free(self) -> dict[str, int]:
        return self.rigs.free()

    def _serve(self) -> None:
        """Runs waiting for rigs to retry on get them first, nearest the head first."""
        if self.rigs.waiting:
            place = {id(item): i for i, item in enumerate(self.scheduler.chain)}
            for run in self.rigs.serve(self.now, lambda r: place.get(id(r.item), len(place))):
                self._attempt(run)

    def _sample(self) -> None:
        done = sum(1 for r in self.requests if r.merged_at is not None or r.rejected)
        waiting = len(self.arrived) - done
        busy = self.rigs.busy()
        point = (round(self.now, 3), waiting, busy)
        if not self.timeline or self.timeline[-1][1:] != point[1:]:
            self.timeline.append(point)

    # -- the executor ------------------------------------------------------------------------

    def _apply(self, action) -> None:
        if isinstance(action, Build):
            self._stop_run(action.item)
            candidate = f"c{next(self.ids)}"
            self.contents[candidate] = self.contents[action.base] | set(action.item.requests)
            action.item.making(action.base)
            action.item.made(action.base, candidate)
        elif isinstance(action, Enter):
            self._start(action.item, action.stage, action.rigs)
        elif isinstance(action, Merge):
            self._merge(action.item)
        elif isinstance(action, Reject):
            for rid in action.item.requests:
                self.requests[rid - 1].rejected = True
            self.scheduler.rejected(action.item)
        elif isinstance(action, Split):
            self._stop_run(action.item)
            self.splits += 1
            self.scheduler.split(action.item, action.parts)

    def _start(self, item: Item, stage: int, rigs: Mapping[str, int]) -> None:
        item.running = True
        item.rigs = dict(rigs)
        run = Run(item, stage)
        self.runs[id(item)] = run
        self.stage_runs += 1
        if not self.rigs.take(run, rigs, self.now):
            raise RuntimeError(f"the scheduler handed out rigs {dict(rigs)} that are not free (a scheduler bug)")
        self._attempt(run)

    def _attempt(self, run: Run) -> None:
        """One run of the stage's test, on the rigs `run` holds."""
        if self.stages[run.stage].pool is not None:
            self.hardware_runs += 1
        seconds = self.durations[run.stage] * self.rng.uniform(0.9, 1.1)
        self._at(self.now + seconds, lambda: self._finish(run))

    def _stop_run(self, item: Item) -> None:
        run = self.runs.pop(id(item), None)
        if run is not None and run.live:
            self._release(run)

    def _release(self, run: Run) -> None:
        run.live = False
        self.rigs.stop(run, self.now)
        run.item.rigs = {}

    def _finish(self, run: Run) -> None:
        if not run.live:
            return
        failed = self.rigs.failures(run)
        if failed:  # the rig's failure, not the candidate's: again on another rig
            self.rig_retries += 1
            self.rigs.retry(run, failed, self.now)
            return
        item = run.item
        held = self.contents[item.candidate]
        culprits = [rid for rid in sorted(held) if self.requests[rid - 1].breaks == run.stage]
        failing = bool(culprits) or self.rng.random() < self.settings.flake_rate
        verdict = judge(run, failing=failing, broken=bool(culprits), settings=self.settings, rng=self.rigs.rng)
        if verdict == RERUN:
            self.retries += 1
            self._attempt(run)
            return
        if verdict == PASS:
            self.rigs.passed(run)
        self.quarantined += verdict == QUARANTINED
        self.runs.pop(id(item), None)
        self._release(run)
        if verdict == FAIL:
            item.failed(self._failure(item, run.stage, culprits))
        else:
            item.stage_passed()

    def _failure(self, item: Item, stage: int, culprits: list[int]) -> Failure:
        """The failure as the build graph would see it: the failing test
        depends on the culprit's component and one other."""
        rng, n = self.rng, max(1, self.settings.components)
        deps = {self.requests[culprits[0] - 1].component} if culprits else {rng.randrange(n)}
        deps.add(rng.randrange(n))
        suspects = tuple(r for r in item.requests if self.requests[r - 1].component in deps)
        return Failure(stage, targets=(f"//sim:test_{stage}",), suspects=suspects or None, how="build graph")

    def _merge(self, item: Item) -> None:
        held = self.contents[item.candidate]
        broken = any(self.requests[r - 1].breaks is not None for r in held)
        if item.base != self.tip or not item.passed(len(self.stages)) or broken:
            self.violations += 1
        self.tip = item.candidate
        for rid in item.requests:
            self.requests[rid - 1].merged_at = self.now
        self.scheduler.merged(item)

    # -- the figures --------------------------------------------------------------------------

    def _report(self) -> Report:
        merged = [r for r in self.requests if r.merged_at is not None]
        first = min((r.arrives for r in self.requests), default=0.0)
        last = max((r.merged_at for r in merged), default=first)
        hours = max(last - first, 1e-9) / 3600.0
        minutes = sorted((r.merged_at - r.arrives) / 60.0 for r in merged)
        rigs = sum(self.settings.rigs.values())
        span = max(self.now - first, 1e-9)
        return Report(
            mode=self.policy.mode, requests=len(self.requests), merged=len(merged),
            rejected=sum(1 for r in self.requests if r.rejected),
            wrongly_rejected=sum(1 for r in self.requests if r.rejected and r.breaks is None),
            hours=hours, merges_per_hour=len(merged) / hours if merged else 0.0,
            mean_minutes=sum(minutes) / len(minutes) if minutes else 0.0,
            p95_minutes=_percentile(minutes, 0.95),
            stage_runs=self.stage_runs, runs_per_merge=self.stage_runs / max(1, len(merged)),
            hardware_runs=self.hardware_runs, hardware_runs_per_merge=self.hardware_runs / max(1, len(merged)),
            rig_utilisation=self.rigs.seconds / (rigs * span) if rigs else 0.0,
            green_violations=self.violations, splits=self.splits, retries=self.retries,
            rig_retries=self.rig_retries, quarantined=self.quarantined, rigs_drained=self.rigs.drained,
            timeline=self.timeline,
        )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    index = max(0, math.ceil(q * len(values)) - 1)
    return values[index]


def simulate(policy: Policy, settings: Settings) -> Report:
    """One mode's simulated run."""
    return Simulation(policy, settings).run()
