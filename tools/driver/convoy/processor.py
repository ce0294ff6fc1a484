"""`convoy process`'s engine: claim a request, build its candidate, merge, tag, or reject.

    with ProcessLock(checkout):
        processor = Processor(checkout, config, store)
        processor.recover()
        while processor.step() is not None:
            pass

A request in `testing` is always at one `phase`, and each phase is a step
that can be run again after a crash without doing anything twice:

| phase | step | if the driver died during it |
| --- | --- | --- |
| candidate | fetch the branch, make the candidate commit, create the build | made again from scratch (the worktree is reset) |
| building | run the construction plan | the same candidate again; finished tasks kept, interrupted ones re-run |
| merging | push the candidate to the branch (fast-forward only) | the remote decides: at the candidate, or at a tip that contains it -> pushed; at the base -> push; elsewhere -> rebuild on the new tip |
| pushed | make and push the release tag | a tag on the remote at the candidate is recorded; else one is made |

Testing requests are resumed before a new one is claimed (one at a time).
An infrastructure error (InfraError, a git failure, a ConvoyError from a
remote while making the candidate) re-queues the request with attempts + 1,
up to `retries.infrastructure`, then ends it in `error`. In `merging` and
`pushed` the request is never re-queued (its push may have landed): the step
is retried in place, and if it keeps failing `convoy process` stops with the
request still at its phase, to resume at the next start.

One `convoy process` per checkout: an exclusive flock on
`.convoy/process.lock`, plus a lease row in the store (the seam for several
workers on a shared store).
"""

from __future__ import annotations

import datetime
import fcntl
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from convoy import candidate as cand
from convoy import crashlog
from convoy import failpoints
from convoy import gitutil
from convoy import models
from convoy import untrusted
from convoy.config import Config
from convoy.errors import ConvoyError
from convoy.events import Dispatcher, describe
from convoy.models import Build, BuildState, Phase, Request, RequestState, StageState, TaskState
from convoy.pipeline import (
    BuildRunner, InfraError, PoolCheck, RunContext, construction_plan, create_build, kill_leftover_client,
    lab_pool_check,
)
from convoy.store import Store, now, policy_for, state_dir
from convoy.timing import Meter

LOCK_NAME = "process.lock"
LEASE = "queue"
LEASE_TTL = 120.0
MAX_BUILDS = 5  # builds of one request in a row (the branch kept moving): then an infrastructure error
PUSH_RETRY_SECONDS = 2.0


class Stopped(Exception):
    """The driver was asked to stop; the request resumes at the next start."""


class StuckError(ConvoyError):
    """A merge or tag step keeps failing: stop, leaving the request at its phase."""


class ProcessLock:
    """The exclusive right to process this checkout's queue (flock)."""

    def __init__(self, checkout: Path) -> None:
        self.path = state_dir(checkout) / LOCK_NAME
        self.fd: Optional[int] = None

    def __enter__(self) -> "ProcessLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise ConvoyError(
                f"cannot open convoy's process lock {self.path} ({e.strerror}); it must be a writable file: "
                "remove or fix it, then run convoy process again"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConvoyError(
                f"another convoy process is already processing this queue (pid {holder}, lock {self.path}); "
                "wait for it to finish, or stop it"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:
            os.close(fd)
            raise ConvoyError(
                f"cannot write convoy's process lock {self.path} ({e.strerror}); free space on its disk "
                "or make .convoy writable, then run convoy process again"
            ) from None
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
            self.fd = None


class Processor:
    """Processes one checkout's queue; see the module docstring."""

    def __init__(
        self,
        checkout: Path,
        config: Config,
        store: Store,
        *,
        out: Callable[[str], None] = print,
        pool_check: Optional[PoolCheck] = lab_pool_check,
        run_bazel: Optional[Callable] = None,
        plugins: Optional[list] = None,
        today: Callable[[], datetime.date] = datetime.date.today,
    ) -> None:
        self.checkout = checkout
        self.config = config
        self.store = store
        self._out = out
        self._quiet = False
        self.policy = policy_for(config.queue_mode)
        self.stop = threading.Event()
        self.pool_check = pool_check
        self.run_bazel = run_bazel
        self.today = today
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.dispatcher = Dispatcher(store, plugins or [], on_error=None) if plugins else None
        self._printed = 0
        self._print_lock = threading.Lock()
        self._lease_stop = threading.Event()
        self._lease_thread: Optional[threading.Thread] = None
        self.internal_errors = 0  # requests ended by an unexpected exception (a bug): see _internal_error

    def out(self, line: str) -> None:
        """Prints a progress line; a closed stdout (`convoy process | head`) never stops the driver."""
        if self._quiet:
            return
        try:
            self._out(line)
        except (BrokenPipeError, OSError, ValueError):
            self._quiet = True

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Takes the lease, starts plugin delivery and progress lines."""
        with self.store.transaction() as tx:
            holder = tx.acquire_lease(LEASE, self.owner, LEASE_TTL)
            if holder is not None and holder.split(":")[0] != socket.gethostname():
                raise ConvoyError(
                    f"the queue is leased to {holder} (another machine); wait for it, or for the lease to expire"
                )
            if holder is not None:  # this host, and we hold the flock: its owner is dead
                tx.release_lease(LEASE, holder)
                tx.acquire_lease(LEASE, self.owner, LEASE_TTL)
            self._printed = tx.last_event_id()
        self._lease_thread = threading.Thread(target=self._renew_lease, name="lease", daemon=True)
        self._lease_thread.start()
        self.store.on_commit(self._committed)
        if self.dispatcher is not None:
            self.dispatcher.start()

    def finish(self, flush_timeout: float = 30.0) -> None:
        """Delivers what is pending to plugins (bounded), drops the lease."""
        if self.dispatcher is not None:
            if not self.dispatcher.flush(flush_timeout):
                self.out("convoy: some events are not delivered to plugins yet; the next convoy process will")
            self.dispatcher.stop()
        self._lease_stop.set()
        with self.store.transaction() as tx:
            tx.release_lease(LEASE, self.owner)

    def _renew_lease(self) -> None:
        while not self._lease_stop.wait(LEASE_TTL / 3):
            try:
                with self.store.transaction() as tx:
                    tx.acquire_lease(LEASE, self.owner, LEASE_TTL)
            except Exception:  # the next renewal tries again
                pass

    def _committed(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.notify()
        with self._print_lock:
            with self.store.read() as tx:
                events = tx.events(after=self._printed)
            for event in events:
                self.out(f"{time.strftime('%H:%M:%S')} {describe(event)}")
                self._printed = event.id

    # -- recovery --------------------------------------------------------------------

    def recover(self) -> list[int]:
        """Sets the interrupted tasks of testing requests back to ready
        (killing a Bazel client a dead driver left running); returns the
        testing requests' ids."""
        with self.store.read() as tx:
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
            with self.store.transaction() as tx:
                for task in interrupted:
                    tx.update_task(task.id, state=TaskState.READY, pid=None)
        for request in testing:
            self.out(f"convoy: resuming request #{request.id} ({request.title}) at its {request.phase.value} phase")
        return [r.id for r in testing]

    # -- the queue ---------------------------------------------------------------------

    def step(self) -> Optional[int]:
        """Processes one request (a testing one first, else the next queued
        one) until it is final or re-queued; returns its id, or None if
        there was nothing to do."""
        if self.stop.is_set():
            return None
        with self.store.transaction() as tx:
            testing = tx.requests([RequestState.TESTING])
            if testing:
                request = testing[0]
            else:
                request = self.policy.next(tx)
                if request is None:
                    return None
                request = tx.update_request(request.id, state=RequestState.TESTING, phase=Phase.CANDIDATE,
                                            detail=None)
        self.out(f"{time.strftime('%H:%M:%S')} #{request.id} processing {request.title} "
                 f"(attempt {request.attempts + 1})")
        self._process(request.id)
        return request.id

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
                with self.store.transaction() as tx:
                    tx.add_request_time(request_id, meter.elapsed(), meter.seconds("bazel"), meter.seconds("git"))
        if requeued:
            self.stop.wait(self.config.poll_interval)

    def _advance(self, request_id: int, meter: Meter) -> None:
        merge_failures = 0
        while not self.stop.is_set():
            with self.store.read() as tx:
                request = tx.request(request_id)
            if request.state != RequestState.TESTING:
                return
            if request.cancel_requested and request.phase in (Phase.CANDIDATE, Phase.BUILDING):
                self._cancel(request)
                return
            try:
                if request.phase in (None, Phase.CANDIDATE):
                    self._make_candidate(request)
                elif request.phase == Phase.BUILDING:
                    self._build(request, meter)
                elif request.phase == Phase.MERGING:
                    self._merge(request)
                elif request.phase == Phase.PUSHED:
                    self._tag(request)
                else:  # TAGGED is final together with MERGED; repair a half-written state
                    with self.store.transaction() as tx:
                        tx.update_request(request.id, state=RequestState.MERGED, finished_at=now())
            except (InfraError, gitutil.GitError, ConvoyError) as e:
                if request.phase not in (Phase.MERGING, Phase.PUSHED) or isinstance(e, _Requeue):
                    raise
                merge_failures += 1
                reason = _reason(e)
                if merge_failures > self.config.infra_retries:
                    raise StuckError(
                        f"request #{request.id} passed its build but its {request.phase.value} step keeps failing "
                        f"({reason}); it stays at that step: fix the remote, then run: convoy process"
                    ) from None
                self.out(f"convoy: #{request.id} {request.phase.value} step failed ({reason}); retrying")
                self.stop.wait(min(self.config.poll_interval, PUSH_RETRY_SECONDS) * merge_failures)
        raise Stopped()

    # -- phases ------------------------------------------------------------------------

    def _make_candidate(self, request: Request) -> None:
        base = cand.fetch_branch(self.checkout, self.config.remote, self.config.branch)
        try:
            candidate = cand.make_candidate(self.checkout, request, base)
        except cand.CandidateRejected as e:
            with self.store.transaction() as tx:
                self._reject(tx, request, stage="candidate", build=None, failures=(), summary=str(e))
            return
        plan = construction_plan(self.config.stages, candidate.manifest, request)
        with self.store.transaction() as tx:
            previous = tx.builds(request.id)
            reason = None
            if previous and previous[-1].detail and request.base_commit and request.base_commit != base:
                reason = previous[-1].detail
            create_build(tx, request, base, candidate.commit, plan, reason=reason)
            tx.update_request(request.id, phase=Phase.BUILDING, base_commit=base, candidate_commit=candidate.commit)
        failpoints.hit("after_candidate")

    def _latest_build(self, request: Request) -> Optional[Build]:
        with self.store.read() as tx:
            builds = tx.builds(request.id)
        return builds[-1] if builds else None

    def _build(self, request: Request, meter: Meter) -> None:
        build = self._latest_build(request)
        if build is None or build.state != BuildState.BUILDING:
            with self.store.transaction() as tx:  # no build under way: make the candidate again
                tx.update_request(request.id, phase=Phase.CANDIDATE)
            return
        if not cand.has_commit(self.checkout, build.candidate_commit):
            with self.store.transaction() as tx:
                self._end_build(tx, request, build, BuildState.FAILED, reason="its candidate commit is gone")
                tx.update_request(request.id, phase=Phase.CANDIDATE)
            return
        worktree = cand.prepare_worktree(self.checkout, build.candidate_commit)
        cancel = threading.Event()
        watching = threading.Event()
        watcher = threading.Thread(target=self._watch_cancel, args=(request.id, cancel, watching), daemon=True)
        watcher.start()
        ctx = RunContext(checkout=self.checkout, config=self.config, store=self.store, meter=meter,
                         pool_check=self.pool_check, stop=self.stop, run_bazel=self.run_bazel)
        try:
            outcome = BuildRunner(ctx, request, build, worktree, cancel).run()
        finally:
            watching.set()
            watcher.join(2)
        if outcome.state == "stopped":
            raise Stopped()
        with self.store.transaction() as tx:
            if outcome.state == "succeeded":
                self._end_build(tx, request, build, BuildState.SUCCEEDED)
                tx.update_request(request.id, phase=Phase.MERGING)
            elif outcome.state == "failed":
                self._end_build(tx, request, build, BuildState.FAILED, reason=outcome.reason, stage=outcome.stage)
                self._reject(tx, request, stage=outcome.stage, build=build, failures=outcome.failures,
                             summary=_rejection_summary(outcome.stage, outcome.failures))
            elif outcome.state == "cancelled":
                self._end_build(tx, request, build, BuildState.FAILED, reason="cancelled", stage=outcome.stage)
                self._cancelled(tx, request)
            else:
                self._end_build(tx, request, build, BuildState.FAILED,
                                reason=f"infrastructure error: {outcome.reason}", stage=outcome.stage)
        if outcome.state == "infra":
            raise InfraError(outcome.reason)
        if outcome.state == "succeeded":
            failpoints.hit("after_build")

    def _watch_cancel(self, request_id: int, cancel: threading.Event, done: threading.Event) -> None:
        while not done.wait(0.5):
            try:
                with self.store.read() as tx:
                    if tx.request(request_id).cancel_requested:
                        cancel.set()
                        return
            except Exception:
                pass

    def _merge(self, request: Request) -> None:
        remote, branch = self.config.remote, self.config.branch
        tip = cand.remote_branch(self.checkout, remote, branch)
        if tip == request.candidate_commit:
            self._pushed(request, tip)  # the push landed before the driver died
            return
        if tip != request.base_commit:
            if self._contains(tip, request.candidate_commit):
                self._pushed(request, tip)  # it landed, then the branch moved on before the driver restarted
            else:
                self._rebuild(request, tip)
            return
        failpoints.hit("before_push")
        try:
            gitutil.run(["push", "--quiet", "--", remote, f"{request.candidate_commit}:refs/heads/{branch}"],
                        cwd=self.checkout)
        except gitutil.GitError as e:
            tip = cand.remote_branch(self.checkout, remote, branch)
            if tip == request.base_commit:
                raise InfraError(f"git push to {remote} {branch} failed: {e.detail}") from None
            if tip != request.candidate_commit and not self._contains(tip, request.candidate_commit):
                self._rebuild(request, tip)
                return
        else:
            tip = request.candidate_commit
        failpoints.hit("after_push")
        self._pushed(request, tip)

    def _contains(self, tip: Optional[str], commit: str) -> bool:
        """Whether the remote branch, now at `tip`, has `commit` in its history
        (fetched first: the tip may be a commit this checkout has not seen)."""
        if tip is None:
            return False
        tip = cand.fetch_branch(self.checkout, self.config.remote, self.config.branch)
        ancestor = gitutil.run(["merge-base", "--is-ancestor", "--", commit, tip], cwd=self.checkout,
                               check=False)
        if ancestor.returncode not in (0, 1):
            raise InfraError(f"cannot tell whether {self.config.branch} contains {commit[:12]} (git merge-base: "
                             f"{ancestor.stderr.strip() or ancestor.returncode})")
        return ancestor.returncode == 0

    def _pushed(self, request: Request, tip: str) -> None:
        """Records that the branch has the candidate (at its tip, or below a
        tip `tip` that others pushed since); the next phase tags the candidate."""
        remote, branch = self.config.remote, self.config.branch
        gitutil.run(["update-ref", "--", f"refs/remotes/{remote}/{branch}", tip], cwd=self.checkout, check=False)
        build = self._latest_build(request)
        with self.store.transaction() as tx:
            tx.update_request(request.id, phase=Phase.PUSHED)
            tx.add_event(
                models.MANIFEST_UPDATED, request_id=request.id, build_id=build.id if build else None,
                data={"remote": remote, "branch": branch, "commit": request.candidate_commit,
                      "base_commit": request.base_commit, "component": request.component,
                      "version": request.version},
            )

    def _rebuild(self, request: Request, tip: Optional[str]) -> None:
        with self.store.read() as tx:
            builds = tx.builds(request.id)
        moved = f"{self.config.branch} moved from {request.base_commit[:10]} to {(tip or 'nothing')[:10]} " \
                f"during build {builds[-1].number}; rebuilt on the new tip"
        if len(builds) >= MAX_BUILDS:
            raise _Requeue(f"{self.config.branch} moved during each of {len(builds)} builds; try again later")
        self.out(f"{time.strftime('%H:%M:%S')} #{request.id} {moved}")
        with self.store.transaction() as tx:
            tx.update_build(builds[-1].id, detail=moved)
            tx.update_request(request.id, phase=Phase.CANDIDATE)

    def _tag(self, request: Request) -> None:
        name, notes = push_release_tag(self.checkout, self.config, self.store, request.candidate_commit,
                                       request=request, today=self.today())
        self._tagged(request, name, notes)

    def _tagged(self, request: Request, tag: str, notes: str) -> None:
        build = self._latest_build(request)
        with self.store.transaction() as tx:
            tx.update_request(request.id, state=RequestState.MERGED, phase=Phase.TAGGED, tag=tag,
                              finished_at=now(), detail=f"merged to {self.config.branch} and tagged {tag}")
            if not any(r.tag == tag for r in tx.releases()):  # else `convoy tag` recorded (and announced) it
                tx.insert_release(request_id=request.id, build_id=build.id if build else None, tag=tag,
                                  commit=request.candidate_commit, notes=notes)
                tx.add_event(
                    models.RELEASE_TAGGED, request_id=request.id, build_id=build.id if build else None,
                    data={"tag": tag, "commit": request.candidate_commit, "component": request.component,
                          "version": request.version, "notes": notes},
                )

    # -- endings ---------------------------------------------------------------------------

    def _end_build(self, tx, request: Request, build: Build, state: BuildState, *, reason: Optional[str] = None,
                   stage: Optional[str] = None) -> None:
        finished = now()
        tx.update_build(build.id, state=state, finished_at=finished, detail=reason)
        for row in tx.stages(build.id):
            if row.state in (StageState.WAITING, StageState.BUILDING) and state == BuildState.FAILED:
                tx.update_stage(row.id, state=StageState.SKIPPED if row.state == StageState.WAITING
                                else StageState.FAILED, finished_at=finished)
        data = {"number": build.number, "state": state.value, "duration": finished - build.started_at,
                "candidate_commit": build.candidate_commit}
        if reason:
            data["reason"] = reason
        if stage:
            data["stage"] = stage
        tx.add_event(models.BUILD_COMPLETE, request_id=request.id, build_id=build.id, data=data)
        tx.add_event(models.BUILD_SUCCESS if state == BuildState.SUCCEEDED else models.BUILD_FAIL,
                     request_id=request.id, build_id=build.id, data=data)

    def _reject(self, tx, request: Request, *, stage: Optional[str], build: Optional[Build], failures,
                summary: str) -> None:
        tx.update_request(request.id, state=RequestState.REJECTED, finished_at=now(), detail=summary)
        tx.add_event(
            models.REQUEST_REJECTED, request_id=request.id, build_id=build.id if build else None,
            data={
                "component": request.component, "version": request.version, "commit": request.commit,
                "requested_by": request.requested_by, "scope": request.configuration, "stage": stage,
                "build": build.number if build else None,
                "candidate_commit": build.candidate_commit if build else None,
                "base_commit": build.base_commit if build else request.base_commit,
                "failures": list(failures), "summary": summary,
                "logs": str(self.checkout / ".convoy" / "logs" / f"request-{request.id}"),
                "show": f"convoy show {request.id}",
            },
        )

    def _cancel(self, request: Request) -> None:
        with self.store.transaction() as tx:
            build = tx.builds(request.id)[-1] if tx.builds(request.id) else None
            if build is not None and build.state == BuildState.BUILDING:
                self._end_build(tx, request, build, BuildState.FAILED, reason="cancelled")
            self._cancelled(tx, request)

    def _cancelled(self, tx, request: Request) -> None:
        tx.update_request(request.id, state=RequestState.CANCELLED, finished_at=now(),
                          detail="cancelled while testing")
        tx.add_event(models.REQUEST_CANCELLED, request_id=request.id, data={"reason": "cancelled while testing"})

    def _infrastructure_error(self, request_id: int, reason: str) -> bool:
        """Re-queues the request (or ends it in error); returns whether it was re-queued."""
        with self.store.transaction() as tx:
            request = tx.request(request_id)
            if request.state != RequestState.TESTING:
                return False
            attempts = request.attempts + 1
            limit = self.config.infra_retries
            for build in tx.builds(request_id):  # e.g. its worktree could not be made: the build ends here
                if build.state == BuildState.BUILDING:
                    self._end_build(tx, request, build, BuildState.FAILED, reason=f"infrastructure error: {reason}")
            if attempts > limit:
                tx.update_request(request_id, state=RequestState.ERROR, phase=None, attempts=attempts,
                                  finished_at=now(), detail=reason)
                tx.add_event(models.REQUEST_ERROR, request_id=request_id,
                             data={"attempts": attempts, "limit": limit, "reason": reason})
                return False
            newer = [q for q in tx.requests([RequestState.QUEUED], component=request.component) if q.id > request_id]
            if newer:
                tx.update_request(request_id, state=RequestState.SUPERSEDED, phase=None, attempts=attempts,
                                  superseded_by=newer[-1].id, finished_at=now(), detail=reason)
                tx.add_event(models.REQUEST_SUPERSEDED, request_id=request_id,
                             data={"superseded_by": newer[-1].id, "component": request.component,
                                   "version": newer[-1].version})
                return False
            tx.update_request(request_id, state=RequestState.QUEUED, phase=None, attempts=attempts, detail=reason,
                              cancel_requested=False)
            tx.add_event(models.REQUEST_REQUEUED, request_id=request_id,
                         data={"attempts": attempts, "limit": limit, "reason": reason})
            return True


    def _internal_error(self, request_id: int, error: Exception) -> None:
        """Ends a request that raised an unexpected exception in `error`, so
        that the queue goes on; the traceback goes to a crash log. A request
        that passed its build (merging, pushed) is not ended: its push may
        have landed, so `convoy process` stops with it at its phase."""
        log = crashlog.write(state_dir(self.checkout) / "logs", error, context=f"processing request #{request_id}")
        where = f"details in {log}" if log else "no crash log could be written"
        reason = f"internal error ({crashlog.summary(error)}); a bug in convoy, {where}"
        self.internal_errors += 1
        with self.store.transaction() as tx:
            request = tx.request(request_id)
            if request.state != RequestState.TESTING:
                return
            if request.phase in (Phase.MERGING, Phase.PUSHED):
                raise StuckError(f"request #{request_id} passed its build but its {request.phase.value} step hit an "
                                 f"{reason}; it stays at that step: report the bug, then run: convoy process")
            for build in tx.builds(request_id):
                if build.state == BuildState.BUILDING:
                    self._end_build(tx, request, build, BuildState.FAILED, reason=reason)
            tx.update_request(request_id, state=RequestState.ERROR, phase=None, attempts=request.attempts + 1,
                              finished_at=now(), detail=reason)
            tx.add_event(models.REQUEST_ERROR, request_id=request_id,
                         data={"attempts": request.attempts + 1, "limit": self.config.infra_retries,
                               "reason": reason, "internal": True, "log": str(log) if log else None})
        self.out(f"convoy: #{request_id} ended in error: {reason}")


class _Requeue(InfraError):
    pass


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())


def _rejection_summary(stage: Optional[str], failures) -> str:
    parts = []
    for failure in failures:
        targets = failure.get("targets") or []
        if targets:
            what = ", ".join(
                f"{t['label']} {t['status']}" + (f" (log: {t['log_paths'][-1]})" if t.get("log_paths") else "")
                for t in targets
            )
        else:
            what = f"{failure.get('outcome')}: {failure.get('detail') or ''} (log: {failure.get('log_path')})"
        parts.append(f"in {failure.get('configuration')}: {what}")
    return f"stage {stage} failed " + "; ".join(parts) if parts else f"stage {stage} failed"


def tag_format_of(checkout: Path, config: Config) -> str:
    """convoy.yaml's release.tag_format, else the manifest's (as locked on the branch)."""
    if config.tag_format:
        return config.tag_format
    lock = cand.lock_at(checkout, f"refs/remotes/{config.remote}/{config.branch}") or {}
    return (lock.get("release") or {}).get("tag_format") or "v{year}.{month}.{n}"


def push_release_tag(checkout: Path, config: Config, store: Store, commit: str, *, request: Optional[Request],
                     today: datetime.date) -> tuple[str, str]:
    """Makes sure a release tag points at `commit` on the remote; returns
    (its name, its notes). Idempotent: a release tag already there at
    `commit` is returned as it is (never a second tag for one commit); a
    local tag left by a killed driver is pushed or replaced; a name taken
    meanwhile on the remote moves on to the next one."""
    from convoy import release

    fmt = tag_format_of(checkout, config)
    remote = config.remote
    for _ in range(3):
        tags = cand.remote_tags(checkout, remote)
        ours = sorted(name for name, target in tags.items()
                      if target == commit and release.parse_tag(fmt, name) is not None)
        if ours:
            name = ours[0]
            return name, release_notes_for(checkout, store, fmt, name, commit, tags, request=request)
        name = release.next_tag(fmt, list(tags), today)
        notes = release_notes_for(checkout, store, fmt, name, commit, tags, request=request)
        local = gitutil.run(["rev-parse", "-q", "--verify", "--end-of-options", f"refs/tags/{name}^{{commit}}"],
                            cwd=checkout, check=False).stdout.strip()
        if local and local != commit:
            gitutil.run(["tag", "-d", "--", name], cwd=checkout)  # not on the remote: a leftover of a killed driver
            local = ""
        if not local:
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False,
                                             dir=state_dir(checkout)) as f:
                f.write(notes)
            try:
                gitutil.run([*cand.identity_args(checkout), "tag", "-a", "-F", f.name, "--cleanup=verbatim", "--",
                             name, commit], cwd=checkout)
            finally:
                os.unlink(f.name)
            failpoints.hit("after_tag")
        try:
            gitutil.run(["push", "--quiet", "--", remote, f"refs/tags/{name}:refs/tags/{name}"], cwd=checkout)
        except gitutil.GitError as e:
            now_tags = cand.remote_tags(checkout, remote)
            if now_tags.get(name) == commit:
                pass
            elif name in now_tags:  # someone took the name meanwhile: the next one
                gitutil.run(["tag", "-d", "--", name], cwd=checkout, check=False)
                continue
            else:
                raise InfraError(f"git push of tag {name} to {remote} failed: {e.detail}") from None
        failpoints.hit("after_tag_push")
        return name, notes
    raise InfraError("the release tag's name was taken on the remote three times in a row")


def test_summary(store: Store, build_id: Optional[int]) -> list[str]:
    """One line per stage and configuration of a build: what Bazel said."""
    if build_id is None:
        return []
    lines = []
    with store.read() as tx:
        for stage in tx.stages(build_id):
            for task in tx.tasks(stage_id=stage.id):
                outcome = (task.outcome or task.state.value).lower().replace("_", " ")
                detail = f": {task.detail}" if task.detail else ""
                lines.append(f"{stage.name} / {task.configuration}: {outcome}{detail}")
    return lines


def release_notes_for(checkout: Path, store: Store, tag_format: str, tag: str, commit: str,
                      tags: dict[str, str], *, request: Optional[Request] = None) -> str:
    """The release notes of `tag` on `commit`: the pins that changed since
    the previous release tag (the newest one of `tag_format` that is an
    ancestor of `commit`), the request, and the test summary of the build
    that tested `commit`."""
    from convoy import release

    previous = previous_release(checkout, tag_format, commit, tags, exclude=tag)
    if previous is not None:
        old_lock, since = cand.lock_at(checkout, tags[previous]), previous
    else:  # the first release: what changed since the commit before it
        parent = gitutil.run(["rev-parse", "-q", "--verify", "--end-of-options", f"{commit}^"], cwd=checkout,
                             check=False).stdout.strip()
        old_lock = cand.lock_at(checkout, parent) if parent else None
        since = f"{parent[:12]} (no earlier release)" if parent else None
    new_lock = cand.lock_at(checkout, commit) or {}
    changes = release.pin_changes(old_lock, new_lock)
    with store.read() as tx:
        builds = [b for b in tx.builds_of_commit(commit) if b.state == BuildState.SUCCEEDED]
        if request is None and builds:
            request = tx.request(builds[-1].request_id)
    if request is not None:
        before = sorted({c.old_version for c in changes if c.component == request.component and c.old_version})
        line = (f"{request.component} {'/'.join(before) + ' -> ' if before else ''}{request.version}"
                + (f" in {request.configuration}" if request.configuration else "")
                + f" (request {request.id}, by {untrusted.printable(request.requested_by)}"
                + (f", commit {request.commit[:12]}" if request.commit else "") + ")")
    else:
        line = f"tagged by hand on {commit[:12]}"
    return release.release_notes(tag, changes, request_line=line, previous_tag=since,
                                 test_summary=test_summary(store, builds[-1].id if builds else None))


def previous_release(checkout: Path, tag_format: str, commit: str, tags: dict[str, str],
                     exclude: Optional[str] = None) -> Optional[str]:
    """The newest release tag (by its date fields and number) that is an
    ancestor of `commit` and does not point at it."""
    from convoy import release

    candidates = []
    for name, target in tags.items():
        if name == exclude or target == commit:
            continue
        parsed = release.parse_tag(tag_format, name)
        if parsed is not None:
            candidates.append((tuple(parsed.get(f, 0) for f in ("year", "month", "day", "n")), name))
    for _, name in sorted(candidates, reverse=True):  # newest first: usually the first one is it
        ancestor = gitutil.run(["merge-base", "--is-ancestor", "--", tags[name], commit], cwd=checkout, check=False)
        if ancestor.returncode == 0:
            return name
    return None
