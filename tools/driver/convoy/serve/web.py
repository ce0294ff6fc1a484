"""What every handler of `convoy serve` shares: its errors, the JSON it
reads and writes, and the token checks.

    body = await read_json(request)              # 415 unless JSON, 413 past the cap, 400 unless an object
    token = require_token(request)               # 401 without a valid token
    raise ApiError(403, "token ci-messages may submit for messages only, not planner")

An `ApiError` becomes `{"error": "<one line>"}` with its status (and any
extra fields); app.py installs the handler. A ConvoyError from a command's
function is the user's mistake and keeps its one line (`from_convoy`).
JSON out is ASCII (every control or non-ASCII character a \\u escape), so
no stored value can break a line of it.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from starlette.requests import Request
from starlette.responses import Response

from convoy.errors import ConvoyError
from convoy.serve.auth import Credentials, Token


class ApiError(Exception):
    """An HTTP error with a one-line message (and `extra` JSON fields)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def from_convoy(status: int, error: ConvoyError) -> ApiError:
    """The command's one-line error, as an HTTP error."""
    return ApiError(status, str(error).replace("\n", "; "))


class JSON(Response):
    """JSON as ASCII, keys in order of insertion."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return (json.dumps(content, ensure_ascii=True, indent=None, separators=(",", ":")) + "\n").encode("ascii")


def error_response(error: ApiError) -> JSON:
    headers = {"WWW-Authenticate": 'Bearer realm="convoy"'} if error.status == 401 else None
    return JSON({"error": error.message, **error.extra}, status_code=error.status, headers=headers)


def credentials(request: Request) -> Credentials:
    return request.app.state.credentials


def require_token(request: Request) -> Token:
    """The request's valid token; 401 otherwise."""
    token = credentials(request).token_of(request.headers.get("authorization"))
    if token is None:
        given = "a token that is not valid" if request.headers.get("authorization") else "no token"
        raise ApiError(401, f"{given}: send Authorization: Bearer <token> with a token from convoy.yaml's serve "
                            "section")
    return token


def check_read(request: Request) -> Optional[Token]:
    """Reads are open unless `serve.reads: token`; then a valid token (401)."""
    if credentials(request).reads_need_token:
        return require_token(request)
    return None


def require_admin(request: Request, what: str) -> Token:
    token = require_token(request)
    if not token.admin:
        raise ApiError(403, f"token {token.name} may not {what}: only an admin token may (admin: true in "
                            "convoy.yaml's serve.tokens)")
    return token


async def read_body(request: Request) -> bytes:
    """The body, at most the app's `max_body` bytes (413 past it; a
    Content-Length above it is refused before anything is read)."""
    limit = request.app.state.max_body
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is larger than {limit} bytes (serve.max_body_kib)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is larger than {limit} bytes (serve.max_body_kib)")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, *, raw: Optional[bytes] = None) -> dict[str, Any]:
    """The body as a JSON object: 415 unless Content-Type says JSON, 400
    unless it is one (UTF-8, no NaN), 413 past the cap."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, f"Content-Type must be application/json, not {kind or 'none'}")
    body = await read_body(request) if raw is None else raw
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, f"the body is not JSON ({type(e).__name__}); send a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the body must be a JSON object, not {type(data).__name__}")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
