"""The JSON API's tries (`convoy try`): each handler calls the function the CLI calls.

| route | the CLI's | who |
| --- | --- | --- |
| POST /api/tries | `convoy try --component --commit [--version]` (try_.submit) | a token for that component |
| GET /api/tries/{id} | `convoy try --show=ID --json` (try_.show) | reads |

As POST /api/requests: 201 with the try (200 with the same one already
waiting), 422 with the CLI's one-line message for a try it refuses (an
unknown component, a commit not on the component's remote, a malformed
commit), 403 for a token of another component; the try is attributed to
its token. GET gives 404 for an id that is not a try.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from convoy.actions import checkout as common
from convoy.actions import tries as try_command
from convoy.errors import ConvoyError
from convoy.serve.api import attributed, root_of
from convoy.serve.web import JSON, ApiError, check_read, from_convoy, read_json, require_token

FIELDS = ("component", "commit", "version", "requested_by")


async def submit(request: Request) -> JSON:
    token = require_token(request)
    body = await read_json(request)
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise ApiError(400, f"unknown field {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    for name in FIELDS:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ApiError(400, f"{name} must be a string")
    component = body.get("component")
    if component and not token.may_submit(component):
        raise ApiError(403, f"token {token.name} may not try {component} (it may for: "
                            f"{', '.join(token.components) or 'nothing'})")
    root = root_of(request)
    try:
        t, existing = await run_in_threadpool(
            try_command.submit, root, component, body.get("commit"), version=body.get("version"),
            requested_by=attributed(body.get("requested_by"), token))
    except ConvoyError as e:
        raise from_convoy(422, e) from None
    shown = await run_in_threadpool(try_command.show, root, t.id)
    return JSON({"id": t.id, "state": t.state.value, "existing": existing, "try": shown},
                status_code=200 if existing else 201)


async def show(request: Request) -> JSON:
    check_read(request)
    try:
        try_id = common.request_id("try --show", [request.path_params["id"]])
    except ConvoyError as e:
        raise from_convoy(400, e) from None
    try:
        return JSON(await run_in_threadpool(try_command.show, root_of(request), try_id))
    except ConvoyError as e:
        raise from_convoy(404, e) from None
