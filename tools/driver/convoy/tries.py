"""Every change of a try's state, each with the event that reports it.

A try (`convoy try`, Cocoon's presubmit) asks whether commit C of a
component would pass integration against the branch's current manifest:
its candidate is built and its stages run like a request's, but nothing is
merged or tagged, and main, its manifest, its lock and the tags never move.

A try is a row of the requests table with kind "try" (models.KIND_TRY): it
shares the request's record, builds, stages, tasks and events (so `convoy
show`, the logs and the event stream describe it as they describe a
request), but `tx.requests()` never returns it unless asked for tries, so
the merge queue never picks, supersedes or counts it. Its states:

    queued -> testing -> passed | failed | error
       ^---------/  a request arrived (or an infrastructure error): queued again

Like convoy.requests, each function takes an open write transaction and adds
its event (TRY_QUEUED, TRY_START, TRY_PASSED, TRY_FAILED) in it; the runner
is convoy.queue.tries.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from convoy import models
from convoy import requests
from convoy.models import KIND_TRY, Build, BuildState, Phase, Request, RequestState
from convoy.store import Transaction, now


def _data(t: Request, **extra: Any) -> dict[str, Any]:
    return {"try": t.id, "component": t.component, "version": t.version, "commit": t.commit,
            "requested_by": t.requested_by, **extra}


def queue(tx: Transaction, submission: requests.Submission) -> tuple[Request, bool]:
    """Queues a try of `submission`'s bump, or finds the same one waiting or
    running. Returns (the try, whether it was there already)."""
    for waiting in tx.requests([RequestState.QUEUED, RequestState.TESTING], kind=KIND_TRY):
        if submission.same_as(waiting):
            return waiting, True
    t = tx.insert_request(**asdict(submission), kind=KIND_TRY)
    tx.add_event(models.TRY_QUEUED, request_id=t.id, data=_data(t))
    return t, False


def waiting(tx: Transaction) -> list[Request]:
    """The tries to run, a running one (left by a stopped driver) first, then the oldest queued."""
    return tx.requests([RequestState.TESTING], kind=KIND_TRY) + tx.requests([RequestState.QUEUED], kind=KIND_TRY)


def start(tx: Transaction, t: Request, *, base_commit: str) -> Request:
    """The try is taken: its candidate is made on `base_commit` (the branch's tip)."""
    started = tx.update_request(t.id, state=RequestState.TESTING, phase=Phase.CANDIDATE, base_commit=base_commit,
                                detail=None, cancel_requested=False)
    tx.add_event(models.TRY_START, request_id=t.id, data=_data(t, base_commit=base_commit, attempt=t.attempts + 1))
    return started


def building(tx: Transaction, t: Request, *, candidate_commit: str) -> None:
    tx.update_request(t.id, phase=Phase.BUILDING, candidate_commit=candidate_commit)


def passed(tx: Transaction, t: Request, build: Build) -> None:
    """Every stage passed on the candidate; nothing is merged."""
    requests.end_build(tx, t, build, BuildState.SUCCEEDED)
    detail = f"passed every stage on {build.base_commit[:10]} (nothing merged)"
    tx.update_request(t.id, state=RequestState.PASSED, phase=None, finished_at=now(), detail=detail)
    tx.add_event(models.TRY_PASSED, request_id=t.id, build_id=build.id,
                 data=_data(t, base_commit=build.base_commit, candidate_commit=build.candidate_commit,
                            show=f"convoy try --show={t.id}"))


def failed(tx: Transaction, t: Request, build: Optional[Build], *, stage: Optional[str], summary: str,
           failures: Sequence[Mapping[str, Any]] = (), logs: Optional[Path] = None) -> None:
    """The candidate failed `stage` (or could not be made: `build` None)."""
    if build is not None and build.state == BuildState.BUILDING:
        requests.end_build(tx, t, build, BuildState.FAILED, reason=summary, stage=stage)
    tx.update_request(t.id, state=RequestState.FAILED, phase=None, finished_at=now(), detail=summary)
    tx.add_event(models.TRY_FAILED, request_id=t.id, build_id=build.id if build else None,
                 data=_data(t, stage=stage, summary=summary, failures=[dict(f) for f in failures],
                            base_commit=build.base_commit if build else t.base_commit,
                            candidate_commit=build.candidate_commit if build else None,
                            logs=str(logs) if logs else None, show=f"convoy try --show={t.id}"))


def requeue(tx: Transaction, t: Request, build: Optional[Build], *, reason: str, attempt: bool = False) -> None:
    """Back to waiting (a request arrived: `reason` says which; or, with
    `attempt`, an infrastructure error that counts against the retries);
    its build, if one runs, ends failed with `reason`. It runs again later,
    on the branch's tip then."""
    if build is not None and build.state == BuildState.BUILDING:
        requests.end_build(tx, t, build, BuildState.FAILED, reason=reason)
    attempts = t.attempts + 1 if attempt else t.attempts
    tx.update_request(t.id, state=RequestState.QUEUED, phase=None, detail=reason, attempts=attempts,
                      cancel_requested=False)
    tx.add_event(models.TRY_QUEUED, request_id=t.id, data=_data(t, reason=reason, again=True))


def error(tx: Transaction, t: Request, build: Optional[Build], *, reason: str) -> None:
    """The try cannot be run (its retries spent, or a bug): it ends in error."""
    if build is not None and build.state == BuildState.BUILDING:
        requests.end_build(tx, t, build, BuildState.FAILED, reason=reason)
    tx.update_request(t.id, state=RequestState.ERROR, phase=None, finished_at=now(), detail=reason,
                      attempts=t.attempts + 1)
    tx.add_event(models.TRY_FAILED, request_id=t.id, data=_data(t, error=True, summary=reason))


def cancelled(tx: Transaction, t: Request, build: Optional[Build]) -> None:
    """`convoy cancel` asked for it while it ran."""
    if build is not None and build.state == BuildState.BUILDING:
        requests.end_build(tx, t, build, BuildState.FAILED, reason="cancelled")
    requests.cancelled(tx, t)
