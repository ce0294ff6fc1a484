"""The Starlette application of `convoy serve`: its routes, its errors and its access log.

    app = make_app(root, config, credentials)      # an ASGI app; commands/serve.py runs it on uvicorn

Every route is a handler of api.py, tries.py, logs.py, lab_view.py, stream.py,
webhooks.py or page.py (the status page and a request's timeline). An ApiError
becomes `{"error": "<one line>"}` with its status; Starlette's own 404 and
405 get the same shape. Anything else raised by a handler is a bug: its
traceback goes to the log and a crash log (convoy.crashlog, in
.convoy/logs), and the client gets 500 with `{"error": "internal error;
details in the server's log"}` and nothing of the exception.

The access log is this module's (uvicorn's is off): one line a request,
`METHOD path status milliseconds`, the path without its query string, and
never a header, so no token or signature reaches it.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from convoy import crashlog
from convoy.config import Config
from convoy.serve import api, lab_view, logs, page, stream, tries, webhooks
from convoy.serve.auth import Credentials
from convoy.serve.web import JSON, ApiError, error_response
from convoy.store import state_dir
from convoy.untrusted import printable

ROUTES = [
    Route("/", page.index, methods=["GET"]),
    Route("/requests/{id}", page.request_page, methods=["GET"]),
    Route("/static/{name}", page.asset, methods=["GET"]),
    Route("/api/requests", api.submit, methods=["POST"]),
    Route("/api/requests/{id}", api.show, methods=["GET"]),
    Route("/api/requests/{id}/cancel", api.cancel, methods=["POST"]),
    Route("/api/requests/{id}/retry", api.retry, methods=["POST"]),
    Route("/api/requests/{id}/promote", api.promote, methods=["POST"]),
    Route("/api/queue/pause", api.pause, methods=["POST"]),
    Route("/api/queue/resume", api.resume, methods=["POST"]),
    Route("/api/queue/drain", api.drain, methods=["POST"]),
    Route("/api/requests/{id}/logs/{task_id}", logs.tail, methods=["GET"]),
    Route("/api/tries", tries.submit, methods=["POST"]),
    Route("/api/tries/{id}", tries.show, methods=["GET"]),
    Route("/api/status", api.status, methods=["GET"]),
    Route("/api/events", api.events, methods=["GET"]),
    Route("/api/events/stream", stream.stream, methods=["GET"]),
    Route("/api/releases", api.releases, methods=["GET"]),
    Route("/api/lab", lab_view.lab, methods=["GET"]),
    Route("/webhooks/github", webhooks.github, methods=["POST"]),
    Route("/webhooks/gitlab", webhooks.gitlab, methods=["POST"]),
]


def make_app(root: Path, config: Config, credentials: Credentials, *, log: logging.Logger | None = None) -> Starlette:
    """The app serving the checkout `root` with `config`'s serve section and `credentials`."""
    app = Starlette(routes=ROUTES, exception_handlers={
        ApiError: _api_error, HTTPException: _http_error, Exception: _crash,
    })
    app.state.root = root
    app.state.config = config
    app.state.credentials = credentials
    app.state.max_body = config.serve.max_body_bytes
    app.state.log = log or logging.getLogger("convoy.serve")
    app.add_middleware(AccessLog, log=app.state.log)
    return app


async def _api_error(request: Request, error: ApiError) -> JSON:
    return error_response(error)


async def _http_error(request: Request, error: HTTPException) -> JSON:
    message = {404: "no such endpoint; see docs/api.md", 405: "method not allowed here; see docs/api.md"}.get(
        error.status_code, str(error.detail))
    return JSON({"error": message}, status_code=error.status_code, headers=error.headers)


async def _crash(request: Request, error: Exception) -> JSON:
    log = request.app.state.log
    where = None
    try:
        where = crashlog.write(state_dir(request.app.state.root) / "logs", error, context="convoy serve",
                               argv=[request.method, request.url.path])
    finally:
        log.error("internal error (%s) in %s %s; a bug in convoy, details in %s", crashlog.summary(error),
                  request.method, printable(request.url.path), where or "no crash log", exc_info=where is None)
    return JSON({"error": "internal error; a bug in convoy, details in the server's log"}, status_code=500)


class AccessLog:
    """ASGI middleware: one log line per HTTP request (method, path, status, milliseconds)."""

    def __init__(self, app, log: logging.Logger) -> None:
        self.app, self.log = app, log

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.monotonic(), [0]

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:  # a bug: ServerErrorMiddleware, outside this one, answers 500
            status[0] = status[0] or 500
            raise
        finally:
            self.log.info("%s %s %d %.0f ms", scope["method"], printable(scope["path"])[:300], status[0],
                          (time.monotonic() - started) * 1000)


def configure_logging(stream=None) -> logging.Logger:
    """convoy serve's log: `convoy serve: <message>` lines on stderr."""
    log = logging.getLogger("convoy.serve")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s convoy serve: %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    return log
