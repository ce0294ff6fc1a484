"""What a window's jobs report, and cancels and promotes: the request states they change (a part of WindowQueue).

    reports = JobReports(window)          # window.reports: the jobs call made, at_gate and job_ended
    finished = reports.handle_ended()     # in the window's loop: a request id that is final or re-queued
    reports.handle_cancels(); reports.reset(items)

A job reports its candidate (`made`), its arrival at a stage's gate with
the rigs it needs there (`at_gate`) and its end (`job_ended`); the window's
loop handles the ends in its own thread (`handle_ended`): a passed build
sends its requests to merging, a failed one marks its item failing (kept
in the chain record, with its rejection summary and suspects), an
infrastructure error re-queues its requests, a bug ends them in error.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Optional

from convoy import failpoints
from convoy.errors import StoreUnavailable
from convoy import requests
from convoy.models import Phase, RequestState
from convoy.queue import chain
from convoy.queue.jobs import Job, JobEnd

if TYPE_CHECKING:
    from convoy.queue.base import QueueManager  # the WindowQueue (not imported: no cycle)


class JobReports:
    """What the jobs of `window` (a WindowQueue) report, and what it does about them (see the module docstring)."""

    def __init__(self, window: "QueueManager") -> None:
        self.w = window

    def made(self, job: Job, base: str, commit: str) -> None:
        with self.w.cond:
            if self.w.jobs.get(id(job.item)) is job:
                job.item.made(base, commit)
            self.w.cond.notify_all()

    def at_gate(self, job: Job, index: int, needs: dict[str, int]) -> None:
        with self.w.cond:
            if self.w.jobs.get(id(job.item)) is job:
                job.item.passed_stages = index
                job.item.running = False
                job.item.rigs = {}
                self.w.rigs.needs[id(job.item)] = needs
            self.w.cond.notify_all()

    def job_ended(self, job: Job, end: JobEnd) -> None:
        with self.w.cond:
            self.w.ended.append((job, end))
            self.w.cond.notify_all()

    def handle_ended(self) -> Optional[int]:
        with self.w.cond:
            ended, self.w.ended = self.w.ended, []
        finished = None
        for job, end in ended:
            done = self._ended(job, end)
            finished = finished if finished is not None else done
        return finished

    def _ended(self, job: Job, end: JobEnd) -> Optional[int]:
        item = job.item
        with self.w.cond:
            current = self.w.jobs.get(id(item)) is job
            if current:
                del self.w.jobs[id(item)]
                item.rigs = {}
        if not current or end.result == "discarded":
            job.end_build_discarded(end)
            return None
        if end.result == "succeeded":
            with self.w.ctx.store.transaction() as tx:
                for rid in item.requests:
                    requests.passed_with(tx, tx.request(rid), tx.build(end.build_id), lead=rid == item.requests[0])
            with self.w.cond:
                item.passed_stages, item.running = len(self.w.scheduler.stages), False
            failpoints.hit("after_build")
        elif end.result in ("failed", "made_failed"):
            failure = {"build_id": end.build_id, "stage": end.stage, "stage_index": end.stage_index,
                       "summary": end.reason, "failures": list(end.failures), "suspects": end.suspects,
                       "how": end.how}
            with self.w.ctx.store.transaction() as tx, self.w.cond:
                self.w.failures[id(item)] = failure
                if end.result == "made_failed":  # no candidate: it fails where it stands, on its base
                    item.made(job.base, f"unmade:{job.base}")
                item.failed(chain.Failure(end.stage_index, suspects=end.suspects, how=end.how))
                self.w.record.save(tx)
        elif end.result == "infra":
            return self.infrastructure(item, end.reason)
        elif end.result == "bug":
            return self.bug(item, end)
        elif end.result == "stopped":
            pass
        elif end.result == "store":  # the store went away under the job: nothing of it is recorded
            raise StoreUnavailable(end.reason)
        with self.w.cond:
            self.w.cond.notify_all()
        return None

    def infrastructure(self, item: chain.Item, reason: str) -> int:
        """Not the candidate's fault: its requests go back to the queue (or end in error)."""
        self.w.out(f"{time.strftime('%H:%M:%S')} {_ids(item.requests)}: infrastructure error ({reason}); re-queued")
        with self.w.ctx.store.transaction() as tx:
            for rid in item.requests:
                request = tx.request(rid)
                if request.state == RequestState.TESTING:
                    requests.infrastructure_error(tx, request, reason, limit=self.w.ctx.config.infra_retries)
            with self.w.cond:
                if item in self.w.scheduler.chain:
                    self.w.scheduler.chain.remove(item)
                self.w.record.save(tx)
        self.w.stop.wait(min(self.w.ctx.config.poll_interval, 2.0))
        return item.requests[0]

    def unfetched(self, error: Exception) -> int:
        """The branch's tip could not be fetched: the first item to be built on it has an
        infrastructure error (its requests re-queued); with none, `error` stops the loop."""
        with self.w.cond:
            item = next((i for i in self.w.scheduler.chain if i.candidate is None and i.failure is None), None)
        if item is None:
            raise error
        return self.infrastructure(item, " ".join(str(error).split()) or type(error).__name__)

    def bug(self, item: chain.Item, end: JobEnd) -> int:
        with self.w.cond:
            if item in self.w.scheduler.chain:
                self.w.scheduler.chain.remove(item)
        for rid in item.requests:
            self.w._internal_error(rid, end.error)
        with self.w.ctx.store.transaction() as tx:
            self.w.record.save(tx)
        return item.requests[0]

    def handle_cancels(self) -> None:
        with self.w.ctx.store.read() as tx:
            wanted = [r for r in tx.requests([RequestState.TESTING])
                      if r.cancel_requested and r.phase in (None, Phase.CANDIDATE, Phase.BUILDING)]
        for request in wanted:
            with self.w.cond:
                item = self.w.scheduler.item_of(request.id)
                if item is None:
                    continue
                job = self.w.jobs.pop(id(item), None)
                self.w.scheduler.drop(request.id)
            if job is not None:
                self.w.retire(job, f"request #{request.id} was cancelled")
            with self.w.ctx.store.transaction() as tx:
                requests.end_running_builds(tx, tx.request(item.requests[0]), reason="cancelled")
                requests.cancelled(tx, tx.request(request.id))
                with self.w.cond:
                    self.w.record.save(tx)
            self.w.out(f"{time.strftime('%H:%M:%S')} #{request.id} cancelled; what was behind it is built again")

    def reset(self, items: list[chain.Item]) -> None:
        """Cancels the builds of the items a promoted request went ahead of (Scheduler.promote reset them)."""
        for item in items:
            with self.w.cond:
                job = self.w.jobs.pop(id(item), None)
                item.rigs = {}
                self.w.failures.pop(id(item), None)
            if job is not None:
                self.w.retire(job, "a promoted request went ahead of it: built again on it")
            with self.w.ctx.store.transaction() as tx:  # one that had passed is not merged: it is made again
                for rid in item.requests:
                    request = tx.request(rid)
                    if request.state == RequestState.TESTING and request.phase == Phase.MERGING:
                        requests.remake_candidate(tx, request)
        if items:
            self.w.out(f"{time.strftime('%H:%M:%S')} promoted ahead of {', '.join(_ids(i.requests) for i in items)}; "
                       "they are built again on it")


class WindowLine:
    """The window's progress line (`window 2/4: #7 hardware | #8 build (waiting)`), printed when it changes;
    none in a mode without a window (serial: its `processing` line says it all)."""

    def __init__(self, window: "QueueManager") -> None:
        self.w = window
        self._shown = ""

    def full(self) -> bool:
        """Whether the window is full, each item with a candidate and a stage running."""
        with self.w.cond:
            items = self.w.scheduler.chain
            return (len(items) >= max(2, self.w.scheduler.window)
                    and all(i.candidate is not None and i.running and id(i) in self.w.jobs for i in items))

    def show(self) -> None:
        with self.w.cond:
            parts = []
            for item in self.w.scheduler.chain:
                if item.failure is not None:
                    where = "failing"
                elif item.candidate is None:
                    where = "candidate"
                elif item.passed(len(self.w.scheduler.stages)):
                    where = "passed"
                else:
                    where = self.w.scheduler.stages[min(item.passed_stages, len(self.w.scheduler.stages) - 1)].name
                    where += "" if item.running else " (waiting)"
                parts.append(f"{_ids(item.requests)} {where}")
            line = " | ".join(parts)
            window, in_flight = self.w.scheduler.window, self.w.scheduler.in_flight()
        if line and line != self._shown and self.w.windowed:
            self._shown = line
            with self.w._print_lock:  # not inside an event's line
                self.w.out(f"{time.strftime('%H:%M:%S')} window {in_flight}/{window}: {line}")


def _ids(requests_: tuple[int, ...]) -> str:
    return "+".join(f"#{r}" for r in requests_)
