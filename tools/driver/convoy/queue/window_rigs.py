"""The rigs a window counts: each pool's capacity, what the items at a gate need, what is free (a part of WindowQueue).

    rigs = RigCount(ctx, out)
    rigs.needs[id(item)] = {"rover-rigs": 2}     # a job at its rig stage's gate says what it needs
    rigs.capacity()                              # pools: of convoy.yaml, else the lab's healthy workers
    rigs.free(scheduler)                         # what Scheduler.plan may hand out now

The capacity is `pools:` of convoy.yaml; else the healthy workers of each
pool of the lab the rig stage runs on (asked at most every LAB_EVERY
seconds); else none known, and no pool is limited (UNLIMITED).
"""

from __future__ import annotations

import time
from typing import Callable

from convoy.queue import chain
from convoy.queue.phases import QueueContext

UNLIMITED = 1 << 30  # the free rigs of a pool convoy.yaml does not limit
LAB_EVERY = 30.0  # seconds between questions to the lab about its rigs


class RigCount:
    """The window's rigs (see the module docstring)."""

    def __init__(self, ctx: QueueContext, out: Callable[[str], None]) -> None:
        self.ctx = ctx
        self.out = out
        self.needs: dict[int, dict[str, int]] = {}  # id(item) -> the rigs its gated stage needs
        self._lab_rigs: dict[str, int] = {}  # the lab's healthy workers per pool, when pools: is not set
        self._lab_asked = float("-inf")
        self._lab_warned = False

    def needs_of(self, item: chain.Item, stage: int) -> dict[str, int]:
        """Scheduler's `needs`: what the item's gated stage needs (as its job reported)."""
        return dict(self.needs.get(id(item), {}))

    def capacity(self) -> dict[str, int]:
        """Rigs per pool (see the module docstring)."""
        if self.ctx.config.pools is not None:
            return dict(self.ctx.config.pools)
        stage = next((s for s in self.ctx.config.stages if s.check_pools), None)
        if stage is None or self.ctx.pool_check is None:
            return {}
        if time.monotonic() - self._lab_asked < LAB_EVERY:
            return dict(self._lab_rigs)
        self._lab_asked = time.monotonic()
        try:
            from convoy.lab import pools as lab_pools
            from convoy.lab.stage import lab_address
            from convoy.tasks import task_flags

            bots = lab_pools.bots(lab_address(task_flags(self.ctx.config, stage)))
        except Exception as e:  # no lab: the pool check before the stage says so; rigs are not counted
            if self._lab_rigs or not self._lab_warned:
                self.out(f"convoy: cannot ask the lab for its rigs ({' '.join(str(e).split())}); "
                         "set pools: in convoy.yaml to count them")
                self._lab_warned = True
            self._lab_rigs = {}
            return {}
        rigs: dict[str, int] = {}
        for bot in bots:
            if bot.healthy:
                rigs[bot.pool] = rigs.get(bot.pool, 0) + 1
        self._lab_rigs = rigs
        return dict(rigs)

    def free(self, scheduler: chain.Scheduler) -> dict[str, int]:
        """Each pool's rigs not held by an item of `scheduler`'s chain."""
        capacity = self.capacity()
        held = scheduler.rigs_held()
        wanted = {pool for needs in self.needs.values() for pool in needs}
        free = {pool: UNLIMITED for pool in wanted | set(held)}
        free.update({pool: n - held.get(pool, 0) for pool, n in capacity.items()})
        return free
