"""The rigs a candidate's rig stage needs: asked once at its gate, used again by the stage's pool check.

A window job (convoy.queue.jobs) waits at a gate before each stage. Before
a stage with `check_pools: true` it tells the scheduler how many rigs of
each pool the stage needs, one per task for each `convoy-pool=` tag its
tests carry in that configuration (convoy.lab.stage.needed_pools, one
`bazel query` in the output base that configuration's task will use, so
that what the query loads is the task's and no other configuration's
fetches are thrown away). On an `affected_only`
stage, a configuration where no test depends on a component the candidate
moved from its base (convoy.affected, the query its task makes too) runs
no test, so it needs no rig.

    pools = StagePools(ctx, lane)
    needs = pools.needs(spec, worktree, build_id)     # {"rover-rigs": 1, ...}
    RunContext(..., pool_check=pools.check)            # the stage's check: no second query

`check` is the stage's pool check (RunContext.pool_check): when the gate
has answered for every configuration the stage runs and the context's
check is the lab's (convoy.lab.stage.lab_pool_check), it asks the lab about
those pools without querying Bazel again; otherwise it calls the context's
check as it is.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, Optional, Sequence

from convoy import affected
from convoy.candidate import MANIFEST as CANDIDATE_MANIFEST
from convoy.config import Config, StageSpec
from convoy.errors import ConvoyError
from convoy.lab import pools as lab_pools
from convoy.lab.stage import lab_address, lab_pool_check, needed_pools
from convoy.manifest import load_manifest
from convoy.tasks import Slots, slot_output_base, task_flags

log = logging.getLogger("convoy.queue")


class StagePools:
    """One job's answers: stage name -> configuration -> the pools it needs."""

    def __init__(self, ctx, lane: int) -> None:
        self.ctx = ctx
        self.lane = lane
        self.known: dict[str, dict[str, set[str]]] = {}

    def needs(self, spec: StageSpec, worktree: Path, build_id: int) -> dict[str, int]:
        """Rigs per pool that the stage's unfinished tasks need (see the module docstring)."""
        ctx = self.ctx
        with ctx.store.read() as tx:
            build = tx.build(build_id)
            stage = next(s for s in tx.stages(build.id) if s.name == spec.name)
            configurations = [t.configuration for t in tx.tasks(stage_id=stage.id) if not t.state.is_final]
        slots = Slots(ctx.config.parallelism, _slot_order(worktree, configurations))

        def pools_of(configuration: str) -> Optional[set[str]]:
            # the output base its task will use: what it loads stays for the task
            output_base = slot_output_base(ctx.checkout, slots.preferred(configuration), lane=self.lane)
            try:
                if self._nothing_affected(spec, worktree, build, configuration, output_base):
                    return set()  # its task runs no test: it takes no rig
                return needed_pools(worktree, spec, configuration, ctx.config, output_base)
            except ConvoyError as e:
                log.warning("cannot tell the pools of %s in %s (%s); counting none", spec.name, configuration, e)
                return None

        # Each configuration asks its own output base (its own Bazel server): side by side.
        with ThreadPoolExecutor(max_workers=max(1, len(configurations)), thread_name_prefix="gate") as pool:
            found = dict(zip(configurations, pool.map(pools_of, configurations)))
        answers = {configuration: pools for configuration, pools in found.items() if pools is not None}
        self.known[spec.name] = answers
        needs: dict[str, int] = {}
        for pools in answers.values():
            for pool in pools:
                needs[pool] = needs.get(pool, 0) + 1
        return needs

    def _nothing_affected(self, spec: StageSpec, worktree: Path, build, configuration: str,
                          output_base: Path) -> bool:
        if not (spec.affected_only and spec.command == "test"):
            return False
        config = self.ctx.config
        changed = affected.changed_components(self.ctx.checkout, build, configuration)
        settings = affected.QuerySettings.of(config, output_base, task_flags(config, spec),
                                             timeout=min(spec.timeout, affected.QUERY_TIMEOUT))
        return affected.select_tests(worktree, spec, configuration, changed, settings,
                                     commit=build.candidate_commit).nothing_to_run

    def check(self, workspace: Path, stage: StageSpec, configurations: Sequence[str], config: Config,
              output_bases: Mapping[str, Path]) -> None:
        """The stage's pool check (RunContext.pool_check's signature)."""
        known: Optional[dict[str, set[str]]] = self.known.get(stage.name)
        if self.ctx.pool_check is lab_pool_check and known is not None and set(configurations) <= set(known):
            needed = set().union(*(known[c] for c in configurations))
            if needed:
                lab_pools.check_pools(sorted(needed), lab_address(task_flags(config, stage)))
            return
        if self.ctx.pool_check is not None:
            self.ctx.pool_check(workspace, stage, configurations, config, output_bases)


def _slot_order(worktree: Path, configurations: Sequence[str]) -> list[str]:
    """The configurations slots are given by (convoy.pipeline's BuildRunner: the candidate manifest's)."""
    try:
        return sorted(load_manifest(worktree / CANDIDATE_MANIFEST).configurations)
    except ConvoyError:
        return sorted(configurations)
