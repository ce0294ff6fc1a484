"""Each rig's health, as in LAVA: good, suspect, bad, maintenance; kept in the lab's directory.

    book = HealthBook(Path(".convoy/lab"))
    book.state_of("rover-rigs-1")                            # "good" (a rig never seen is good)
    book.set_state("rover-rigs-1", "rover-rigs", MAINTENANCE, reason="new motor", by="ana")  # a Change, or None
    book.observe([Observation(rig=..., pool=..., ok=False, counts=True, target=..., reason=...)], bad_after=3)

`<lab>/health.json` holds every rig that has a record: its pool, state,
streak (hardware failures in a row that count against it), its last
failures (time, target, why, whether it counted) and its last changes
(time, old, new, why, who). It is read by each rig's worker before it asks
for work (convoy.lab.worker: a `bad` or `maintenance` rig is drained, it
reports UNHEALTHY to the server and gets nothing), by `convoy lab status`,
and changed by the driver after a hardware task (convoy.lab.health) and by
`convoy lab rig RIG --maintenance | --good`. Every change is a read, a
change and an atomic replace under a file lock (`health.lock`), so the
driver's lanes and a person never lose each other's changes, and a reader
never sees half a file.

The states (LAVA's device health): `good` takes work; `suspect` takes work
but has failed lately; `bad` failed `bad_after` times in a row while the
same tests passed on other rigs, and takes nothing until a person puts it
back (`--good`); `maintenance` was taken out by a person. A failure that
counts moves a rig good -> suspect -> ... -> bad; a pass on it resets its
streak and a suspect rig is good again. Only a person moves a rig out of bad
or maintenance. Standard library only (the workers run it in .venv-lab).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional

from convoy.fsutil import atomic_write

GOOD = "good"
SUSPECT = "suspect"
BAD = "bad"
MAINTENANCE = "maintenance"
STATES = (GOOD, SUSPECT, BAD, MAINTENANCE)
DRAINED = (BAD, MAINTENANCE)  # no new work: the worker reports UNHEALTHY
DEFAULT_BAD_AFTER = 3
KEPT_FAILURES = 5
KEPT_CHANGES = 20
FILE = "health.json"


@dataclasses.dataclass(frozen=True)
class Observation:
    """One hardware run on a rig: passed (`ok`) or failed; a failure `counts`
    against the rig when the same test passed on another rig."""

    rig: str
    pool: str
    ok: bool
    counts: bool = False
    target: str = ""
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Change:
    """A rig's health moved from `old` to `new`, because `reason`, by `by` (a person, or "convoy")."""

    rig: str
    pool: str
    old: str
    new: str
    reason: str
    by: str
    at: float

    def event_data(self) -> Dict[str, Any]:
        return {"rig": self.rig, "pool": self.pool, "old": self.old, "new": self.new, "reason": self.reason,
                "by": self.by}


class HealthBook:
    """The health of the rigs of the lab in `directory` (its health.json)."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.path = self.dir / FILE

    def read(self) -> Dict[str, Dict[str, Any]]:
        """rig -> its record; {} when there is no file (every rig good) or it cannot be read."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        rigs = data.get("rigs") if isinstance(data, dict) else None
        return rigs if isinstance(rigs, dict) else {}

    def state_of(self, rig: str) -> str:
        state = self.read().get(rig, {}).get("state", GOOD)
        return state if state in STATES else GOOD

    def set_state(self, rig: str, pool: str, new: str, *, reason: str, by: str) -> Optional[Change]:
        """Moves `rig` to `new` (a person's `convoy lab rig`); the Change, or None if it was already there."""
        if new not in STATES:
            raise ValueError(f"unknown rig health {new!r}; one of {', '.join(STATES)}")
        with self._changing() as rigs:
            record = _record(rigs, rig, pool)
            if record["state"] == new:
                return None
            if new == GOOD:
                record["streak"] = 0
            return _move(record, rig, new, reason, by)

    def observe(self, observations: Iterable[Observation], *, bad_after: int = DEFAULT_BAD_AFTER,
                by: str = "convoy") -> List[Change]:
        """Applies hardware runs in order (see the module docstring); returns the changes they made."""
        observations = list(observations)
        if not observations:
            return []
        changes = []
        with self._changing() as rigs:
            for seen in observations:
                record = _record(rigs, seen.rig, seen.pool)
                state = record["state"]
                if seen.ok:
                    record["streak"] = 0
                    if state == SUSPECT:
                        changes.append(_move(record, seen.rig, GOOD, f"{seen.target} passed on it", by))
                    continue
                record["failures"] = (record["failures"] + [
                    {"at": time.time(), "target": seen.target, "reason": seen.reason, "counted": seen.counts}
                ])[-KEPT_FAILURES:]
                if not seen.counts or state in DRAINED:
                    continue
                record["streak"] += 1
                new = BAD if record["streak"] >= bad_after else SUSPECT
                if new != state:
                    why = f"{record['streak']} hardware failure(s) in a row that passed on other rigs; last: {seen.reason}"
                    changes.append(_move(record, seen.rig, new, why, by))
        return changes

    @contextlib.contextmanager
    def _changing(self) -> Iterator[Dict[str, Dict[str, Any]]]:
        """The rigs' records to change in place, written back atomically under the lab's health lock."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "health.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            rigs = self.read()
            yield rigs
            atomic_write(self.path, json.dumps({"rigs": rigs}, indent=1, sort_keys=True) + "\n")


def _record(rigs: Dict[str, Dict[str, Any]], rig: str, pool: str) -> Dict[str, Any]:
    record = rigs.setdefault(rig, {})
    record.setdefault("state", GOOD)
    record.setdefault("streak", 0)
    record.setdefault("failures", [])
    record.setdefault("changes", [])
    record["pool"] = pool or record.get("pool", "")
    return record


def _move(record: Dict[str, Any], rig: str, new: str, reason: str, by: str) -> Change:
    change = Change(rig=rig, pool=record["pool"], old=record["state"], new=new, reason=reason, by=by, at=time.time())
    record["state"] = new
    record["changes"] = (record["changes"] + [
        {"at": change.at, "old": change.old, "new": new, "reason": reason, "by": by}
    ])[-KEPT_CHANGES:]
    return change
