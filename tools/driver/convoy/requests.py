"""Every change of a request's state, each with the event that reports it.

A request moves through these states (see `models.RequestState`):

    queued -> testing (phase candidate -> building -> merging -> pushed) -> merged
                      \\-> rejected | cancelled | error | superseded | queued again

This module is the one place that writes them. Each function takes an open
write transaction (`store.transaction()`), changes the rows and adds the
event in it, so that a change and its report commit together:

    with store.transaction() as tx:
        request, existing, superseded = requests.queue(tx, submission)
    with store.transaction() as tx:
        requests.cancel(tx, tx.request(7))       # CancelOutcome.CANCELLED, or .REQUESTED while testing

Commands (`convoy submit`, `cancel`, `retry`, `tag`), the queue
(`convoy.queue`) and, later, the HTTP service call these functions; none of
them calls `tx.update_request` for a state change itself. Checks that
refuse a change (cancel a merged request, retry a queued one) raise a
one-line ConvoyError that says what to do.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from convoy import models
from convoy import untrusted
from convoy.errors import ConvoyError
from convoy.models import Build, BuildState, Phase, Request, RequestBump, RequestState, StageState
from convoy.store import Transaction, now


@dataclass(frozen=True)
class Submission:
    """A checked request for a bump (what `convoy submit` validated); a
    group's other bumps, each checked the same way, in `bumps`."""

    component: str
    version: str
    commit: Optional[str]
    commit_given: bool
    archive_url: Optional[str]
    strip_prefix: Optional[str]
    configuration: Optional[str]
    requested_by: str
    bumps: tuple[RequestBump, ...] = ()
    priority: int = models.PRIORITY_NORMAL  # convoy submit --priority

    @property
    def all_bumps(self) -> tuple[RequestBump, ...]:
        """Every bump, this primary one first."""
        return (RequestBump.of(self), *self.bumps)

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(b.component for b in self.all_bumps)

    def same_as(self, request: Request) -> bool:
        """Whether `request` asks for exactly these bumps (in this order)."""
        mine, theirs = self.all_bumps, request.all_bumps
        return len(mine) == len(theirs) and all(
            (b.component, b.commit, b.version, b.configuration, b.archive_url)
            == (o.component, o.commit, o.version, o.configuration, o.archive_url)
            for b, o in zip(mine, theirs))


class CancelOutcome(enum.Enum):
    CANCELLED = "cancelled"  # it was queued: ended at once
    REQUESTED = "requested"  # it is being tested: the running `convoy process` ends it


def bumps_data(request: Request) -> dict[str, Any]:
    """`{"bumps": [...]}`: a group's bumps beyond its primary one, for an
    event's data (nothing for a single bump: the data stays as it was)."""
    if not request.bumps:
        return {}
    bumps = []
    for bump in request.bumps:
        data = bump.to_dict()
        data.pop("commit_given")
        if bump.archive_url:
            data["archive_url"] = untrusted.redact_userinfo(bump.archive_url)
        bumps.append(data)
    return {"bumps": bumps}


def _queued_data(request: Request, **extra: Any) -> dict[str, Any]:
    return {"component": request.component, "version": request.version, "commit": request.commit,
            "configuration": request.configuration, "requested_by": request.requested_by,
            "archive_url": untrusted.redact_userinfo(request.archive_url) if request.archive_url else None,
            **bumps_data(request), **extra}


def in_queue_order(tx: Transaction) -> list[Request]:
    """The queued requests in the order the queue takes them: highest priority first, then oldest."""
    return sorted(tx.requests([RequestState.QUEUED]), key=lambda r: (-r.priority, r.id))


def priority_name(priority: int) -> str:
    """"high" or "normal" (convoy status; a value between them reads as the nearest below)."""
    return "high" if priority >= models.PRIORITY_HIGH else "normal"


def touching(tx: Transaction, components: Sequence[str], states=(RequestState.QUEUED,)) -> list[Request]:
    """The requests (queued, by default) that bump any of `components`, oldest first."""
    wanted = set(components)
    return [r for r in tx.requests(list(states)) if wanted & set(r.components)]


# -- entering and leaving the queue ------------------------------------------------------


def queue(tx: Transaction, submission: Submission) -> tuple[Request, bool, list[int]]:
    """Queues the submission, or finds the same bumps already queued; a new
    request supersedes the older queued ones of every component it bumps
    (a single request or a group alike). Returns (the request, whether it
    was already queued, the ids it superseded)."""
    queued = touching(tx, submission.components)
    for request in queued:
        if submission.same_as(request):
            return request, True, []
    request = tx.insert_request(**asdict(submission))
    high = {"priority": priority_name(request.priority)} if request.priority != models.PRIORITY_NORMAL else {}
    tx.add_event(models.REQUEST_QUEUED, request_id=request.id, data=_queued_data(request, **high))
    for old in queued:
        supersede(tx, old, request, detail=f"superseded by #{request.id}")
    return request, False, [old.id for old in queued]


def supersede(tx: Transaction, request: Request, newer: Request, *, detail: str,
              attempts: Optional[int] = None) -> None:
    """Ends `request` as superseded by `newer` (a newer request of its component)."""
    fields: dict[str, Any] = {"attempts": attempts} if attempts is not None else {}
    tx.update_request(request.id, state=RequestState.SUPERSEDED, phase=None, superseded_by=newer.id,
                      finished_at=now(), detail=detail, **fields)
    tx.add_event(models.REQUEST_SUPERSEDED, request_id=request.id,
                 data={"superseded_by": newer.id, "component": newer.component, "version": newer.version,
                       **bumps_data(newer)})


def newer_queued(tx: Transaction, request: Request) -> Optional[Request]:
    """The newest queued request made after `request` that bumps one of its components, if any."""
    newer = [q for q in touching(tx, request.components) if q.id > request.id]
    return newer[-1] if newer else None


CANCEL_BY = "cancel requested by "  # a testing request's detail until the queue ends it (`cancelled`)


def cancel(tx: Transaction, request: Request, *, by: str = "unknown") -> CancelOutcome:
    """`convoy cancel`: a queued request ends at once; a testing one is
    asked to stop (before its build passed); anything else is refused.
    REQUEST_CANCELLED names `by` (for a testing one, when the queue ends it)."""
    if request.state == RequestState.QUEUED:
        tx.update_request(request.id, state=RequestState.CANCELLED, finished_at=now(), detail="cancelled")
        tx.add_event(models.REQUEST_CANCELLED, request_id=request.id,
                     data={"reason": "cancelled while queued", "by": by})
        return CancelOutcome.CANCELLED
    if request.state == RequestState.TESTING:
        if request.phase in (None, Phase.CANDIDATE, Phase.BUILDING):
            if not request.cancel_requested:
                tx.update_request(request.id, cancel_requested=True, detail=CANCEL_BY + by)
            return CancelOutcome.REQUESTED
        raise ConvoyError(
            f"request #{request.id} ({request.title}) passed its build and is being merged "
            f"({request.phase.value}); it cannot be cancelled now. To undo it, submit the previous version"
        )
    raise ConvoyError(
        f"request #{request.id} ({request.title}) is already {request.state.value}; only a queued or testing "
        "request can be cancelled"
    )


def retry(tx: Transaction, request: Request, *, by: str = "unknown") -> Request:
    """`convoy retry`: a rejected or errored request is queued again, its
    attempts from zero (REQUEST_QUEUED names `by`); refused when a newer one
    of its component is queued."""
    if request.state not in (RequestState.REJECTED, RequestState.ERROR):
        raise ConvoyError(
            f"request #{request.id} ({request.title}) is {request.state.value}; only a rejected or errored "
            "request can be retried"
        )
    newer = newer_queued(tx, request)
    if newer is not None:
        raise ConvoyError(
            f"request #{newer.id} ({newer.title}) is queued and newer; retrying #{request.id} would be "
            "superseded by it at once"
        )
    queued = tx.update_request(request.id, state=RequestState.QUEUED, phase=None, attempts=0, detail=None,
                               finished_at=None, cancel_requested=False)
    tx.add_event(models.REQUEST_QUEUED, request_id=request.id,
                 data=_queued_data(request, retry_of=request.state.value, by=by))
    return queued


def promote(tx: Transaction, request: Request, *, by: str) -> bool:
    """`convoy promote`: the request becomes high priority (REQUEST_PROMOTED
    names `by`). A queued one goes first (in a window, ahead of every
    lower-priority candidate that has not passed its build, which is built
    again on it); a testing one stays where it is. Returns False if it was
    high priority already (nothing written); anything else is refused."""
    if request.is_try or request.state not in (RequestState.QUEUED, RequestState.TESTING):
        what = "a try (it runs when the queue is idle)" if request.is_try else f"already {request.state.value}"
        raise ConvoyError(f"request #{request.id} ({request.title}) is {what}; only a queued request can be "
                          "promoted; see the queue with: convoy status")
    if request.priority >= models.PRIORITY_HIGH:
        return False
    tx.update_request(request.id, priority=models.PRIORITY_HIGH)
    tx.add_event(models.REQUEST_PROMOTED, request_id=request.id,
                 data={"by": by, "reason": None, "priority": "high", "state": request.state.value,
                       "component": request.component, "version": request.version})
    return True


# -- the queue's steps -----------------------------------------------------------------------


def start(tx: Transaction, request: Request) -> Request:
    """The queue takes `request`: it is tested from its candidate phase."""
    return tx.update_request(request.id, state=RequestState.TESTING, phase=Phase.CANDIDATE, detail=None)


def building(tx: Transaction, request: Request, *, base_commit: str, candidate_commit: str) -> None:
    """Its candidate is made (on `base_commit`) and its build created."""
    tx.update_request(request.id, phase=Phase.BUILDING, base_commit=base_commit, candidate_commit=candidate_commit)


def remake_candidate(tx: Transaction, request: Request) -> None:
    """Back to the candidate phase: the candidate is made again (the branch
    moved, or the build or its commit is gone)."""
    tx.update_request(request.id, phase=Phase.CANDIDATE)


def passed(tx: Transaction, request: Request, build: Build) -> None:
    """Every stage passed: the build ends and the request goes to merging."""
    end_build(tx, request, build, BuildState.SUCCEEDED)
    tx.update_request(request.id, phase=Phase.MERGING)


def pushed(tx: Transaction, request: Request, build: Optional[Build], *, remote: str, branch: str) -> None:
    """The branch has the candidate: the manifest is updated; the tag is next."""
    tx.update_request(request.id, phase=Phase.PUSHED)
    tx.add_event(
        models.MANIFEST_UPDATED, request_id=request.id, build_id=build.id if build else None,
        data={"remote": remote, "branch": branch, "commit": request.candidate_commit,
              "base_commit": request.base_commit, "component": request.component, "version": request.version,
              **bumps_data(request)},
    )


def merged(tx: Transaction, request: Request, build: Optional[Build], *, tag: str, notes: str, branch: str) -> None:
    """The release tag is on the remote: the request is final, the release recorded."""
    tx.update_request(request.id, state=RequestState.MERGED, phase=Phase.TAGGED, tag=tag, finished_at=now(),
                      detail=f"merged to {branch} and tagged {tag}")
    record_release(tx, request, build, tag=tag, commit=request.candidate_commit, notes=notes)


def repair_tagged(tx: Transaction, request: Request) -> None:
    """A request left at phase `tagged` but not final (a half-written state): final."""
    tx.update_request(request.id, state=RequestState.MERGED, finished_at=now())


def record_release(tx: Transaction, request: Optional[Request], build: Optional[Build], *, tag: str, commit: str,
                   notes: str, by_hand: bool = False) -> bool:
    """Records the release `tag` and announces it (RELEASE_TAGGED), once:
    False if it was already recorded (the queue and `convoy tag` may both
    see the same tag)."""
    if any(r.tag == tag for r in tx.releases()):
        return False
    request_id, build_id = (request.id if request else None), (build.id if build else None)
    tx.insert_release(request_id=request_id, build_id=build_id, tag=tag, commit=commit, notes=notes)
    data: dict[str, Any] = {"tag": tag, "commit": commit, "notes": notes}
    if request is not None:
        data.update(component=request.component, version=request.version, **bumps_data(request))
    if by_hand:
        data["by_hand"] = True
    tx.add_event(models.RELEASE_TAGGED, request_id=request_id, build_id=build_id, data=data)
    return True


# -- endings ------------------------------------------------------------------------------------


def end_build(tx: Transaction, request: Request, build: Build, state: BuildState, *,
              reason: Optional[str] = None, stage: Optional[str] = None) -> None:
    """Ends a build (its waiting stages skipped, running ones failed) with
    BUILD_COMPLETE and BUILD_SUCCESS or BUILD_FAIL."""
    finished = now()
    tx.update_build(build.id, state=state, finished_at=finished, detail=reason)
    for row in tx.stages(build.id):
        if row.state in (StageState.WAITING, StageState.BUILDING) and state == BuildState.FAILED:
            tx.update_stage(row.id, state=StageState.SKIPPED if row.state == StageState.WAITING
                            else StageState.FAILED, finished_at=finished)
    data: dict[str, Any] = {"number": build.number, "state": state.value, "duration": finished - build.started_at,
                            "candidate_commit": build.candidate_commit}
    if reason:
        data["reason"] = reason
    if stage:
        data["stage"] = stage
    tx.add_event(models.BUILD_COMPLETE, request_id=request.id, build_id=build.id, data=data)
    tx.add_event(models.BUILD_SUCCESS if state == BuildState.SUCCEEDED else models.BUILD_FAIL,
                 request_id=request.id, build_id=build.id, data=data)


def end_running_builds(tx: Transaction, request: Request, *, reason: str) -> None:
    """Fails whatever build of `request` is still under way."""
    for build in tx.builds(request.id):
        if build.state == BuildState.BUILDING:
            end_build(tx, request, build, BuildState.FAILED, reason=reason)


def reject(tx: Transaction, request: Request, *, stage: Optional[str], build: Optional[Build],
           failures: Sequence[Mapping[str, Any]] = (), summary: str, logs: Path) -> None:
    """Ends `request` as rejected: its candidate failed `stage` (or could
    not be made); REQUEST_REJECTED tells the component why."""
    tx.update_request(request.id, state=RequestState.REJECTED, finished_at=now(), detail=summary)
    tx.add_event(
        models.REQUEST_REJECTED, request_id=request.id, build_id=build.id if build else None,
        data={
            "component": request.component, "version": request.version, "commit": request.commit,
            "requested_by": request.requested_by, "scope": request.configuration, "stage": stage,
            "build": build.number if build else None,
            "candidate_commit": build.candidate_commit if build else None,
            "base_commit": build.base_commit if build else request.base_commit,
            "failures": [dict(f) for f in failures], "summary": summary,
            "logs": str(logs), "show": f"convoy show {request.id}", **bumps_data(request),
        },
    )


def cancelled(tx: Transaction, request: Request) -> None:
    """Ends a testing request whose cancel was requested (by whom `cancel` kept in its detail)."""
    detail = request.detail or ""
    by = detail[len(CANCEL_BY):] if detail.startswith(CANCEL_BY) else "unknown"
    tx.update_request(request.id, state=RequestState.CANCELLED, finished_at=now(), detail="cancelled while testing")
    tx.add_event(models.REQUEST_CANCELLED, request_id=request.id, data={"reason": "cancelled while testing", "by": by})


def infrastructure_error(tx: Transaction, request: Request, reason: str, *, limit: int) -> bool:
    """Not the candidate's fault: the request goes back to the queue with
    one more attempt, is superseded by a newer queued one, or, past `limit`
    retries, ends in error. Returns whether it was queued again."""
    attempts = request.attempts + 1
    end_running_builds(tx, request, reason=f"infrastructure error: {reason}")
    if attempts > limit:
        error(tx, request, reason, attempts=attempts, limit=limit)
        return False
    newer = newer_queued(tx, request)
    if newer is not None:
        supersede(tx, request, newer, detail=reason, attempts=attempts)
        return False
    tx.update_request(request.id, state=RequestState.QUEUED, phase=None, attempts=attempts, detail=reason,
                      cancel_requested=False)
    tx.add_event(models.REQUEST_REQUEUED, request_id=request.id,
                 data={"attempts": attempts, "limit": limit, "reason": reason})
    return True


def error(tx: Transaction, request: Request, reason: str, *, attempts: int, limit: int,
          extra: Optional[Mapping[str, Any]] = None) -> None:
    """Ends `request` in error (retries spent, or a bug: `extra` says which)."""
    tx.update_request(request.id, state=RequestState.ERROR, phase=None, attempts=attempts, finished_at=now(),
                      detail=reason)
    tx.add_event(models.REQUEST_ERROR, request_id=request.id,
                 data={"attempts": attempts, "limit": limit, "reason": reason, **(extra or {})})


def passed_with(tx: Transaction, request: Request, build: Build, *, lead: bool) -> None:
    """Every stage of a candidate of several requests passed (a batch): the
    first (`lead`, whose build it is) ends the build; each goes to merging."""
    if lead:
        passed(tx, request, build)
    else:
        tx.update_request(request.id, phase=Phase.MERGING)
