"""A task's tests run again before a red result is believed, and the verdict over its runs.

    attempts = [first]                                     # Attempt: one Bazel run of the task
    while (retry := next_retry(policies, attempts)) is not None:
        attempts.append(run(retry))                        # the failing tests only, with retry.flags
    verdict = judge(attempts, quarantined=...)             # Verdict: the task's targets and outcome

A test stage's task is one `bazel test`; when it ends with tests failed,
the queue asks its retry policies, in order, whether to run the failing
tests again, and each says why (`Retry.reason`, shown by `convoy show`):

- `rig` (convoy.lab.health): a hardware test that failed on a rig runs
  again on another rig of its pool; a rig-side failure (the rig does not
  answer, the flash fails, the test exits with the rig client's
  infrastructure code, 75) is the rig's, not the change's;
- `main` (convoy.flaky): a test that fails on the candidate and passed on
  main runs again, up to the stage's `retry_failed` times; a test that is
  new on main never does, so a new failing test cannot merge as flaky.

`judge` then gives each target its last run's status, with convoy's own
verdicts: `flaky` for a test that failed and then passed, `quarantined`
for a failing test that `quarantine:` in convoy.yaml names (it does not
reject). The task passes when no target still fails; it is an
infrastructure error when every failure that is left is the rigs'
(`infra_targets`), and tests failed otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

from convoy import bep
from convoy.bazel_result import BazelResult, Outcome

QUARANTINED = "quarantined"  # a failing test that convoy.yaml's quarantine names: it does not reject


@dataclass(frozen=True)
class Attempt:
    """One Bazel run of a task: the targets it ran (() = the stage's), why
    it ran again (None: the first run), which policy asked (`kind`: "rig",
    "main"), its result and, on the lab, the record of which rig ran each
    test (convoy.lab.stage.record_rigs: {"runs": [...], "error": ...})."""

    result: BazelResult
    targets: tuple[str, ...] = ()
    reason: Optional[str] = None
    kind: Optional[str] = None
    rigs: Optional[Mapping] = None
    flags: tuple[str, ...] = ()

    def runs_of(self, label: str) -> list[Mapping]:
        """The lab's runs of `label` in this attempt (each Bazel attempt of the test), in order."""
        return [r for r in (self.rigs or {}).get("runs", ()) if r.get("target") == label]


@dataclass(frozen=True)
class Retry:
    """Run `targets` again with `flags` added, because `reason` (one line)."""

    targets: tuple[str, ...]
    reason: str
    kind: str
    flags: tuple[str, ...] = ()


# A policy: given the attempts so far (the first first) and the labels that still fail, a Retry or None.
Policy = Callable[[Sequence[Attempt], Sequence[str]], Optional[Retry]]


@dataclass(frozen=True)
class TargetVerdict:
    """One target over a task's attempts: its final status, the attempts it
    was in, the rigs it ran on (in order), and why it ran again or does not
    count (`notes`)."""

    label: str
    status: str
    result: bep.TargetResult
    attempts: int = 1
    rigs: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def failing(self) -> bool:
        return self.status in bep.FAILING_STATUSES


@dataclass(frozen=True)
class Verdict:
    """A task's targets after its attempts, and what it comes to."""

    targets: tuple[TargetVerdict, ...]
    outcome: Outcome
    detail: str = ""
    infra_targets: tuple[str, ...] = ()
    retried: tuple[str, ...] = ()

    @property
    def failing(self) -> tuple[TargetVerdict, ...]:
        return tuple(t for t in self.targets if t.failing)


def failing_labels(attempts: Sequence[Attempt]) -> tuple[str, ...]:
    """The labels whose latest run failed, in the first run's order."""
    latest: dict[str, bep.TargetResult] = {}
    for attempt in attempts:
        for target in attempt.result.targets:
            latest[target.label] = target
    return tuple(label for label, t in latest.items() if t.failing)


def next_retry(policies: Sequence[Policy], attempts: Sequence[Attempt]) -> Optional[Retry]:
    """The first retry a policy asks for, or None. Only a run whose tests
    failed is retried (a build failure or an infrastructure error is not a
    test's to retry)."""
    if attempts[-1].result.outcome is not Outcome.TESTS_FAILED:
        return None
    failing = failing_labels(attempts)
    if not failing:
        return None
    for policy in policies:
        retry = policy(attempts, failing)
        if retry is not None and retry.targets:
            return retry
    return None


def judge(attempts: Sequence[Attempt], *, quarantined: Callable[[str], Optional[str]] = lambda _: None,
          infra: Callable[[Sequence[Attempt], str], bool] = lambda _a, _l: False) -> Verdict:
    """The verdict over `attempts`: each target's last status; `flaky` for
    one that failed in an earlier attempt and passed in a later one;
    `quarantined` for a failing one whose label `quarantined` gives a note
    for; the rigs each ran on, from the lab's records. `infra(attempts,
    label)` says whether a failure that is left is the rigs' (then, if all
    are, the outcome is an infrastructure error)."""
    first = attempts[0].result
    latest: dict[str, tuple[bep.TargetResult, int]] = {}
    failed_before: set[str] = set()
    rigs: dict[str, list[str]] = {}
    notes: dict[str, list[str]] = {}
    for attempt in attempts:
        for target in attempt.result.targets:
            if target.label in latest and latest[target.label][0].failing:
                failed_before.add(target.label)
                if attempt.reason:
                    notes.setdefault(target.label, []).append(attempt.reason)
            count = latest[target.label][1] + 1 if target.label in latest else 1
            latest[target.label] = (target, count)
            for run in attempt.runs_of(target.label):
                rig = run.get("rig")
                if rig and rig not in rigs.setdefault(target.label, []):
                    rigs[target.label].append(rig)
    verdicts = []
    for label, (target, count) in latest.items():
        status = target.status
        if status in (bep.PASSED, bep.FLAKY) and label in failed_before:
            status = bep.FLAKY
        elif target.failing:
            note = quarantined(label)
            if note:
                status = QUARANTINED
                notes.setdefault(label, []).append(note)
        verdicts.append(TargetVerdict(label=label, status=status, result=target, attempts=count,
                                      rigs=tuple(rigs.get(label, ())), notes=tuple(notes.get(label, ()))))
    failing = [v for v in verdicts if v.failing]
    retried = tuple(sorted(failed_before))
    unexplained = next((a.result for a in attempts if a.result.outcome is Outcome.TESTS_FAILED
                        and not any(t.failing for t in a.result.targets)), None)
    if unexplained is not None:  # tests failed and the build events name none: nothing to excuse
        return Verdict(tuple(verdicts), unexplained.outcome, unexplained.detail, retried=retried)
    if not failing:
        if any(a.result.outcome is Outcome.TESTS_FAILED for a in attempts):
            return Verdict(tuple(verdicts), Outcome.PASSED, _passed_detail(verdicts), retried=retried)
        return Verdict(tuple(verdicts), attempts[-1].result.outcome, attempts[-1].result.detail, retried=retried)
    if len(attempts) == 1 and first.outcome is not Outcome.TESTS_FAILED:
        return Verdict(tuple(verdicts), first.outcome, first.detail, retried=retried)
    infra_targets = tuple(v.label for v in failing if infra(attempts, v.label))
    last = attempts[-1].result
    if len(infra_targets) == len(failing):
        labels = ", ".join(infra_targets)
        return Verdict(tuple(verdicts), Outcome.INFRA_ERROR,
                       f"rig-side failures, not the change's: {labels}; see {last.log_path}",
                       infra_targets=infra_targets, retried=retried)
    if len(attempts) == 1:
        return Verdict(tuple(verdicts), first.outcome, first.detail, infra_targets=infra_targets)
    shown = ", ".join(v.label for v in failing[:5]) + (f" and {len(failing) - 5} more" if len(failing) > 5 else "")
    return Verdict(tuple(verdicts), Outcome.TESTS_FAILED,
                   f"{len(failing)} test{'s' if len(failing) != 1 else ''} failed after {len(attempts)} runs: "
                   f"{shown}", infra_targets=infra_targets, retried=retried)


def _passed_detail(verdicts: Sequence[TargetVerdict]) -> str:
    tests = [v for v in verdicts if v.status in (bep.PASSED, bep.FLAKY, QUARANTINED)]
    flaky = [v.label for v in verdicts if v.status == bep.FLAKY]
    held = [v.label for v in verdicts if v.status == QUARANTINED]
    extra = []
    if flaky:
        extra.append(f"{len(flaky)} flaky: {', '.join(flaky)}")
    if held:
        extra.append(f"{len(held)} quarantined: {', '.join(held)}")
    more = f" ({'; '.join(extra)})" if extra else ""
    return f"{len(tests)} test{'s' if len(tests) != 1 else ''} passed{more}"
