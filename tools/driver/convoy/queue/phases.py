"""The steps of one request in `testing`, one per phase, each safe to run again.

| phase | step | if the driver died during it |
| --- | --- | --- |
| candidate | make the candidate commit on the base the queue mode gives, create the build | made again from scratch (the worktree is reset) |
| building | run the construction plan (convoy.pipeline) | the same candidate again; finished tasks kept, interrupted ones re-run |
| merging | push the candidate to the branch (fast-forward only) | the remote decides: at the candidate, or at a tip that contains it -> pushed; at the base -> push; elsewhere -> rebuild on the new tip |
| pushed | assemble the release, make and push the (signed) tag, publish the release (convoy.release, convoy.publish) | a tag on the remote at the candidate is recorded, its assembled release published; else one is made |

`Steps` knows nothing of which request runs next or on which base: the
queue (`convoy.queue.window`, with its mode's policy) decides that and calls these steps.
Every state change goes through `convoy.requests`.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Optional, Sequence

from convoy import artifacts
from convoy import candidate as cand
from convoy import diskcache
from convoy import failpoints
from convoy import gitutil
from convoy import release
from convoy import requests
from convoy.config import Config
from convoy.errors import ConvoyError, InfraError
from convoy.lock import changed_configurations
from convoy.models import Build, BuildState, Request
from convoy.publish import Publisher
from convoy.pipeline import BuildResult, BuildRunner, RunContext, construction_plan, create_build
from convoy.lab.stage import PoolCheck, lab_pool_check
from convoy.store import Store
from convoy.tasks import LOGS_DIR
from convoy.timing import Meter

MAX_BUILDS = 5  # builds of one request in a row (the branch kept moving): then an infrastructure error

log = logging.getLogger("convoy.queue.phases")


class Stopped(Exception):
    """The driver was asked to stop; the request resumes at the next start."""


class StuckError(ConvoyError):
    """A merge or tag step keeps failing: stop, leaving the request at its phase."""


class Requeue(InfraError):
    """An infrastructure error that re-queues even a request past its build."""


@dataclass
class QueueContext:
    """What the queue's steps work with."""

    checkout: Path
    config: Config
    store: Store
    out: Callable[[str], None] = print
    stop: threading.Event = field(default_factory=threading.Event)  # the driver is shutting down
    pool_check: Optional[PoolCheck] = lab_pool_check  # None: no lab (check_pools stages run plainly)
    run_bazel: Optional[Callable] = None  # default: convoy.bazel.run_bazel
    today: Callable[[], datetime.date] = datetime.date.today

    def logs(self, request: Request) -> Path:
        return self.checkout / LOGS_DIR / f"request-{request.id}"


class Steps:
    """The phases' steps of one request (see the module docstring)."""

    def __init__(self, ctx: QueueContext, out: Optional[Callable[[str], None]] = None,
                 fence: Callable[[], ContextManager] = contextlib.nullcontext) -> None:
        self.ctx = ctx
        self.out = out or ctx.out  # the queue's guarded progress output
        self.fence = fence  # around every push and tag: the queue's lease (convoy.queue.lock.Lease.fence)

    def latest_build(self, request: Request) -> Optional[Build]:
        with self.ctx.store.read() as tx:
            builds = tx.builds(request.id)
        return builds[-1] if builds else None

    # -- candidate ---------------------------------------------------------------------

    def make_candidate(self, request: Request, base: str, *, lane: int = 0) -> None:
        """Makes the candidate of `request` on `base` in worktree `lane`, and its build."""
        try:
            candidate = cand.make_candidate(self.ctx.checkout, request, base, lane=lane,
                                            changelog=self.ctx.config.release.changelog)
        except cand.CandidateRejected as e:
            with self.ctx.store.transaction() as tx:
                requests.reject(tx, request, stage="candidate", build=None, summary=str(e),
                                logs=self.ctx.logs(request))
            return
        plan = construction_plan(self.ctx.config.plan_stages, candidate.manifest, request,
                                 changed_configurations(candidate.previous_lock, candidate.lock))
        with self.ctx.store.transaction() as tx:
            previous = tx.builds(request.id)
            reason = None
            if previous and previous[-1].detail and request.base_commit and request.base_commit != base:
                reason = previous[-1].detail
            create_build(tx, request, base, candidate.commit, plan, reason=reason)
            requests.building(tx, request, base_commit=base, candidate_commit=candidate.commit)
        failpoints.hit("after_candidate")

    # -- building ----------------------------------------------------------------------

    def build(self, request: Request, meter: Meter, *, lane: int = 0) -> None:
        """Runs the build of the request's candidate; ends it (and the request, if it failed)."""
        build = self.latest_build(request)
        store = self.ctx.store
        if build is None or build.state != BuildState.BUILDING:
            with store.transaction() as tx:  # no build under way: make the candidate again
                requests.remake_candidate(tx, request)
            return
        if not cand.has_commit(self.ctx.checkout, build.candidate_commit):
            with store.transaction() as tx:
                requests.end_build(tx, request, build, BuildState.FAILED, reason="its candidate commit is gone")
                requests.remake_candidate(tx, request)
            return
        worktree = cand.prepare_worktree(self.ctx.checkout, build.candidate_commit, lane=lane)
        cancel, watching = threading.Event(), threading.Event()
        watcher = threading.Thread(target=self._watch_cancel, args=(request.id, cancel, watching), daemon=True)
        watcher.start()
        run = RunContext(checkout=self.ctx.checkout, config=self.ctx.config, store=store, meter=meter,
                         pool_check=self.ctx.pool_check, stop=self.ctx.stop, run_bazel=self.ctx.run_bazel, out=self.out)
        try:
            outcome = BuildRunner(run, request, build, worktree, cancel).run()
        finally:
            watching.set()
            watcher.join(2)
        self.prune_cache()
        if outcome.result == BuildResult.STOPPED:
            raise Stopped()
        with store.transaction() as tx:
            if outcome.result == BuildResult.SUCCEEDED:
                requests.passed(tx, request, build)
            elif outcome.result == BuildResult.FAILED:
                requests.end_build(tx, request, build, BuildState.FAILED, reason=outcome.reason, stage=outcome.stage)
                requests.reject(tx, request, stage=outcome.stage, build=build,
                                failures=[f.to_dict() for f in outcome.failures],
                                summary=rejection_summary(outcome.stage, outcome.failures),
                                logs=self.ctx.logs(request))
            elif outcome.result == BuildResult.CANCELLED:
                requests.end_build(tx, request, build, BuildState.FAILED, reason="cancelled", stage=outcome.stage)
                requests.cancelled(tx, request)
            else:
                requests.end_build(tx, request, build, BuildState.FAILED,
                                   reason=f"infrastructure error: {outcome.reason}", stage=outcome.stage)
        if outcome.result == BuildResult.INFRA:
            raise InfraError(outcome.reason)
        if outcome.result == BuildResult.SUCCEEDED:
            failpoints.hit("after_build")

    def prune_cache(self) -> None:
        """Keeps the shared disk cache to its size limit (convoy.diskcache) after a build; never the build's
        failure: a prune that fails is a warning."""
        try:
            pruned = diskcache.prune_configured(self.ctx.config, self.ctx.checkout)
        except Exception as e:
            log.warning("could not prune the Bazel disk cache (%s); the build goes on", e)
        else:
            if pruned is not None and pruned.files_removed:
                self.out(pruned.line())

    def _watch_cancel(self, request_id: int, cancel: threading.Event, done: threading.Event) -> None:
        while not done.wait(0.5):
            try:
                with self.ctx.store.read() as tx:
                    if tx.request(request_id).cancel_requested:
                        cancel.set()
                        return
            except Exception:
                pass

    def cancel(self, request: Request) -> None:
        """Ends a request whose cancel was asked for (before its build passed)."""
        with self.ctx.store.transaction() as tx:
            builds = tx.builds(request.id)
            if builds and builds[-1].state == BuildState.BUILDING:
                requests.end_build(tx, request, builds[-1], BuildState.FAILED, reason="cancelled")
            requests.cancelled(tx, request)

    # -- merging -------------------------------------------------------------------------

    def merge(self, request: Request, *, members: Sequence[Request] = ()) -> None:
        """Pushes the candidate to the branch if the branch is still at its base
        (`members`: the other requests of a batch's candidate, which follow `request`)."""
        checkout, remote, branch = self.ctx.checkout, self.ctx.config.remote, self.ctx.config.branch
        tip = cand.remote_branch(checkout, remote, branch)
        if tip == request.candidate_commit:
            self._pushed(request, tip, members)  # the push landed before the driver died
            return
        if tip != request.base_commit:
            if self._contains(tip, request.candidate_commit):
                self._pushed(request, tip, members)  # it landed, then the branch moved on before the driver restarted
            else:
                self._rebuild(request, tip, members)
            return
        failpoints.hit("before_push")
        try:
            with self.fence():
                gitutil.run(["push", "--quiet", "--", remote, f"{request.candidate_commit}:refs/heads/{branch}"],
                            cwd=checkout)
        except gitutil.GitError as e:
            tip = cand.remote_branch(checkout, remote, branch)
            if tip == request.base_commit:
                raise InfraError(f"git push to {remote} {branch} failed: {e.detail}") from None
            if tip != request.candidate_commit and not self._contains(tip, request.candidate_commit):
                self._rebuild(request, tip, members)
                return
        else:
            tip = request.candidate_commit
        failpoints.hit("after_push")
        self._pushed(request, tip, members)

    def _contains(self, tip: Optional[str], commit: str) -> bool:
        """Whether the remote branch, now at `tip`, has `commit` in its history
        (fetched first: the tip may be a commit this checkout has not seen)."""
        if tip is None:
            return False
        config = self.ctx.config
        tip = cand.fetch_branch(self.ctx.checkout, config.remote, config.branch)
        ancestor = gitutil.run(["merge-base", "--is-ancestor", "--", commit, tip], cwd=self.ctx.checkout,
                               check=False)
        if ancestor.returncode not in (0, 1):
            raise InfraError(f"cannot tell whether {config.branch} contains {commit[:12]} (git merge-base: "
                             f"{ancestor.stderr.strip() or ancestor.returncode})")
        return ancestor.returncode == 0

    def _pushed(self, request: Request, tip: str, members: Sequence[Request] = ()) -> None:
        """Records that the branch has the candidate (at its tip, or below a
        tip `tip` that others pushed since); the next phase tags the candidate."""
        remote, branch = self.ctx.config.remote, self.ctx.config.branch
        gitutil.run(["update-ref", "--", f"refs/remotes/{remote}/{branch}", tip], cwd=self.ctx.checkout,
                    check=False)
        build = self.latest_build(request)
        with self.ctx.store.transaction() as tx:
            for each in (request, *members):
                requests.pushed(tx, each, build, remote=remote, branch=branch)

    def _rebuild(self, request: Request, tip: Optional[str], members: Sequence[Request] = ()) -> None:
        branch = self.ctx.config.branch
        with self.ctx.store.read() as tx:
            builds = tx.builds(request.id)
        moved = f"{branch} moved from {request.base_commit[:10]} to {(tip or 'nothing')[:10]} " \
                f"during build {builds[-1].number}; rebuilt on the new tip"
        if len(builds) >= MAX_BUILDS:
            raise Requeue(f"{branch} moved during each of {len(builds)} builds; try again later")
        self.out(f"{time.strftime('%H:%M:%S')} #{request.id} {moved}")
        with self.ctx.store.transaction() as tx:
            tx.update_build(builds[-1].id, detail=moved)
            for each in (request, *members):
                requests.remake_candidate(tx, each)

    # -- pushed ------------------------------------------------------------------------------

    def tag(self, request: Request, *, members: Sequence[Request] = ()) -> None:
        """Tags the merged candidate (idempotent) and ends the request (and
        the `members` of its batch) as merged: one tag, notes naming each."""
        extra = {"requests": [request, *members]} if members else {}
        build = self.latest_build(request)
        publisher = Publisher(self.ctx.checkout, self.ctx.config, self.ctx.store, build, [request, *members])
        name, notes = release.push_release_tag(self.ctx.checkout, self.ctx.config, self.ctx.store,
                                               request.candidate_commit, request=request, today=self.ctx.today(),
                                               prepare=publisher.prepare, sign_args=publisher.sign_args(),
                                               fence=self.fence, **extra)
        where = publisher.publish(name)
        failpoints.hit("after_publish")
        self.out(f"{time.strftime('%H:%M:%S')} #{request.id} release {name} published to {where}")
        with self.ctx.store.transaction() as tx:
            for each in (request, *members):
                requests.merged(tx, each, build, tag=name, notes=notes, branch=self.ctx.config.branch)
        if build is not None:
            artifacts.discard(self.ctx.checkout, build.id)


def rejection_summary(stage: Optional[str], failures) -> str:
    """One line: the stage, and per failing configuration its failing targets and logs."""
    parts = []
    for failure in failures:
        if failure.targets:
            what = ", ".join(
                f"{t['label']} {t['status']}" + (f" (log: {t['log_paths'][-1]})" if t.get("log_paths") else "")
                for t in failure.targets
            )
        else:
            what = f"{failure.outcome}: {failure.detail or ''} (log: {failure.log_path})"
        parts.append(f"in {failure.configuration}: {what}")
    return f"stage {stage} failed " + "; ".join(parts) if parts else f"stage {stage} failed"
