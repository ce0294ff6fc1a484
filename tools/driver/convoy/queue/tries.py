"""`TryRunner`: runs the waiting tries (`convoy try`) in the slots the merge queue leaves free.

    runner = TryRunner(ctx, out=queue.out)
    runner.step()      # the oldest try, if no request is queued or testing; its id, or None

Tries never delay the merge queue. `convoy process` runs a try only when
no request is queued or in flight (the queue mode's `idle()`), one at a
time, in the candidate worktree of lane 0 (the window head's and the serial mode's; its warm
Bazel output bases). While it runs, a watcher looks at the queue every
half second: when a request arrives, the try's build is cancelled the way
the queue cancels one (its Bazel runs aborted, its slots and rigs given
back), and the try goes back to waiting, to run again later on the tip
the branch has then. So a try never holds a slot or a rig while a
request waits.

Nothing of a try leaves the driver's own state: its candidate is a local
commit (never pushed), no tag is made, and the checkout's branch, manifest
and lock are not touched. Every state change goes through convoy.tries.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from convoy import candidate as cand
from convoy import crashlog
from convoy import gitutil
from convoy import requests
from convoy import tries
from convoy.bazel import kill_leftover_client
from convoy.errors import ConvoyError, InfraError
from convoy.lock import changed_configurations
from convoy.models import KIND_TRY, Build, BuildState, Request, RequestState, TaskState
from convoy.pipeline import BuildResult, BuildRunner, RunContext, construction_plan, create_build
from convoy.queue.phases import QueueContext, Stopped, rejection_summary
from convoy.store import Transaction, state_dir
from convoy.timing import Meter

LANE = 0  # the window head's worktree: idle whenever a try runs
WATCH_SECONDS = 0.5


def request_waiting(tx: Transaction) -> Optional[Request]:
    """The oldest request of the merge queue that is queued or testing (one a try must yield to)."""
    found = tx.requests([RequestState.TESTING]) or tx.requests([RequestState.QUEUED])
    return found[0] if found else None


class TryRunner:
    """Runs one waiting try at a time (see the module docstring)."""

    def __init__(self, ctx: QueueContext, *, out: Optional[Callable[[str], None]] = None) -> None:
        self.ctx = ctx
        self.out = out or ctx.out

    def step(self) -> Optional[int]:
        """Runs the next try until it ends or yields to a request; returns
        its id, or None if there was none to run (or a request waits)."""
        if self.ctx.stop.is_set():
            return None
        with self.ctx.store.read() as tx:
            if request_waiting(tx) is not None:
                return None
            found = tries.waiting(tx)
        if not found:
            return None
        t = found[0]
        self._end_interrupted(t)
        try:
            base = cand.fetch_branch(self.ctx.checkout, self.ctx.config.remote, self.ctx.config.branch)
        except (InfraError, gitutil.GitError, ConvoyError) as e:  # the remote is away: the try waits
            self.out(f"convoy: try #{t.id} waits: cannot fetch {self.ctx.config.branch} ({e})")
            return None
        with self.ctx.store.transaction() as tx:
            if request_waiting(tx) is not None:  # it arrived meanwhile: the queue goes first
                return None
            t = tries.start(tx, tx.request(t.id), base_commit=base)
        self.out(f"{time.strftime('%H:%M:%S')} #{t.id} trying {t.title} at {(t.commit or '-')[:12]} "
                 f"on {base[:10]} (nothing is merged)")
        meter = Meter()
        with meter.active():
            try:
                self._run(t, base, meter)
            except Stopped:
                pass
            except (InfraError, gitutil.GitError, ConvoyError) as e:
                self._infrastructure_error(t.id, " ".join((str(e) or type(e).__name__).split()))
            except Exception as e:  # a bug: the try ends in error, the queue goes on
                log = crashlog.write(state_dir(self.ctx.checkout) / "logs", e, context=f"running try #{t.id}")
                reason = f"internal error ({crashlog.summary(e)}); a bug in convoy, details in {log}"
                self._end(t.id, lambda tx, now, build: tries.error(tx, now, build, reason=reason))
            finally:
                with self.ctx.store.transaction() as tx:
                    tx.add_request_time(t.id, meter.elapsed(), meter.seconds("bazel"), meter.seconds("git"))
        return t.id

    # -- one run ----------------------------------------------------------------------------

    def _run(self, t: Request, base: str, meter: Meter) -> None:
        checkout, config, store = self.ctx.checkout, self.ctx.config, self.ctx.store
        try:
            candidate = cand.make_candidate(checkout, t, base, lane=LANE)
        except cand.CandidateRejected as e:
            with store.transaction() as tx:
                tries.failed(tx, tx.request(t.id), None, stage="candidate", summary=str(e), logs=self.ctx.logs(t))
            return
        plan = construction_plan(config.stages, candidate.manifest, t,
                                 changed_configurations(candidate.previous_lock, candidate.lock))
        with store.transaction() as tx:
            build = create_build(tx, t, base, candidate.commit, plan)
            tries.building(tx, t, candidate_commit=candidate.commit)
        worktree = cand.prepare_worktree(checkout, candidate.commit, lane=LANE)
        cancel, done = threading.Event(), threading.Event()
        why: list[str] = []
        watcher = threading.Thread(target=self._watch, args=(t.id, cancel, done, why), name="try-watch",
                                   daemon=True)
        watcher.start()
        run = RunContext(checkout=checkout, config=config, store=store, meter=meter, pool_check=self.ctx.pool_check,
                         stop=self.ctx.stop, run_bazel=self.ctx.run_bazel, lane=LANE, out=self.out)
        try:
            outcome = BuildRunner(run, t, build, worktree, cancel).run()
        finally:
            done.set()
            watcher.join(2)
        if outcome.result == BuildResult.STOPPED:
            raise Stopped()
        with store.transaction() as tx:
            now, build = tx.request(t.id), tx.build(build.id)
            if outcome.result == BuildResult.SUCCEEDED:
                tries.passed(tx, now, build)
            elif outcome.result == BuildResult.FAILED:
                tries.failed(tx, now, build, stage=outcome.stage, logs=self.ctx.logs(t),
                             failures=[f.to_dict() for f in outcome.failures],
                             summary=rejection_summary(outcome.stage, outcome.failures))
            elif outcome.result == BuildResult.CANCELLED and why:
                tries.requeue(tx, now, build, reason=why[0])
            elif outcome.result == BuildResult.CANCELLED:
                tries.cancelled(tx, now, build)
        if outcome.result == BuildResult.INFRA:
            raise InfraError(outcome.reason)
        if why:
            self.out(f"{time.strftime('%H:%M:%S')} #{t.id} {why[0]}")

    def _watch(self, try_id: int, cancel: threading.Event, done: threading.Event, why: list[str]) -> None:
        """Cancels the try's build when a request arrives (`why` says which) or its cancel is asked."""
        while not done.wait(WATCH_SECONDS):
            try:
                with self.ctx.store.read() as tx:
                    request = request_waiting(tx)
                    cancelled = tx.request(try_id).cancel_requested
            except Exception:  # a busy database: look again
                continue
            if request is not None:
                why.append(f"stopped for request #{request.id} ({request.title}); the try waits to run again")
            if request is not None or cancelled:
                cancel.set()
                return

    # -- endings ------------------------------------------------------------------------------

    def _end(self, try_id: int, ending: Callable[[Transaction, Request, Optional[Build]], None]) -> None:
        with self.ctx.store.transaction() as tx:
            t = tx.request(try_id)
            if t.state != RequestState.TESTING:
                return
            builds = tx.builds(try_id)
            ending(tx, t, builds[-1] if builds else None)

    def _infrastructure_error(self, try_id: int, reason: str) -> None:
        """Waits again (attempts + 1), or past `retries.infrastructure` ends in error."""
        limit = self.ctx.config.infra_retries

        def ending(tx: Transaction, t: Request, build: Optional[Build]) -> None:
            if t.attempts + 1 > limit:
                tries.error(tx, t, build, reason=f"infrastructure error, {t.attempts + 1} attempts: {reason}")
            else:
                tries.requeue(tx, t, build, reason=f"infrastructure error: {reason}", attempt=True)

        self._end(try_id, ending)
        self.out(f"convoy: try #{try_id}: infrastructure error: {reason}")

    def recover(self) -> None:
        """Tries a stopped driver left testing wait again (their Bazel clients stopped first, so
        that none holds an output base the queue's next request needs)."""
        with self.ctx.store.read() as tx:
            testing = tx.requests([RequestState.TESTING], kind=KIND_TRY)
        for t in testing:
            self._end_interrupted(t)
            with self.ctx.store.transaction() as tx:
                tries.requeue(tx, tx.request(t.id), None, reason="interrupted (convoy process stopped); it runs again")

    def _end_interrupted(self, t: Request) -> None:
        """A try a stopped driver left testing: its Bazel clients stopped, its build ended (it starts over)."""
        if t.state != RequestState.TESTING:
            return
        with self.ctx.store.read() as tx:
            running = [b for b in tx.builds(t.id) if b.state == BuildState.BUILDING]
            tasks = [task for b in running
                     for task in tx.tasks(build_id=b.id, states=[TaskState.SCHEDULED, TaskState.BUILDING])]
        for task in tasks:
            if task.pid is not None:
                kill_leftover_client(task.pid, task.bep_path)
        with self.ctx.store.transaction() as tx:
            for build in running:
                requests.end_build(tx, t, build, BuildState.FAILED, reason="interrupted: the try starts over")
