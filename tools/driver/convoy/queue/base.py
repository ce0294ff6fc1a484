"""The loop every queue mode shares: claim, resume, step, and what to do when a step fails.

    with ProcessLock(checkout):
        queue = open_queue(QueueContext(checkout, config, store), plugins=...)
        queue.start()                    # the lease, plugin delivery, progress lines
        queue.recover()                  # interrupted tasks back to ready
        while queue.step() is not None:  # one request until it is final or re-queued
            pass
        queue.try_step()                 # then a waiting try (convoy try), if the queue is idle
        queue.finish()

A mode (in the manner of Zuul's pipeline managers) subclasses
`QueueManager` and overrides its hooks: `next_request` (which queued
request to take), `base_for` (the commit its candidate is built on) and
`lane_for` (the worktree it is built in). The phases' steps are
`convoy.queue.phases.Steps`; every state change goes through
`convoy.requests`.

Testing requests are resumed before a new one is claimed. An infrastructure
error (InfraError, a git failure, a ConvoyError from a remote while making
the candidate) re-queues the request with attempts + 1, up to
`retries.infrastructure`, then ends it in `error`. In `merging` and
`pushed` the request is not re-queued (its push may have landed), with one
exception: a branch that moved during each of MAX_BUILDS builds re-queues
it (`Requeue`; nothing was pushed). Otherwise the step is retried in place,
and if it keeps failing `convoy process` stops with the request still at
its phase, to resume at the next start. An unexpected exception (a bug)
ends the request in `error` with a crash log, so that the queue goes on.

While the queue is paused or draining (`convoy pause`, `convoy drain`:
convoy.control) `step` only resumes what is testing and takes nothing
new, and `try_step` starts no try.

Tries (`convoy try`) run only in what the queue leaves free: `try_step`
runs one when the mode says it is `idle`, and the try yields (its build
stopped, itself back to waiting) as soon as a request arrives; see
convoy.queue.tries.
"""

from __future__ import annotations

import abc
import threading
import time
from typing import Optional

from convoy import control
from convoy import crashlog
from convoy import gitutil
from convoy import requests
from convoy.bazel import kill_leftover_client
from convoy.errors import ConvoyError, InfraError
from convoy.events import Dispatcher, describe
from convoy.models import BuildState, Phase, Request, RequestState, TaskState
from convoy.queue.lock import Lease
from convoy.queue.phases import QueueContext, Requeue, Steps, Stopped, StuckError
from convoy.queue.tries import TryRunner
from convoy.store import Transaction, state_dir
from convoy.timing import Meter

LEASE = "queue"
PUSH_RETRY_SECONDS = 2.0


class QueueManager(abc.ABC):
    """Processes one checkout's queue; a mode overrides the hooks."""

    mode = ""

    def __init__(self, ctx: QueueContext, *, plugins: Optional[list] = None) -> None:
        self.ctx = ctx
        self._out = ctx.out
        self._quiet = False
        self.steps = Steps(ctx, out=self.out)  # steps print through the same guarded output
        self.tries = TryRunner(ctx, out=self.out)
        self.lease = Lease(ctx.store, LEASE)
        self.dispatcher = Dispatcher(ctx.store, plugins, on_error=None) if plugins else None
        self._printed = 0
        self._print_lock = threading.Lock()
        self.internal_errors = 0  # requests ended by an unexpected exception (a bug): see _internal_error

    @property
    def stop(self) -> threading.Event:
        return self.ctx.stop

    # -- the mode's hooks ------------------------------------------------------------

    @abc.abstractmethod
    def next_request(self, tx: Transaction) -> Optional[Request]:
        """The queued request to take next, or None."""

    @abc.abstractmethod
    def base_for(self, request: Request) -> str:
        """The commit the candidate of `request` is built on."""

    def lane_for(self, request: Request) -> int:
        """The candidate worktree `request` is built in (one per candidate in flight)."""
        return 0

    def idle(self) -> bool:
        """Whether nothing of the queue runs now (after `step` returned None), so that a try may."""
        return True

    # -- lifecycle -----------------------------------------------------------------------

    def out(self, line: str) -> None:
        """Prints a progress line; a closed stdout (`convoy process | head`) never stops the driver."""
        if self._quiet:
            return
        try:
            self._out(line)
        except (BrokenPipeError, OSError, ValueError):
            self._quiet = True

    def start(self) -> None:
        """Takes the lease, starts plugin delivery and progress lines."""
        self.lease.take()
        with self.ctx.store.read() as tx:
            self._printed = tx.last_event_id()
        self.ctx.store.on_commit(self._committed)
        if self.dispatcher is not None:
            self.dispatcher.start()

    def finish(self, flush_timeout: float = 30.0) -> None:
        """Delivers what is pending to plugins (bounded), drops the lease."""
        if self.dispatcher is not None:
            if not self.dispatcher.flush(flush_timeout):
                self.out("convoy: some events are not delivered to plugins yet; the next convoy process will")
            self.dispatcher.stop()
        self.lease.release()

    def _committed(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.notify()
        with self._print_lock:
            with self.ctx.store.read() as tx:
                events = tx.events(after=self._printed)
            for event in events:
                self.out(f"{time.strftime('%H:%M:%S')} {describe(event)}")
                self._printed = event.id

    def recover(self) -> list[int]:
        """Sets the interrupted tasks of testing requests back to ready
        (killing a Bazel client a dead driver left running); returns the
        testing requests' ids."""
        store = self.ctx.store
        with store.read() as tx:
            testing = tx.requests([RequestState.TESTING])
            interrupted = [
                task
                for request in testing
                for build in tx.builds(request.id) if build.state == BuildState.BUILDING
                for task in tx.tasks(build_id=build.id, states=[TaskState.SCHEDULED, TaskState.BUILDING])
            ]
        for task in interrupted:
            if task.pid is not None and kill_leftover_client(task.pid, task.bep_path):
                self.out(f"convoy: stopped a Bazel client left running by the previous driver (pid {task.pid})")
        if interrupted:
            with store.transaction() as tx:
                for task in interrupted:
                    tx.update_task(task.id, state=TaskState.READY, pid=None)
        for request in testing:
            self.out(f"convoy: resuming request #{request.id} ({request.title}) at its {request.phase.value} phase")
        self.tries.recover()
        return [r.id for r in testing]

    # -- the loop --------------------------------------------------------------------------

    def step(self) -> Optional[int]:
        """Processes one request (a testing one first, else the next queued
        one) until it is final or re-queued; returns its id, or None if
        there was nothing to do."""
        if self.stop.is_set():
            return None
        with self.ctx.store.transaction() as tx:
            testing = tx.requests([RequestState.TESTING])
            if testing:
                request = testing[0]
            elif control.state(tx).paused:
                return None  # nothing new starts (convoy pause, convoy drain)
            else:
                request = self.next_request(tx)
                if request is None:
                    return None
                request = requests.start(tx, request)
        self.out(f"{time.strftime('%H:%M:%S')} #{request.id} processing {request.title} "
                 f"(attempt {request.attempts + 1})")
        self._process(request.id)
        return request.id

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

    def _process(self, request_id: int) -> None:
        meter = Meter()
        requeued = False
        with meter.active():
            try:
                self._advance(request_id, meter)
            except Stopped:
                pass
            except StuckError:
                raise
            except (InfraError, gitutil.GitError, ConvoyError) as e:
                requeued = self._infrastructure_error(request_id, _reason(e))
            except Exception as e:  # a bug, or a request no check foresaw: it must not block the queue
                self._internal_error(request_id, e)
            finally:
                with self.ctx.store.transaction() as tx:
                    tx.add_request_time(request_id, meter.elapsed(), meter.seconds("bazel"), meter.seconds("git"))
        if requeued:
            self.stop.wait(self.ctx.config.poll_interval)

    def _advance(self, request_id: int, meter: Meter) -> None:
        """Runs the request's steps, phase after phase, until it leaves `testing`."""
        merge_failures = 0
        while not self.stop.is_set():
            with self.ctx.store.read() as tx:
                request = tx.request(request_id)
            if request.state != RequestState.TESTING:
                return
            if request.cancel_requested and request.phase in (Phase.CANDIDATE, Phase.BUILDING):
                self.steps.cancel(request)
                return
            try:
                self._step(request, meter)
            except (InfraError, gitutil.GitError, ConvoyError) as e:
                if request.phase not in (Phase.MERGING, Phase.PUSHED) or isinstance(e, Requeue):
                    raise
                merge_failures += 1
                reason = _reason(e)
                if merge_failures > self.ctx.config.infra_retries:
                    raise StuckError(
                        f"request #{request.id} passed its build but its {request.phase.value} step keeps failing "
                        f"({reason}); it stays at that step: fix the remote, then run: convoy process"
                    ) from None
                self.out(f"convoy: #{request.id} {request.phase.value} step failed ({reason}); retrying")
                self.stop.wait(min(self.ctx.config.poll_interval, PUSH_RETRY_SECONDS) * merge_failures)
        raise Stopped()

    def _step(self, request: Request, meter: Meter) -> None:
        if request.phase in (None, Phase.CANDIDATE):
            self.steps.make_candidate(request, self.base_for(request), lane=self.lane_for(request))
        elif request.phase == Phase.BUILDING:
            self.steps.build(request, meter, lane=self.lane_for(request))
        elif request.phase == Phase.MERGING:
            self.steps.merge(request)
        elif request.phase == Phase.PUSHED:
            self.steps.tag(request)
        else:  # TAGGED is final together with MERGED; repair a half-written state
            with self.ctx.store.transaction() as tx:
                requests.repair_tagged(tx, request)

    # -- when a step fails ---------------------------------------------------------------------

    def _infrastructure_error(self, request_id: int, reason: str) -> bool:
        """Re-queues the request (or ends it in error); returns whether it was re-queued."""
        with self.ctx.store.transaction() as tx:
            request = tx.request(request_id)
            if request.state != RequestState.TESTING:
                return False
            return requests.infrastructure_error(tx, request, reason, limit=self.ctx.config.infra_retries)

    def _internal_error(self, request_id: int, error: Exception) -> None:
        """Ends a request that raised an unexpected exception in `error`, so
        that the queue goes on; the traceback goes to a crash log. A request
        that passed its build (merging, pushed) is not ended: its push may
        have landed, so `convoy process` stops with it at its phase."""
        log = crashlog.write(state_dir(self.ctx.checkout) / "logs", error,
                             context=f"processing request #{request_id}")
        where = f"details in {log}" if log else "no crash log could be written"
        reason = f"internal error ({crashlog.summary(error)}); a bug in convoy, {where}"
        self.internal_errors += 1
        with self.ctx.store.transaction() as tx:
            request = tx.request(request_id)
            if request.state != RequestState.TESTING:
                return
            if request.phase in (Phase.MERGING, Phase.PUSHED):
                raise StuckError(f"request #{request_id} passed its build but its {request.phase.value} step hit an "
                                 f"{reason}; it stays at that step: report the bug, then run: convoy process")
            requests.end_running_builds(tx, request, reason=reason)
            requests.error(tx, request, reason, attempts=request.attempts + 1, limit=self.ctx.config.infra_retries,
                           extra={"internal": True, "log": str(log) if log else None})
        self.out(f"convoy: #{request_id} ended in error: {reason}")


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())
