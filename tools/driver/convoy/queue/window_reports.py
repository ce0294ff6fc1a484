"""What a window's jobs report, and cancels and promotes: the request states they change (a mixin of WindowQueue).

A job reports its candidate (`made`), its arrival at a stage's gate with
the rigs it needs there (`at_gate`) and its end (`job_ended`); the window's
loop handles the ends in its own thread (`_handle_ended`): a passed build
sends its requests to merging, a failed one marks its item failing (kept
in the chain record, with its rejection summary and suspects), an
infrastructure error re-queues its requests, a bug ends them in error.
"""

from __future__ import annotations

import time
from typing import Optional

from convoy import failpoints
from convoy import requests
from convoy.models import Phase, RequestState
from convoy.queue import chain
from convoy.queue.jobs import Job, JobEnd

UNLIMITED = 1 << 30  # the free rigs of a pool convoy.yaml does not limit
LAB_EVERY = 30.0  # seconds between questions to the lab about its rigs


class JobReports:
    """The job-facing half of WindowQueue (see the module docstring)."""

    def made(self, job: Job, base: str, commit: str) -> None:
        with self.cond:
            if self.jobs.get(id(job.item)) is job:
                job.item.made(base, commit)
            self.cond.notify_all()

    def at_gate(self, job: Job, index: int, needs: dict[str, int]) -> None:
        with self.cond:
            if self.jobs.get(id(job.item)) is job:
                job.item.passed_stages = index
                job.item.running = False
                job.item.rigs = {}
                self.needs[id(job.item)] = needs
            self.cond.notify_all()

    def job_ended(self, job: Job, end: JobEnd) -> None:
        with self.cond:
            self.ended.append((job, end))
            self.cond.notify_all()

    def _handle_ended(self) -> Optional[int]:
        with self.cond:
            ended, self.ended = self.ended, []
        finished = None
        for job, end in ended:
            done = self._ended(job, end)
            finished = finished if finished is not None else done
        return finished

    def _ended(self, job: Job, end: JobEnd) -> Optional[int]:
        item = job.item
        with self.cond:
            current = self.jobs.get(id(item)) is job
            if current:
                del self.jobs[id(item)]
                item.rigs = {}
        if not current or end.result == "discarded":
            job.end_build_discarded(end)
            return None
        if end.result == "succeeded":
            with self.ctx.store.transaction() as tx:
                for rid in item.requests:
                    requests.passed_with(tx, tx.request(rid), tx.build(end.build_id), lead=rid == item.requests[0])
            with self.cond:
                item.passed_stages, item.running = len(self.scheduler.stages), False
            failpoints.hit("after_build")
        elif end.result in ("failed", "made_failed"):
            failure = {"build_id": end.build_id, "stage": end.stage, "stage_index": end.stage_index,
                       "summary": end.reason, "failures": list(end.failures), "suspects": end.suspects,
                       "how": end.how}
            with self.ctx.store.transaction() as tx, self.cond:
                self.failures[id(item)] = failure
                if end.result == "made_failed":  # no candidate: it fails where it stands, on its base
                    item.made(job.base, f"unmade:{job.base}")
                item.failed(chain.Failure(end.stage_index, suspects=end.suspects, how=end.how))
                self._save(tx)
        elif end.result == "infra":
            return self._infrastructure(item, end.reason)
        elif end.result == "bug":
            return self._bug(item, end)
        elif end.result == "stopped":
            pass
        with self.cond:
            self.cond.notify_all()
        return None

    def _infrastructure(self, item: chain.Item, reason: str) -> int:
        """Not the candidate's fault: its requests go back to the queue (or end in error)."""
        self.out(f"{time.strftime('%H:%M:%S')} {_ids(item.requests)}: infrastructure error ({reason}); re-queued")
        with self.ctx.store.transaction() as tx:
            for rid in item.requests:
                request = tx.request(rid)
                if request.state == RequestState.TESTING:
                    requests.infrastructure_error(tx, request, reason, limit=self.ctx.config.infra_retries)
            with self.cond:
                if item in self.scheduler.chain:
                    self.scheduler.chain.remove(item)
                self._save(tx)
        self.stop.wait(min(self.ctx.config.poll_interval, 2.0))
        return item.requests[0]

    def _bug(self, item: chain.Item, end: JobEnd) -> int:
        with self.cond:
            if item in self.scheduler.chain:
                self.scheduler.chain.remove(item)
        for rid in item.requests:
            self._internal_error(rid, end.error)
        with self.ctx.store.transaction() as tx:
            self._save(tx)
        return item.requests[0]

    def _handle_cancels(self) -> None:
        with self.ctx.store.read() as tx:
            wanted = [r for r in tx.requests([RequestState.TESTING])
                      if r.cancel_requested and r.phase in (None, Phase.CANDIDATE, Phase.BUILDING)]
        for request in wanted:
            with self.cond:
                item = self.scheduler.item_of(request.id)
                if item is None:
                    continue
                job = self.jobs.pop(id(item), None)
                self.scheduler.drop(request.id)
            if job is not None:
                self._retire(job, f"request #{request.id} was cancelled")
            with self.ctx.store.transaction() as tx:
                requests.end_running_builds(tx, tx.request(item.requests[0]), reason="cancelled")
                requests.cancelled(tx, tx.request(request.id))
                with self.cond:
                    self._save(tx)
            self.out(f"{time.strftime('%H:%M:%S')} #{request.id} cancelled; what was behind it is built again")

    def _reset(self, items: list[chain.Item]) -> None:
        """Cancels the builds of the items a promoted request went ahead of (Scheduler.promote reset them)."""
        for item in items:
            with self.cond:
                job = self.jobs.pop(id(item), None)
                item.rigs = {}
                self.failures.pop(id(item), None)
            if job is not None:
                self._retire(job, "a promoted request went ahead of it: built again on it")
            with self.ctx.store.transaction() as tx:  # one that had passed is not merged: it is made again
                for rid in item.requests:
                    request = tx.request(rid)
                    if request.state == RequestState.TESTING and request.phase == Phase.MERGING:
                        requests.remake_candidate(tx, request)
        if items:
            self.out(f"{time.strftime('%H:%M:%S')} promoted ahead of {', '.join(_ids(i.requests) for i in items)}; "
                     "they are built again on it")

    def _full(self) -> bool:
        """Whether the window is full, each item with a candidate and a stage running."""
        with self.cond:
            items = self.scheduler.chain
            return (len(items) >= max(2, self.scheduler.window)
                    and all(i.candidate is not None and i.running and id(i) in self.jobs for i in items))

    # -- rigs -----------------------------------------------------------------------------------------

    def _needs(self, item: chain.Item, stage: int) -> dict[str, int]:
        return dict(self.needs.get(id(item), {}))

    def capacity(self) -> dict[str, int]:
        """Rigs per pool: `pools:` of convoy.yaml; else the healthy workers of
        each pool of the lab the rig stage runs on (asked at most every
        LAB_EVERY seconds); else none known (no pool is limited)."""
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

    def _free(self) -> dict[str, int]:
        capacity = self.capacity()
        held = self.scheduler.rigs_held()
        wanted = {pool for needs in self.needs.values() for pool in needs}
        free = {pool: UNLIMITED for pool in wanted | set(held)}
        free.update({pool: n - held.get(pool, 0) for pool, n in capacity.items()})
        return free

    def position(self, item: chain.Item) -> int:
        with self.cond:
            return self.scheduler.chain.index(item) if item in self.scheduler.chain else len(self.scheduler.chain)

    def _show_window(self) -> None:
        with self.cond:
            parts = []
            for item in self.scheduler.chain:
                if item.failure is not None:
                    where = "failing"
                elif item.candidate is None:
                    where = "candidate"
                elif item.passed(len(self.scheduler.stages)):
                    where = "passed"
                else:
                    where = self.scheduler.stages[min(item.passed_stages, len(self.scheduler.stages) - 1)].name
                    where += "" if item.running else " (waiting)"
                parts.append(f"{_ids(item.requests)} {where}")
            line = " | ".join(parts)
            window, in_flight = self.scheduler.window, self.scheduler.in_flight()
        if line and line != self._shown:
            self._shown = line
            with self._print_lock:  # not inside an event's line
                self.out(f"{time.strftime('%H:%M:%S')} window {in_flight}/{window}: {line}")



def _ids(requests_: tuple[int, ...]) -> str:
    return "+".join(f"#{r}" for r in requests_)

