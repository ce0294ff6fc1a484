"""Flaky tests: convoy's own retry of a failing test that passed on main, quarantine, and what they count.

    policy = retry_known_on_main(store, spec, configuration)   # a convoy.retries Policy
    note = quarantine_note(config, configuration)               # label -> a note, or None
    held = held_tests(tx, build_id)                             # a build's flaky and quarantined tests
    rows = rates(tx.test_results(), quarantine=config.quarantine, last=20)   # `convoy flakes`

A red test is believed unless it has earned a second look: it passed on
main (`Transaction.passed_on_main`: its latest result in a succeeded build
of a merged request). Then convoy runs it once more (a stage's
`retry_failed`, default 1; 0: never), and a pass makes it FLAKY, which
merges and is counted. A test with no result on main (a new test, or one
only ever seen failing) is never run again: a new test that fails rejects,
it cannot merge as flaky. When the failing tests of a task are some of each,
none runs again: the one new on main rejects the request anyway, and running
the others would only spend a Bazel run on a verdict that cannot change.

Bazel's own retry (a stage's `flaky_test_attempts: N`, its
--flaky_test_attempts=N) is independent: Bazel reports a test that failed
and then passed as FLAKY, and it merges the same way.

`quarantine:` in convoy.yaml (convoy.config_flaky) names tests whose
failure does not reject until a date: retries.judge gives such a failing
test the status "quarantined" with the note `quarantine_note` returns
("quarantined until 2026-12-31: <reason>"). An entry that expired while
`convoy process` runs no longer holds (its next start refuses convoy.yaml).
Quarantined and flaky tests are reported: `convoy status`, the release
notes (`release_lines`), the provenance statement, and `convoy flakes`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

from convoy import bep, untrusted
from convoy.config import Config, StageSpec
from convoy.config_flaky import QuarantineEntry
from convoy.models import FAILING_STATUSES, TestResult
from convoy.retries import QUARANTINED, Attempt, Policy, Retry
from convoy.store import Store, Transaction

KIND = "main"  # the kind of convoy's retries of a test that passed on main (retries.Retry.kind)
HELD = (bep.FLAKY, QUARANTINED)  # the statuses a release reports
DEFAULT_LAST = 50  # `convoy flakes`: the runs of each test counted


def retry_known_on_main(store: Store, spec: StageSpec, configuration: str, *,
                        quarantined: Callable[[str], Optional[str]] = lambda _: None) -> Policy:
    """The policy that runs a failing test again when it passed on main, up
    to `spec.retry_failed` times (see the module docstring: all the failing
    tests are known on main, or none runs again). A test that `quarantined`
    holds does not count: its failure rejects nothing either way."""

    def policy(attempts: Sequence[Attempt], failing: Sequence[str]) -> Optional[Retry]:
        made = sum(1 for a in attempts if a.kind == KIND)
        if made >= spec.retry_failed:
            return None
        counted = [label for label in failing if not quarantined(label)]
        if not counted:
            return None
        with store.read() as tx:
            if not all(tx.passed_on_main(label, configuration) for label in counted):
                return None
        shown = "it" if len(counted) == 1 else "they"
        return Retry(targets=tuple(counted), kind=KIND,
                     reason=f"failed here but passed on main: {shown} ran again "
                            f"({made + 1} of {spec.retry_failed}, retry_failed)")

    return policy


def quarantine_note(config: Config, configuration: str, *,
                    today: Optional[datetime.date] = None) -> Callable[[str], Optional[str]]:
    """A label's quarantine note in `configuration` (None: not quarantined, or its entry expired)."""

    def note(label: str) -> Optional[str]:
        entry = quarantine_entry(config.quarantine, label, configuration, today=today)
        return entry.note if entry is not None else None

    return note


def quarantine_entry(entries: Sequence[QuarantineEntry], label: str, configuration: str, *,
                     today: Optional[datetime.date] = None) -> Optional[QuarantineEntry]:
    """The entry that holds `label` in `configuration` today, or None."""
    day = today or datetime.date.today()
    return next((entry for entry in entries if entry.applies(label, configuration, day)), None)


@dataclass(frozen=True)
class HeldTest:
    """A test of a build that failed and did not reject: FLAKY (it passed
    when run again) or quarantined; in which stage and configuration, after
    how many runs, and why (its notes)."""

    label: str
    status: str
    stage: str
    configuration: str
    attempts: int = 1
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"label": self.label, "status": self.status, "stage": self.stage,
                "configuration": self.configuration, "attempts": self.attempts, "notes": list(self.notes)}

    def line(self) -> str:
        """One line of the release notes: "integration / rover: //x:t flaky (2 runs: why)"."""
        runs = f"{self.attempts} run{'s' if self.attempts != 1 else ''}"
        why = "; ".join(self.notes)
        text = f"{self.stage} / {self.configuration}: {self.label} {self.status} ({runs}{': ' + why if why else ''})"
        return untrusted.printable(text)


def held_tests(tx: Transaction, build_id: int) -> list[HeldTest]:
    """The flaky and quarantined tests of build `build_id`, stage by stage."""
    held = []
    for stage in tx.stages(build_id):
        for task in sorted(tx.tasks(stage_id=stage.id), key=lambda t: t.configuration):
            held += [HeldTest(label=t.label, status=t.status, stage=stage.name, configuration=task.configuration,
                              attempts=t.attempts, notes=t.notes)
                     for t in task.targets if t.status in HELD]
    return held


def release_lines(tx: Transaction, build_ids: Iterable[int]) -> list[str]:
    """The release notes' "Flaky and quarantined tests" lines of the builds
    that tested the release (none: the section is left out)."""
    return [test.line() for build_id in dict.fromkeys(build_ids) for test in held_tests(tx, build_id)]


@dataclass
class Counts:
    """A test's runs and how they ended: flaky (passed when run again),
    failed (failed, timed out, or quarantined: failed and did not count)."""

    runs: int = 0
    flaky: int = 0
    failed: int = 0

    def add(self, status: str) -> None:
        self.runs += 1
        self.flaky += int(status == bep.FLAKY)
        self.failed += int(status in FAILING_STATUSES or status == QUARANTINED)

    def to_dict(self) -> dict:
        return {"runs": self.runs, "flaky": self.flaky, "failed": self.failed,
                "flake_rate": round(self.flaky / self.runs, 3) if self.runs else 0.0,
                "failure_rate": round(self.failed / self.runs, 3) if self.runs else 0.0}


@dataclass
class FlakeRow:
    """One test in one configuration over its last runs (`convoy flakes`): the
    counts, per rig too (a hardware test), its newest result and status, and
    the quarantine entry that holds it."""

    target: str
    configuration: str
    counts: Counts = field(default_factory=Counts)
    rigs: dict[str, Counts] = field(default_factory=dict)
    last_status: str = ""
    last_recorded_at: float = 0.0
    last_request_id: Optional[int] = None
    quarantine: Optional[QuarantineEntry] = None

    @property
    def badness(self) -> tuple:
        """What sorts the worst first: the share of runs that did not simply pass, then how many."""
        c = self.counts
        return (-(c.flaky + c.failed) / max(c.runs, 1), -(c.flaky + c.failed), -self.last_recorded_at)

    def to_dict(self) -> dict:
        entry = self.quarantine
        return {
            "target": self.target, "configuration": self.configuration, **self.counts.to_dict(),
            "rigs": {rig: counts.to_dict() for rig, counts in sorted(self.rigs.items())},
            "last_status": self.last_status, "last_recorded_at": self.last_recorded_at,
            "last_request_id": self.last_request_id,
            "quarantine": ({"reason": entry.reason, "until": entry.until.isoformat(),
                            "configurations": list(entry.configurations)} if entry is not None else None),
        }


def rates(results: Iterable[TestResult], *, quarantine: Sequence[QuarantineEntry] = (), last: int = DEFAULT_LAST,
          today: Optional[datetime.date] = None) -> list[FlakeRow]:
    """Each test's flake and failure rates per configuration over its `last`
    runs (`results` newest first, as Transaction.test_results gives them), per
    rig too, worst first: what a release engineer fixes or quarantines next.
    A test that only passed comes after every one that did not, and a
    quarantine entry whose test has no results yet is listed too (0 runs)."""
    rows: dict[tuple[str, str], FlakeRow] = {}
    for result in results:
        row = rows.get((result.target, result.configuration))
        if row is None:
            row = rows[(result.target, result.configuration)] = FlakeRow(
                target=result.target, configuration=result.configuration, last_status=result.status,
                last_recorded_at=result.recorded_at, last_request_id=result.request_id)
        if row.counts.runs >= last:
            continue
        row.counts.add(result.status)
        for rig in result.rigs:
            row.rigs.setdefault(rig, Counts()).add(result.status)
    for row in rows.values():
        row.quarantine = quarantine_entry(quarantine, row.target, row.configuration, today=today)
    for entry in quarantine:
        if not any(row.target == entry.target for row in rows.values()):
            for configuration in entry.configurations or ("*",):
                rows[(entry.target, configuration)] = FlakeRow(target=entry.target, configuration=configuration,
                                                               quarantine=entry)
    return sorted(rows.values(), key=lambda r: (r.badness, r.target, r.configuration))
