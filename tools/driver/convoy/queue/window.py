"""The speculative and batch modes: a window of candidates in flight, decided by convoy.queue.chain.

    queue.mode: speculative     # request 2 is tested as main + 1 + 2, while 1 is
    queue.mode: batch           # up to batch_size requests in one candidate; a failed one is split

`WindowQueue` is the executor of `Scheduler` (convoy.queue.chain, the same
class `convoy simulate` runs): each `step()` takes queued requests into the
chain as the window allows, asks the scheduler what to do, and does it:

| decision | what happens |
| --- | --- |
| Build | a `Job` (convoy.queue.jobs) makes the item's candidate on its base in a lane of its own and runs its build; a job whose base went stale is cancelled |
| Enter | the job waiting at a stage's gate goes in (a rig-pool stage: the item's rigs are counted) |
| Merge | the head's candidate is pushed (exactly the tested commit) and tagged, through `Steps.merge` and `Steps.tag` |
| Reject | every request of an item known to fail on the tip is rejected |
| Split | a failed batch becomes its parts (suspects first, or halves) |

What the jobs report is `JobReports` (window_reports.py); the chain in the
store is `ChainRecord` (window_record.py). The chain (its items, their
splits and their failures) is kept in the store's meta table (`queue.chain`), written in the same transaction as the
request states it goes with, so that a killed `convoy process` resumes it:
a request past its build (merging, pushed) is merged and tagged first;
an item whose build was under way resumes it (finished tasks kept); an item
that failed keeps its failure; anything else is built again.

While the queue is paused or draining (convoy.control) nothing enters the
window; what is in it runs on. A queued request of a higher priority than
an item not past its build (`convoy promote`) goes ahead of it
(`Scheduler.promote`); the builds of the items behind it are cancelled,
and those items are built again on it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from convoy import candidate as cand
from convoy import control
from convoy import failpoints
from convoy import gitutil
from convoy import requests
from convoy.errors import ConvoyError, InfraError
from convoy.models import Phase, Request, RequestState
from convoy.queue import chain
from convoy.queue.base import QueueManager
from convoy.queue.jobs import Job, JobEnd, SharedSlots
from convoy.queue.phases import QueueContext, StuckError
from convoy.queue.window_record import ChainRecord
from convoy.queue.window_reports import JobReports, _ids
from convoy.store import Transaction

log = logging.getLogger("convoy.queue.window")

class WindowQueue(JobReports, ChainRecord, QueueManager):
    """The speculative and batch modes (see the module docstring)."""

    mode = "window"

    def __init__(self, ctx: QueueContext, *, plugins: Optional[list] = None) -> None:
        super().__init__(ctx, plugins=plugins)
        config = ctx.config
        self.policy = chain.Policy.of(config.queue_mode, window=config.queue_window,
                                      window_floor=config.queue_window_floor, batch_size=config.queue_batch_size,
                                      max_bisect=config.queue_max_bisect)
        stages = [chain.StageSpec(s.name, s.name if s.check_pools else None) for s in config.plan_stages]
        self.scheduler = chain.Scheduler(self.policy, stages, needs=self._needs)
        self.cond = threading.Condition()
        self.jobs: dict[int, Job] = {}  # id(item) -> its live job
        self.retired: list[Job] = []  # discarded jobs (their lanes are taken until they end)
        self.needs: dict[int, dict[str, int]] = {}  # id(item) -> the rigs its gated stage needs
        self.failures: dict[int, dict] = {}  # id(item) -> its failure, as the chain keeps it
        self.ended: list[tuple[Job, JobEnd]] = []
        self.slots = SharedSlots(config.parallelism)
        self.tip: Optional[str] = None
        self.loaded = False
        self._merge_failures = 0
        self._lab_rigs: dict[str, int] = {}  # the lab's healthy workers per pool, when pools: is not set
        self._lab_asked = float("-inf")
        self._lab_warned = False
        self._shown = ""

    # -- QueueManager's hooks (the window does not take one request at a time) ------------------

    def next_request(self, tx: Transaction) -> Optional[Request]:
        queued = requests.in_queue_order(tx)
        return queued[0] if queued else None

    def base_for(self, request: Request) -> str:
        return self._fetch_tip()

    # -- the loop --------------------------------------------------------------------------------

    def step(self) -> Optional[int]:
        """Runs the window until a request is final or re-queued (its id), or
        until nothing is queued or in flight (None)."""
        if not self.loaded:
            self._load()
        while not self.stop.is_set():
            finished = self._tick()
            if finished is not None:
                return finished
            with self.cond:
                if not self.scheduler.chain and not self.jobs and not self.ended and not self._queued():
                    return None
                self.cond.wait(0.5)
        return None

    def idle(self) -> bool:
        """No job runs, not even a discarded one still stopping (a try takes lane 0)."""
        with self.cond:
            return not self.jobs and not any(job.thread.is_alive() for job in self.retired)

    def finish(self, flush_timeout: float = 30.0) -> None:
        self.stop.set()  # the jobs' builds stop where they are; the next process resumes them
        for job in list(self.jobs.values()) + self.retired:
            job.join(60)
        super().finish(flush_timeout)

    def _queued(self) -> bool:
        """Whether a queued request waits to enter (never while the queue is paused)."""
        with self.ctx.store.read() as tx:
            return not control.state(tx).paused and bool(tx.requests([RequestState.QUEUED]))

    def _tick(self) -> Optional[int]:
        finished = self._handle_ended()
        if finished is not None:
            return finished
        self._handle_cancels()
        reset: list[chain.Item] = []
        with self.ctx.store.transaction() as tx:
            if not control.state(tx).paused:  # nothing new enters while paused (convoy pause, drain)
                queued = requests.in_queue_order(tx)
                ids = [r.id for r in queued]
                priority = {r.id: r.priority for r in [*queued, *tx.requests([RequestState.TESTING])]}
                with self.cond:
                    new, reset = self.scheduler.promote(ids, priority)
                    new += self.scheduler.take(ids, priority)
                for item in new:
                    for rid in item.requests:
                        requests.start(tx, tx.request(rid))
                if new:
                    self._save(tx)
        self._reset(reset)
        with self.cond:
            actions = self.scheduler.plan(self.tip or self._fetch_tip(), self._free())
        if self._full():
            failpoints.hit("window_full")
        finished = None
        for action in actions:
            finished = self._apply(action)
            if isinstance(action, chain.RESHAPING):
                break  # the rest of the plan assumed the chain as it was: plan again
        self._show_window()
        return finished

    # -- carrying out the decisions --------------------------------------------------------------

    def _apply(self, action) -> Optional[int]:
        if isinstance(action, chain.Build):
            self._build(action.item, action.base)
        elif isinstance(action, chain.Enter):
            with self.cond:
                action.item.running = True
                action.item.rigs = dict(action.rigs)
                job = self.jobs.get(id(action.item))
            if job is not None:
                job.gate.admit(action.stage)
        elif isinstance(action, chain.Merge):
            return self._merge(action.item)
        elif isinstance(action, chain.Reject):
            return self._reject(action.item)
        elif isinstance(action, chain.Split):
            self._split(action)
        return None

    def _build(self, item: chain.Item, base: str, *, resume=None) -> None:
        with self.cond:
            old = self.jobs.pop(id(item), None)
            item.rigs = {}
            self.failures.pop(id(item), None)
            if resume is None:
                item.making(base)
        if old is not None:
            self._retire(old, f"rebuilt on {base[:10]}: what it was built on changed")
        job = Job(self, item, base, lane=self._free_lane(), resume=resume)
        with self.cond:
            self.jobs[id(item)] = job
        job.start()

    def _retire(self, job: Job, reason: str) -> None:
        """Cancels a job whose build is not wanted any more; its lane stays
        taken until its thread ends (its Bazel runs stop within seconds)."""
        job.discard(reason)
        with self.cond:
            self.retired = [j for j in self.retired if j.thread.is_alive()] + [job]

    def _free_lane(self) -> int:
        with self.cond:
            used = {job.lane for job in self.jobs.values()}
            used |= {job.lane for job in self.retired if job.thread.is_alive()}
        lane = 0
        while lane in used:
            lane += 1
        return lane

    def _merge(self, item: chain.Item) -> Optional[int]:
        lead, members = self._requests_of(item)
        try:
            if lead.phase == Phase.MERGING:
                self.steps.merge(lead, members=members)
            lead, members = self._requests_of(item)
            if lead.phase == Phase.PUSHED:
                self.steps.tag(lead, members=members)
        except (InfraError, gitutil.GitError, ConvoyError) as e:
            self._merge_failures += 1
            reason = " ".join(str(e).split()) or type(e).__name__
            if self._merge_failures > self.ctx.config.infra_retries:
                raise StuckError(f"request #{lead.id} passed its build but its merge keeps failing ({reason}); it "
                                 "stays at that step: fix the remote, then run: convoy process") from None
            self.out(f"convoy: #{lead.id} merge failed ({reason}); retrying")
            self.stop.wait(min(self.ctx.config.poll_interval, 2.0) * self._merge_failures)
            return None
        self._merge_failures = 0
        lead, _ = self._requests_of(item)
        if lead.state == RequestState.MERGED:
            with self.ctx.store.transaction() as tx, self.cond:
                self.scheduler.merged(item)
                self.tip = lead.candidate_commit
                self._save(tx)
            return lead.id
        with self.cond:  # the branch moved under it: everything is built again on the new tip
            self.tip = self._fetch_tip()
            item.unmade()
        return None

    def _reject(self, item: chain.Item) -> int:
        failure = self.failures.get(id(item), {})
        how = item.how
        summary = failure.get("summary") or "its candidate failed"
        if how:
            summary += f" (found by {how})"
        with self.ctx.store.transaction() as tx:
            build = tx.build(failure["build_id"]) if failure.get("build_id") else None
            for rid in item.requests:
                request = tx.request(rid)
                if request.state != RequestState.TESTING:
                    continue
                requests.reject(tx, request, stage=failure.get("stage"), build=build,
                                failures=failure.get("failures", ()), summary=summary,
                                logs=self.ctx.logs(request))
            with self.cond:
                self.scheduler.rejected(item)
                self.failures.pop(id(item), None)
                self._save(tx)
        return item.requests[0]

    def _split(self, action: chain.Split) -> None:
        with self._print_lock:
            self.out(f"{time.strftime('%H:%M:%S')} batch {_ids(action.item.requests)} failed on the tip; split: "
                     f"{action.how}")
        with self.ctx.store.transaction() as tx, self.cond:
            self.failures.pop(id(action.item), None)
            self.scheduler.split(action.item, action.parts)
            self._save(tx)

    # -- helpers ----------------------------------------------------------------------------------------

    def _requests_of(self, item: chain.Item) -> tuple[Request, list[Request]]:
        with self.ctx.store.read() as tx:
            found = [tx.request(rid) for rid in item.requests]
        return found[0], found[1:]

    def _fetch_tip(self) -> str:
        config = self.ctx.config
        self.tip = cand.fetch_branch(self.ctx.checkout, config.remote, config.branch)
        return self.tip

