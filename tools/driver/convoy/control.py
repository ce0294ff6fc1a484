"""The queue's control state: paused or draining, why, who said so and since when.

    with store.transaction() as tx:
        control.pause(tx, by="alice", reason="upgrading Bazel")   # QUEUE_PAUSED
        control.drain(tx, by="alice")                             # QUEUE_DRAINING: paused, and convoy
                                                                  # process exits once nothing is in flight
        control.resume(tx, by="bob")                              # QUEUE_RESUMED
    with store.read() as tx:
        held = control.state(tx)        # QueueControl(paused, draining, reason, by, since)

While the queue is paused nothing new starts: no queued request is taken
into testing (the serial mode: `QueueManager.step`; speculative and batch:
`WindowQueue` takes nothing into its window), and no try starts. What is in
testing runs to its merge or its rejection (a window's items are built
again as usual when what they are built on changes). A draining queue is
paused too, and `convoy process` (--all, --forever) exits 0 once nothing is
in flight; it stays paused until `convoy resume`.

The state is the store's meta key `queue.control` (JSON), written with its
event (data `{"by": ..., "reason": ...}`) in one transaction, as requests.py
writes a request's state; a store that never had it runs. Asking for the
state the queue is in already (pause a paused queue, drain a draining one,
resume a running one) changes nothing, writes no event and says so: each
function returns (the state, whether it changed), and the commands exit 0.
"""

from __future__ import annotations

import datetime
import getpass
import json
from dataclasses import asdict, dataclass
from typing import Any, Optional

from convoy import models
from convoy import untrusted
from convoy.errors import ConvoyError
from convoy.store import Transaction, now

CONTROL_KEY = "queue.control"
DRAIN_REASON = "draining for an upgrade"
MAX_TEXT = 200  # characters of --by and --reason


@dataclass(frozen=True)
class QueueControl:
    """Whether the queue takes new work, and the last change of that: who, why, when (a timestamp)."""

    paused: bool = False
    draining: bool = False
    reason: Optional[str] = None
    by: Optional[str] = None
    since: Optional[float] = None

    @property
    def word(self) -> str:
        return "draining" if self.draining else "paused" if self.paused else "running"

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.word, **asdict(self)}

    def line(self) -> str:
        """"the queue is paused since 2026-06-10 14:03 UTC by alice: upgrading Bazel" (escaped for a terminal)."""
        if not self.paused:
            return "the queue is running"
        text = f"the queue is {self.word}"
        if self.since is not None:
            when = datetime.datetime.fromtimestamp(self.since, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            text += f" since {when}"
        text += f" by {self.by or 'unknown'}" + (f": {self.reason}" if self.reason else "")
        return untrusted.printable(text)


def actor(by: Optional[str]) -> str:
    """Who does it: `by`, else the OS user, else "unknown" (--by's default)."""
    if by is not None:
        return by
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # no user name anywhere (no $USER, no passwd entry)
        return "unknown"


def check_text(flag: str, value: Optional[str]) -> None:
    """ConvoyError (one line) unless `value` (--by, --reason) is None or 1 to MAX_TEXT printable characters."""
    if value is None:
        return
    problem = untrusted.text_problem(value)
    if problem:
        raise ConvoyError(f"--{flag}={untrusted.printable(value)} {problem}; pass it without them")
    if not 0 < len(value) <= MAX_TEXT:
        raise ConvoyError(f"--{flag} must be 1 to {MAX_TEXT} characters (got {len(value)}); shorten it")


def state(tx: Transaction) -> QueueControl:
    """The queue's control state (running if none was ever written, or if it cannot be read)."""
    try:
        data = json.loads(tx.meta(CONTROL_KEY) or "{}")
        return QueueControl(paused=bool(data.get("paused")), draining=bool(data.get("draining")),
                            reason=_text(data.get("reason")), by=_text(data.get("by")),
                            since=float(data["since"]) if data.get("since") is not None else None)
    except (ValueError, TypeError, AttributeError):  # a hand-edited value: the queue runs
        return QueueControl()


def pause(tx: Transaction, *, by: str, reason: Optional[str] = None) -> tuple[QueueControl, bool]:
    """`convoy pause`: nothing new starts; what runs finishes. Unchanged if the queue is paused already."""
    current = state(tx)
    if current.paused:
        return current, False
    return _write(tx, QueueControl(paused=True, reason=reason, by=by, since=now()), models.QUEUE_PAUSED), True


def drain(tx: Transaction, *, by: str, reason: Optional[str] = None) -> tuple[QueueControl, bool]:
    """`convoy drain`: paused, and `convoy process` exits once nothing is in flight. A paused queue
    keeps its reason unless one is given; unchanged if it is draining already."""
    current = state(tx)
    if current.draining:
        return current, False
    reason = reason or (current.reason if current.paused else None) or DRAIN_REASON
    return _write(tx, QueueControl(paused=True, draining=True, reason=reason, by=by, since=now()),
                  models.QUEUE_DRAINING), True


def resume(tx: Transaction, *, by: str) -> tuple[QueueControl, bool]:
    """`convoy resume`: the queue takes new work again. Unchanged if it is not paused."""
    current = state(tx)
    if not current.paused:
        return current, False
    return _write(tx, QueueControl(by=by, since=now()), models.QUEUE_RESUMED, was=current), True


def _write(tx: Transaction, new: QueueControl, event: str, *, was: Optional[QueueControl] = None) -> QueueControl:
    tx.set_meta(CONTROL_KEY, json.dumps(asdict(new), sort_keys=True))
    data: dict[str, Any] = {"by": new.by, "reason": new.reason}
    if was is not None:  # a resume: what it ends
        data.update(was=was.word, paused_by=was.by, paused_reason=was.reason)
    tx.add_event(event, data=data)
    return new


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)
