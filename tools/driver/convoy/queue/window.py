"""Every queue mode: a window of candidates in flight, decided by convoy.queue.chain.

    queue.mode: serial          # a window of one: one candidate at a time, on the branch tip, never preempted
    queue.mode: speculative     # request 2 is tested as main + 1 + 2, while 1 is
    queue.mode: batch           # up to batch_size requests in one candidate; a failed one is split

`WindowQueue` is the executor of `Scheduler` (convoy.queue.chain, the same
class `convoy simulate` runs) with the policy of convoy.yaml's mode
(convoy.modes: `Mode.numbers`; serial is window 1, batch 1, no
preemption): each `step()` takes queued requests into the chain as the
window allows, asks the scheduler what to do, and does it:

| decision | what happens |
| --- | --- |
| Build | a `Job` (convoy.queue.jobs) makes the item's candidate on its base in a lane of its own and runs its build; a job whose base went stale is cancelled |
| Enter | the job waiting at a stage's gate goes in (a rig-pool stage: the item's rigs are counted) |
| Merge | the head's candidate is pushed (exactly the tested commit) and tagged, through `Steps.merge` and `Steps.tag` |
| Reject | every request of an item known to fail on the tip is rejected |
| Split | a failed batch becomes its parts (suspects first, or halves) |

Its parts are objects it holds: what the jobs report, cancels and promotes
are `reports` (`JobReports`, window_reports.py), the chain in the store is
`record` (`ChainRecord`, window_record.py), the rigs are `rigs`
(`RigCount`, window_rigs.py), merges, rejections and splits are `outcomes`
(`Outcomes`, window_outcomes.py). The chain (its items, their
splits and their failures) is kept in the store's meta table (`queue.chain`), written in the same transaction as the
request states it goes with, so that a killed `convoy process` resumes it:
a request past its build (merging, pushed) is merged and tagged first;
an item whose build was under way resumes it (finished tasks kept); an item
that failed keeps its failure; anything else is built again.

While the queue is paused or draining (convoy.control) nothing enters the
window; what is in it runs on. A queued request of a higher priority than
an item not past its build (`convoy promote`) goes ahead of it
(`Scheduler.promote`) in a mode that preempts; the builds of the items
behind it are cancelled, and those items are built again on it. In the
serial mode it is only taken next.
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
from convoy import modes
from convoy import requests
from convoy.errors import ConvoyError, InfraError
from convoy.models import Request, RequestState
from convoy.queue import chain
from convoy.queue.base import QueueManager
from convoy.queue.jobs import Job, JobEnd, SharedSlots, free_lane
from convoy.queue.phases import QueueContext
from convoy.queue.window_outcomes import Outcomes
from convoy.queue.window_record import ChainRecord
from convoy.queue.window_reports import JobReports, WindowLine
from convoy.queue.window_rigs import RigCount
from convoy.store import Transaction

log = logging.getLogger("convoy.queue.window")


class WindowQueue(QueueManager):
    """Every queue mode, as a policy of the one scheduler (see the module docstring)."""

    def __init__(self, ctx: QueueContext, *, plugins: Optional[list] = None) -> None:
        super().__init__(ctx, plugins=plugins)
        config = ctx.config
        spec = modes.get(config.queue_mode)
        self.mode, self.windowed = spec.name, spec.has_window
        self.policy = chain.Policy.of(self.mode, window=config.queue_window, window_floor=config.queue_window_floor,
                                      batch_size=config.queue_batch_size, max_bisect=config.queue_max_bisect)
        self.rigs = RigCount(ctx, self.out)
        stages = [chain.StageSpec(s.name, s.name if s.check_pools else None) for s in config.plan_stages]
        self.scheduler = chain.Scheduler(self.policy, stages, needs=self.rigs.needs_of)
        self.cond = threading.Condition()
        self.jobs: dict[int, Job] = {}  # id(item) -> its live job
        self.retired: list[Job] = []  # discarded jobs (their lanes are taken until they end)
        self.failures: dict[int, dict] = {}  # id(item) -> its failure, as the chain keeps it
        self.ended: list[tuple[Job, JobEnd]] = []
        self.slots = SharedSlots(config.parallelism)
        self.tip: Optional[str] = None
        self.loaded = False
        self.reports = JobReports(self)
        self.record = ChainRecord(self)
        self.outcomes = Outcomes(self)
        self.line = WindowLine(self)

    def next_request(self, tx: Transaction) -> Optional[Request]:
        """The queued request the window takes next: highest priority, then oldest."""
        queued = requests.in_queue_order(tx)
        return queued[0] if queued else None

    def capacity(self) -> dict[str, int]:
        """Rigs per pool (RigCount.capacity)."""
        return self.rigs.capacity()

    # -- the loop --------------------------------------------------------------------------------

    def step(self) -> Optional[int]:
        """Runs the window until a request is final or re-queued (its id), or
        until nothing is queued or in flight (None)."""
        if not self.loaded:
            self.record.load()
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
        finished = self.reports.handle_ended()
        if finished is not None:
            return finished
        self.reports.handle_cancels()
        new: list[chain.Item] = []
        reset: list[chain.Item] = []
        with self.ctx.store.transaction() as tx:
            if not control.state(tx).paused:  # nothing new enters while paused (convoy pause, drain)
                queued = requests.in_queue_order(tx)
                ids = [r.id for r in queued]
                priority = {r.id: r.priority for r in [*queued, *tx.requests([RequestState.TESTING])]}
                with self.cond:
                    fresh = not self.scheduler.chain  # what enters an empty chain is built on the tip as it is now
                    new, reset = self.scheduler.promote(ids, priority)
                    new += self.scheduler.take(ids, priority)
                for item in new:
                    for rid in item.requests:
                        started = requests.start(tx, tx.request(rid))
                        if not self.windowed:  # the serial mode's line: its one request at a time
                            self.out(f"{time.strftime('%H:%M:%S')} #{rid} processing {started.title} "
                                     f"(attempt {started.attempts + 1})")
                if new:
                    self.record.save(tx)
        self.reports.reset(reset)
        if self.scheduler.chain and (self.tip is None or (new and fresh)):
            try:
                self.fetch_tip()
            except (InfraError, gitutil.GitError, ConvoyError) as e:  # the items to build on it go back to the queue
                return self.reports.unfetched(e)
        with self.cond:
            actions = self.scheduler.plan(self.tip, self.rigs.free(self.scheduler))
        finished = None
        for action in actions:
            finished = self._apply(action)
            if isinstance(action, chain.RESHAPING):
                break  # the rest of the plan assumed the chain as it was: plan again
        if self.line.full():  # after the plan's Enters: what is running only changes on this thread
            failpoints.hit("window_full")
        self.line.show()
        return finished

    # -- carrying out the decisions --------------------------------------------------------------

    def _apply(self, action) -> Optional[int]:
        if isinstance(action, chain.Build):
            self.build(action.item, action.base)
        elif isinstance(action, chain.Enter):
            with self.cond:
                action.item.running = True
                action.item.rigs = dict(action.rigs)
                job = self.jobs.get(id(action.item))
            if job is not None:
                job.gate.admit(action.stage)
        elif isinstance(action, chain.Merge):
            return self.outcomes.merge(action.item)
        elif isinstance(action, chain.Reject):
            return self.outcomes.reject(action.item)
        elif isinstance(action, chain.Split):
            self.outcomes.split(action)
        return None

    def build(self, item: chain.Item, base: str, *, resume=None) -> None:
        """Starts a job making (or, `resume`: resuming the build of) the item's candidate on `base`."""
        with self.cond:
            old = self.jobs.pop(id(item), None)
            item.rigs = {}
            self.failures.pop(id(item), None)
            if resume is None:
                item.making(base)
        if old is not None:
            self.retire(old, f"rebuilt on {base[:10]}: what it was built on changed")
        with self.cond:
            lane = free_lane(list(self.jobs.values()), self.retired)
        job = Job(self, item, base, lane=lane, resume=resume)
        with self.cond:
            self.jobs[id(item)] = job
        job.start()

    def retire(self, job: Job, reason: str) -> None:
        """Cancels a job whose build is not wanted any more; its lane stays
        taken until its thread ends (its Bazel runs stop within seconds)."""
        job.discard(reason)
        with self.cond:
            self.retired = [j for j in self.retired if j.thread.is_alive()] + [job]

    # -- helpers ----------------------------------------------------------------------------------------

    def requests_of(self, item: chain.Item) -> tuple[Request, list[Request]]:
        """The item's lead request and the rest, as the store has them now."""
        with self.ctx.store.read() as tx:
            found = [tx.request(rid) for rid in item.requests]
        return found[0], found[1:]

    def fetch_tip(self) -> str:
        """The remote branch's tip, fetched (and kept as `tip`)."""
        config = self.ctx.config
        self.tip = cand.fetch_branch(self.ctx.checkout, config.remote, config.branch)
        return self.tip

    def position(self, item: chain.Item) -> int:
        """Where the item is in the chain (its lane's slots go nearest the head first)."""
        with self.cond:
            return self.scheduler.chain.index(item) if item in self.scheduler.chain else len(self.scheduler.chain)
