"""What every queue shares around its scheduling: the lease, progress lines, resuming, tries, a bug's request.

    with ProcessLock(checkout):
        queue = open_queue(QueueContext(checkout, config, store), plugins=...)
        queue.start()                    # the lease, plugin delivery, progress lines
        queue.recover()                  # interrupted tasks back to ready
        while queue.step() is not None:  # until a request is final or re-queued
            pass
        queue.try_step()                 # then a waiting try (convoy try), if the queue is idle
        queue.finish()

`QueueManager` is the part of a queue that does not depend on how it
schedules: `step` and `idle` are its subclass's (convoy.queue.window's
`WindowQueue`, which runs every mode: convoy.modes). The phases' steps are
`convoy.queue.phases.Steps`; every state change goes through
`convoy.requests`.

Testing requests are resumed before a new one is claimed (`recover` sets
their interrupted tasks back to ready). An unexpected exception (a bug)
ends the request in `error` with a crash log, so that the queue goes on
(`_internal_error`); one that passed its build stops `convoy process` with
it at its phase instead (its push may have landed).

While the queue is paused or draining (`convoy pause`, `convoy drain`:
convoy.control) `try_step` starts no try. Tries (`convoy try`) run only in
what the queue leaves free: `try_step` runs one when the queue says it is
`idle`, and the try yields (its build stopped, itself back to waiting) as
soon as a request arrives; see convoy.queue.tries.
"""

from __future__ import annotations

import abc
import threading
import time
from typing import Callable, Optional

from convoy import control
from convoy import crashlog
from convoy import requests
from convoy.bazel import kill_leftover_client
from convoy.errors import StoreUnavailable
from convoy.events import Dispatcher, describe
from convoy.models import BuildState, Phase, QUEUE_LEASE, RequestState, TaskState
from convoy.queue.lock import Lease
from convoy.queue.phases import QueueContext, Steps, StuckError
from convoy.queue.tries import TryRunner
from convoy.store import Transaction, state_dir

LEASE = QUEUE_LEASE


class Progress:
    """The progress lines of a queue: its own, and one per event committed (from `start`). A closed
    stdout (`convoy process | head`) never stops the driver: the lines stop instead."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self._out = out
        self._quiet = False
        self._printed = 0
        self.lock = threading.Lock()  # held while a line is printed: no line goes inside another

    def out(self, line: str) -> None:
        if self._quiet:
            return
        try:
            self._out(line)
        except (BrokenPipeError, OSError, ValueError):
            self._quiet = True

    def start(self, tx: Transaction) -> None:
        """Events from now on are printed (`committed`)."""
        self._printed = tx.last_event_id()

    def committed(self, store) -> None:
        with self.lock:
            with store.read() as tx:
                events = tx.events(after=self._printed)
            for event in events:
                self.out(f"{time.strftime('%H:%M:%S')} {describe(event)}")
                self._printed = event.id


class QueueManager(abc.ABC):
    """Processes one checkout's queue; a subclass schedules it (`step`, `idle`)."""

    mode = ""

    def __init__(self, ctx: QueueContext, *, plugins: Optional[list] = None) -> None:
        self.ctx = ctx
        self.progress = Progress(ctx.out)
        self.out = self.progress.out  # steps, tries and the queue's parts print through the same guarded output
        self._print_lock = self.progress.lock
        self.lease = Lease(ctx.store, LEASE, ttl=ctx.config.lease_ttl, on_lost=self._lost)
        self.steps = Steps(ctx, out=self.out, fence=self.lease.fence)
        self.tries = TryRunner(ctx, out=self.out)
        self.dispatcher = Dispatcher(ctx.store, plugins, on_error=None) if plugins else None
        self.internal_errors = 0  # requests ended by an unexpected exception (a bug): see _internal_error
        self.started = False  # the lease taken (start): finish has something to end

    @property
    def stop(self) -> threading.Event:
        return self.ctx.stop

    @abc.abstractmethod
    def step(self) -> Optional[int]:
        """Runs the queue until a request is final or re-queued (its id), or until there is nothing to do (None)."""

    def idle(self) -> bool:
        """Whether nothing of the queue runs now (after `step` returned None), so that a try may."""
        return True

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, standby: Optional[Callable[[str], None]] = None,
              idle: Optional[Callable[[], bool]] = None) -> bool:
        """Takes the lease, starts plugin delivery and progress lines; True
        once it runs. `standby`: wait while another worker holds the lease
        (called once with it), False if stopped meanwhile (see Lease.take)."""
        if not self.lease.take(standby=standby, stop=self.stop, idle=idle):
            return False
        self.started = True
        with self.ctx.store.read() as tx:
            self.progress.start(tx)
        self.ctx.store.on_commit(self._committed)
        if self.dispatcher is not None:
            self.dispatcher.start()
        return True

    def _lost(self, why: str) -> None:
        """The lease is gone (Lease.on_lost): start nothing more; what runs stops where it is."""
        self.out(f"convoy: lost the queue's lease ({why}): stopping; the worker that holds it resumes the queue")
        self.stop.set()
        if self.dispatcher is not None:
            self.dispatcher.stop()  # the events are the new holder's to deliver now, not two workers' at once

    def finish(self, flush_timeout: float = 30.0) -> None:
        """Delivers what is pending to plugins (bounded), drops the lease."""
        if not self.started:  # stopped on standby: only this worker's presence row to drop
            self.lease.release()
            return
        if self.dispatcher is not None:
            try:
                flushed = self.lease.lost is None and self.dispatcher.flush(flush_timeout)
            except StoreUnavailable:
                flushed = False
            if not flushed:
                self.out("convoy: some events are not delivered to plugins yet; the next convoy process will")
            self.dispatcher.stop()
        self.lease.release()

    def _committed(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.notify()
        self.progress.committed(self.ctx.store)

    def recover(self) -> list[int]:
        """Sets the interrupted tasks of testing requests (and tries) back to ready; the testing requests' ids."""
        testing = recover_tasks(self.ctx, self.out)
        self.tries.recover()
        return testing

    def try_step(self) -> Optional[int]:
        """Runs a waiting try if the queue is idle and no request waits (it
        yields to one arriving); returns its id, or None."""
        if self.stop.is_set() or not self.idle() or self.held().paused:
            return None
        return self.tries.step()

    def held(self) -> control.QueueControl:
        """The queue's control state (convoy.control): paused, draining, or running."""
        with self.ctx.store.read() as tx:
            return control.state(tx)

    def _internal_error(self, request_id: int, error: Exception) -> None:
        """Ends a request that raised an unexpected exception (`internal_error`), counted in `internal_errors`."""
        self.internal_errors += 1
        internal_error(self.ctx, request_id, error, self.out)


def recover_tasks(ctx: QueueContext, out: Callable[[str], None]) -> list[int]:
    """Sets the interrupted tasks of testing requests back to ready (killing
    a Bazel client a dead driver left running); returns the testing requests' ids."""
    store = ctx.store
    with store.read() as tx:
        testing = tx.requests([RequestState.TESTING])
        interrupted = [
            task
            for request in testing
            for build in tx.builds(request.id) if build.state == BuildState.BUILDING
            for task in tx.tasks(build_id=build.id, states=[TaskState.OFFERED, TaskState.SCHEDULED,
                                                              TaskState.BUILDING])
        ]
    for task in interrupted:
        if task.pid is not None and kill_leftover_client(task.pid, task.bep_path):
            out(f"convoy: stopped a Bazel client left running by the previous driver (pid {task.pid})")
    if interrupted:
        with store.transaction() as tx:
            for task in interrupted:
                tx.update_task(task.id, state=TaskState.READY, pid=None)
    for request in testing:
        out(f"convoy: resuming request #{request.id} ({request.title}) at its {request.phase.value} phase")
    return [r.id for r in testing]


def internal_error(ctx: QueueContext, request_id: int, error: Exception, out: Callable[[str], None]) -> None:
    """Ends a request that raised an unexpected exception in `error`, so
    that the queue goes on; the traceback goes to a crash log. A request
    that passed its build (merging, pushed) is not ended: its push may
    have landed, so `convoy process` stops with it at its phase."""
    log = crashlog.write(state_dir(ctx.checkout) / "logs", error, context=f"processing request #{request_id}")
    where = f"details in {log}" if log else "no crash log could be written"
    reason = f"internal error ({crashlog.summary(error)}); a bug in convoy, {where}"
    with ctx.store.transaction() as tx:
        request = tx.request(request_id)
        if request.state != RequestState.TESTING:
            return
        if request.phase in (Phase.MERGING, Phase.PUSHED):
            raise StuckError(f"request #{request_id} passed its build but its {request.phase.value} step hit an "
                             f"{reason}; it stays at that step: report the bug, then run: convoy process")
        requests.end_running_builds(tx, request, reason=reason)
        requests.error(tx, request, reason, attempts=request.attempts + 1, limit=ctx.config.infra_retries,
                       extra={"internal": True, "log": str(log) if log else None})
    out(f"convoy: #{request_id} ended in error: {reason}")
