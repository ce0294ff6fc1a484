"""The scheduling of one queue: which request is tested next, on which base, and how it moves on.

    from convoy.queue import QueueContext, open_queue

    queue = open_queue(QueueContext(checkout, config, store))   # the mode convoy.yaml's queue.mode names

| module | what it holds |
| --- | --- |
| `base.py` | `QueueManager`: the loop every mode shares (claim, resume, step, errors) |
| `phases.py` | `Steps`: candidate, build, merge and tag of one request; `QueueContext` |
| `serial.py` | `SerialQueue`: one at a time, oldest first, on the branch tip |
| `chain.py` | `Scheduler`: the window's decisions (speculative, batch; also what `convoy simulate` runs) |
| `window.py` | `WindowQueue`: the speculative and batch modes, carrying out the scheduler's decisions |
| `jobs.py` | `Job`: one candidate's build in its own lane and thread; the slots the lanes share |
| `lock.py` | `ProcessLock` (one driver per checkout) and the store's `Lease` |
| `tries.py` | `TryRunner`: the tries (`convoy try`) in what the queue leaves free, yielding to any request |

A mode is a `QueueManager` subclass registered in `MODES`; nothing outside this package knows which
mode runs. convoy.yaml's `queue.mode` is checked against the same names.
"""

from __future__ import annotations

from typing import Optional

from convoy.errors import ConvoyError
from convoy.queue.base import QueueManager
from convoy.queue.lock import ProcessLock
from convoy.queue.phases import QueueContext, StuckError
from convoy.queue.serial import SerialQueue
from convoy.queue.window import WindowQueue

MODES: dict[str, type[QueueManager]] = {"serial": SerialQueue, "speculative": WindowQueue, "batch": WindowQueue}

__all__ = ["MODES", "ProcessLock", "QueueContext", "QueueManager", "StuckError", "open_queue"]


def open_queue(ctx: QueueContext, *, plugins: Optional[list] = None) -> QueueManager:
    """The queue of `ctx.config.queue_mode`."""
    mode = ctx.config.queue_mode
    try:
        manager = MODES[mode]
    except KeyError:
        raise ConvoyError(
            f"queue mode '{mode}' is not implemented (known: {', '.join(sorted(MODES))}); "
            "set queue.mode: serial in convoy.yaml"
        ) from None
    return manager(ctx, plugins=plugins)
