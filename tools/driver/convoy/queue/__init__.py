"""The scheduling of one queue: which request is tested next, on which base, and how it moves on.

    from convoy.queue import QueueContext, open_queue

    queue = open_queue(QueueContext(checkout, config, store))   # the mode convoy.yaml's queue.mode names

| module | what it holds |
| --- | --- |
| `base.py` | `QueueManager`: what every queue shares (lease, progress lines, resume, tries, a bug's request) |
| `phases.py` | `Steps`: candidate, build, merge and tag of one request; `QueueContext` |
| `chain.py` | `Scheduler`, `Policy`: the window's decisions (every mode; also what `convoy simulate` runs) |
| `window.py` | `WindowQueue`: every mode, carrying out the scheduler's decisions |
| `window_reports.py` | `JobReports`: what the jobs report, cancels, promotes (held by `WindowQueue`) |
| `window_outcomes.py` | `Outcomes`: merge, reject, split (held by `WindowQueue`) |
| `window_record.py` | `ChainRecord`: the chain in the store, resumed by the next process (held by `WindowQueue`) |
| `window_rigs.py` | `RigCount`: each pool's rigs, what is needed and free (held by `WindowQueue`) |
| `jobs.py` | `Job`: one candidate's build in its own lane and thread; the slots the lanes share |
| `rigs.py` | `StagePools`: the rigs a candidate's rig stage needs, asked once at its gate |
| `lock.py` | `ProcessLock` (one driver per checkout) and the store's `Lease` |
| `tries.py` | `TryRunner`: the tries (`convoy try`) in what the queue leaves free, yielding to any request |

A mode is a class of convoy.modes (its name, capabilities and `chain.Policy`
numbers); every mode runs as a policy of the one scheduler in `WindowQueue`,
so the serial mode (window 1, batch 1, never preempted) is the code
`convoy simulate` measures. convoy.yaml's `queue.mode` is checked against
the same registry.
"""

from __future__ import annotations

from typing import Optional

from convoy import modes
from convoy.errors import ConvoyError
from convoy.queue.base import QueueManager
from convoy.queue.lock import ProcessLock
from convoy.queue.phases import QueueContext, StuckError
from convoy.queue.window import WindowQueue

MODES = modes.MODES  # name -> convoy.modes.Mode: each runs in WindowQueue

__all__ = ["MODES", "ProcessLock", "QueueContext", "QueueManager", "StuckError", "WindowQueue", "open_queue"]


def open_queue(ctx: QueueContext, *, plugins: Optional[list] = None) -> QueueManager:
    """The queue of `ctx.config.queue_mode`: the one scheduler with that mode's policy."""
    mode = ctx.config.queue_mode
    if mode not in MODES:
        raise ConvoyError(f"queue mode '{mode}' is not implemented (known: {', '.join(MODES)}); "
                          f"set queue.mode: {modes.DEFAULT} in convoy.yaml")
    return WindowQueue(ctx, plugins=plugins)
