"""Steering the whole queue, recorded as events (`by`, `reason`): `pause`
(nothing new starts), `drain` (what is in flight finishes, nothing new
starts), `resume`; `hold` is what pause and drain share. Each returns the
line the command prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from convoy import control
from convoy.actions import checkout


def pause(root: Path, *, by: Optional[str] = None, reason: Optional[str] = None) -> str:
    """Pauses the queue of the checkout `root` (`by`: default the OS user);
    returns what happened, in one line. ConvoyError for a bad --by or --reason."""
    held, changed = hold(root, control.pause, by=by, reason=reason)
    if not changed:
        return f"{held.line()} already; nothing changed (to go on: convoy resume)"
    return f"{held.line()}; what is in flight finishes, nothing new starts until: convoy resume"


def hold(root: Path, change: Callable[..., tuple[control.QueueControl, bool]], *, by: Optional[str],
         reason: Optional[str]) -> tuple[control.QueueControl, bool]:
    """`change` (control.pause or control.drain) of the queue of `root`, by
    `by` (default the OS user), for `reason`, in one transaction: the state
    and whether it changed. ConvoyError for a bad --by or --reason."""
    control.check_text("by", by)
    control.check_text("reason", reason)
    with checkout.store(root, create=True) as store, store.transaction() as tx:
        return change(tx, by=control.actor(by), reason=reason)


def drain(root: Path, *, by: Optional[str] = None, reason: Optional[str] = None) -> str:
    """Drains the queue of the checkout `root` (`by`: default the OS user);
    returns what happened, in one line. ConvoyError for a bad --by or --reason."""
    held, changed = hold(root, control.drain, by=by, reason=reason)
    if not changed:
        return f"{held.line()} already; nothing changed"
    return (f"{held.line()}; convoy process finishes what is in flight, then exits; nothing new starts until: "
            "convoy resume")


def resume(root: Path, *, by: Optional[str] = None) -> str:
    """Resumes the queue of the checkout `root` (`by`: default the OS user);
    returns what happened, in one line. ConvoyError for a bad --by."""
    control.check_text("by", by)
    if not checkout.has_store(root):
        return "the queue is not paused; nothing to resume"
    with checkout.store(root) as store, store.transaction() as tx:
        was = control.state(tx)
        _, changed = control.resume(tx, by=control.actor(by))
    if not changed:
        return "the queue is not paused; nothing to resume"
    return f"the queue is running again (it was {was.word} by {was.by or 'unknown'}); run: convoy process"
