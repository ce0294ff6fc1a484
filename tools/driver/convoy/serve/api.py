"""The JSON API's handlers: each calls the function its CLI command calls.

| route | the CLI's | who |
| --- | --- | --- |
| POST /api/requests | `convoy submit` (submit.submit; add_to_group, close_group) | a token for its components |
| GET /api/requests/{id} | `convoy show --json` (show.show) | reads |
| POST /api/requests/{id}/cancel | `convoy cancel` (cancel.cancel) | an admin token |
| POST /api/requests/{id}/retry | `convoy retry` (retry.retry) | an admin token |
| POST /api/requests/{id}/promote | `convoy promote` (promote.promote) | an admin token |
| POST /api/queue/pause, /api/queue/drain | `convoy pause`, `convoy drain` (body: optional `{"reason": ...}`) | an admin token |
| POST /api/queue/resume | `convoy resume` (resume.resume) | an admin token |
| GET /api/events?after=ID | `convoy events --json` (events.events) | reads |
| GET /api/status, /api/releases | convoy.serve.status | reads |

"reads": anyone, or any valid token with `serve.reads: token`. The
functions run in a worker thread (they call git and SQLite); their
ConvoyError keeps its one line: 422 for a submit the CLI would refuse,
404 for no such request, 409 for a cancel or retry the request's state
refuses. A submit is attributed to its token: requested_by is the token's
name, or `<requested_by> via <token name>` when the body names someone. An
admin action (cancel, retry, promote, pause, resume, drain) is done `by` the
token's name, which its event records.
"""

from __future__ import annotations

from typing import Any, Optional

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from convoy.actions import change
from convoy.actions import checkout as common
from convoy.actions import events as events_action
from convoy.actions import groups
from convoy.actions import show as show_command
from convoy.actions import status as status_command
from convoy.actions import steer
from convoy.actions import submit as submit_command
from convoy.errors import ConvoyError
from convoy.models import OpenGroup
from convoy.serve import status as status_view
from convoy.serve.auth import Token
from convoy.serve.web import JSON, ApiError, check_read, from_convoy, read_json, require_admin, require_token

TEXT_FIELDS = ("component", "version", "commit", "configuration", "archive_url", "strip_prefix", "requested_by",
               "group")
MAX_BUMPS = 50
MAX_EVENTS = 1000


def root_of(request: Request):
    return request.app.state.root


# -- submit ------------------------------------------------------------------------------


async def submit(request: Request) -> JSON:
    token = require_token(request)
    body = await read_json(request)
    unknown = sorted(set(body) - set(TEXT_FIELDS) - {"bumps", "close"})
    if unknown:
        raise ApiError(400, f"unknown field {', '.join(unknown)} (known: {', '.join(TEXT_FIELDS)}, bumps, close)")
    for name in TEXT_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ApiError(400, f"{name} must be a string")
    bumps = body.get("bumps") or []
    if not isinstance(bumps, list) or not all(isinstance(b, str) for b in bumps) or len(bumps) > MAX_BUMPS:
        raise ApiError(400, f"bumps must be a list of at most {MAX_BUMPS} strings COMPONENT=VERSION[@COMMIT]")
    close = body.get("close", False)
    if not isinstance(close, bool):
        raise ApiError(400, "close must be true or false")
    args = submit_command.BumpArgs(
        component=body.get("component"), version=body.get("version"), commit=body.get("commit"),
        configuration=body.get("configuration"), archive_url=body.get("archive_url"),
        strip_prefix=body.get("strip_prefix"), requested_by=attributed(body.get("requested_by"), token))
    group = body.get("group")
    try:
        _check_components(token, args, bumps)
        if group is None and close:
            raise ConvoyError("close needs group, the open group to queue")
        if group is not None and not close:
            return await run_in_threadpool(_add_to_group, root_of(request), group, args, bumps)
        if group is not None:
            if args.component or args.version or bumps:
                raise ConvoyError(f"close queues group '{group}' as it is and takes no bump; add the bump first, "
                                  "then close the group")
            queued = await run_in_threadpool(
                groups.close_group, root_of(request), group, requested_by=args.requested_by,
                check=lambda held: _check_group(token, held))
        else:
            queued = await run_in_threadpool(submit_command.submit, root_of(request), args, bumps)
    except ConvoyError as e:
        raise from_convoy(422, e) from None
    return await run_in_threadpool(_queued, root_of(request), *queued)


def attributed(requested_by: Optional[str], token: Token) -> str:
    """Who asked: the token's name (never its value), and whom the body names."""
    if requested_by is None or requested_by == token.name:
        return token.name
    return f"{requested_by} via {token.name}"


def _check_components(token: Token, args: submit_command.BumpArgs, bumps: list[str]) -> None:
    """403 unless the token may submit for every component the submit names."""
    names = [args.component] if args.component else []
    names += [submit_command.parse_bump(text).component for text in bumps]  # ConvoyError: 422
    for name in names:
        if not token.may_submit(name):
            raise ApiError(403, f"token {token.name} may not submit for {name} (it may for: "
                                f"{', '.join(token.components) or 'nothing'})")


def _check_group(token: Token, group: OpenGroup) -> None:
    for bump in group.bumps:
        if not token.may_submit(bump.component):
            raise ApiError(403, f"token {token.name} may not close group '{group.name}': it bumps "
                                f"{bump.component}")


def _add_to_group(root, group: str, args, bumps) -> JSON:
    held, added = groups.add_to_group(root, group, args, bumps)
    return JSON({"group": group, "state": "open", "added": [b.to_dict() for b in added],
                 "bumps": [b.to_dict() for b in held.bumps]}, status_code=202)


def _queued(root, request, existing: bool, superseded: list[int]) -> JSON:
    shown = show_command.show(root, request.id)["request"]
    return JSON({"id": request.id, "state": request.state.value, "existing": existing, "superseded": superseded,
                 "request": shown}, status_code=200 if existing else 201)


# -- one request ---------------------------------------------------------------------------


def _request_id(request: Request) -> int:
    try:
        return common.request_id("show", [request.path_params["id"]])
    except ConvoyError as e:
        raise from_convoy(400, e) from None


def _not_found(error: ConvoyError, request_id: int) -> bool:
    return str(error) == str(common.not_found(request_id))


async def show(request: Request) -> JSON:
    check_read(request)
    request_id = _request_id(request)
    try:
        return JSON(await run_in_threadpool(_show, root_of(request), request_id))
    except ConvoyError as e:
        raise from_convoy(404, e) from None


def _show(root, request_id: int) -> dict[str, Any]:
    if not common.has_store(root):
        raise common.not_found(request_id)
    return show_command.show(root, request_id)


async def cancel(request: Request) -> JSON:
    return await _change(request, "cancel requests", change.cancel)


async def retry(request: Request) -> JSON:
    return await _change(request, "retry requests", change.retry)


async def promote(request: Request) -> JSON:
    return await _change(request, "promote requests", change.promote)


async def _change(request: Request, what: str, function) -> JSON:
    token = require_admin(request, what)
    request_id = _request_id(request)
    try:
        message = await run_in_threadpool(function, root_of(request), request_id, by=token.name)
    except ConvoyError as e:
        raise from_convoy(404 if _not_found(e, request_id) else 409, e) from None
    shown = await run_in_threadpool(show_command.show, root_of(request), request_id)
    request.app.state.log.info("%s by token %s: %s", what.split()[0], token.name, message)
    return JSON({"id": request_id, "message": message, "request": shown["request"]})


# -- steering the queue -------------------------------------------------------------------------


async def pause(request: Request) -> JSON:
    return await _steer(request, "pause the queue", steer.pause, reason=True)


async def drain(request: Request) -> JSON:
    return await _steer(request, "drain the queue", steer.drain, reason=True)


async def resume(request: Request) -> JSON:
    return await _steer(request, "resume the queue", steer.resume, reason=False)


async def _steer(request: Request, what: str, function, *, reason: bool) -> JSON:
    """An admin action on the whole queue, by the token's name; 200 with its one line and the control state
    (also when it changed nothing: the queue was in that state already)."""
    token = require_admin(request, what)
    known = ("reason",) if reason else ()
    body = await read_json(request) if await _has_body(request) else {}
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise ApiError(400, f"unknown field {', '.join(unknown)} (known: {', '.join(known) or 'none'})")
    if body.get("reason") is not None and not isinstance(body["reason"], str):
        raise ApiError(400, "reason must be a string")
    extra = {"reason": body.get("reason")} if reason else {}
    try:
        message = await run_in_threadpool(lambda: function(root_of(request), by=token.name, **extra))
    except ConvoyError as e:
        raise from_convoy(422, e) from None
    held = await run_in_threadpool(status_command.queue_control, root_of(request))
    request.app.state.log.info("%s by token %s: %s", what.split()[0], token.name, message)
    return JSON({"message": message, "control": held.to_dict()})


async def _has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers


# -- the queue, its events and its releases ----------------------------------------------------


def _int_param(request: Request, name: str, default: Optional[int], *, low: int, high: int) -> Optional[int]:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not low <= int(text) <= high:
        raise ApiError(400, f"{name} must be a number from {low} to {high}")
    return int(text)


async def events(request: Request) -> JSON:
    check_read(request)
    after = _int_param(request, "after", 0, low=0, high=common.MAX_ID)
    request_id = _int_param(request, "request", None, low=1, high=common.MAX_ID)
    limit = _int_param(request, "limit", MAX_EVENTS, low=1, high=MAX_EVENTS)
    root = root_of(request)
    try:
        found = await run_in_threadpool(events_action.events, root, request_id=request_id, after=after,
                                        limit=limit)
    except ConvoyError as e:
        raise from_convoy(404, e) from None
    data = [e.to_dict() for e in found]
    return JSON({"events": data, "last_id": data[-1]["id"] if data else after})


async def status(request: Request) -> JSON:
    check_read(request)
    state = request.app.state
    return JSON(await run_in_threadpool(status_view.status, state.root, state.config))


async def releases(request: Request) -> JSON:
    check_read(request)
    limit = _int_param(request, "limit", 50, low=1, high=1000)
    return JSON(await run_in_threadpool(status_view.releases, root_of(request), limit))
