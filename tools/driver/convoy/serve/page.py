"""The pages of `convoy serve`: the live status page, a request's timeline, and their script and style.

    GET /                    the queue, failed requests, releases and the lab (page_html.status_page)
    GET /requests/{id}       one request: its builds' stages and tasks on a time axis
    GET /static/page.js      the one script of both pages (static/, hand-written, no build step)
    GET /static/page.css     their style

A page is rendered on the server from the JSON the API serves (the same
functions: status.status, status.releases, lab_view.lab_status, show.show),
so it is complete before any script runs; page.js then follows
/api/events/stream and re-renders what changed. Every page is sent with a
Content-Security-Policy that allows scripts, styles and connections from
this server only and no inline script or style (`PAGE_HEADERS`), so even
markup that slipped through escaping could not run. Reads follow
`serve.reads` like the API: with `serve.reads: token` a browser, which
cannot send a bearer token, gets 401 (put the page behind the proxy's login).
"""

from __future__ import annotations

from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from convoy.actions import checkout as common
from convoy.errors import ConvoyError
from convoy.serve import lab_view, page_html
from convoy.serve import status as status_view
from convoy.serve.web import ApiError, check_read
from convoy.store import now

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


async def index(request: Request) -> HTMLResponse:
    check_read(request)
    state = request.app.state
    text = await run_in_threadpool(_index, state.root, state.config)
    return HTMLResponse(text, headers=PAGE_HEADERS)


def _index(root, config) -> str:
    return page_html.status_page(status_view.status(root, config), status_view.releases(root, page_html.RELEASES_SHOWN),
                                 lab_view.lab_status(root))


async def request_page(request: Request) -> HTMLResponse:
    check_read(request)
    text = request.path_params["id"]
    try:
        request_id = common.request_id("show", [text])
    except ConvoyError as e:
        raise ApiError(400, str(e)) from None
    try:
        page = await run_in_threadpool(_request_page, request.app.state.root, request_id)
    except ConvoyError as e:
        raise ApiError(404, str(e)) from None
    return HTMLResponse(page, headers=PAGE_HEADERS)


def _request_page(root, request_id: int) -> str:
    from convoy.actions import show as show_command

    if not common.has_store(root):
        raise common.not_found(request_id)
    shown = show_command.show(root, request_id)
    with common.store(root, readonly=True) as store, store.read() as tx:
        last = tx.last_event_id()
    return page_html.request_page(shown, last, now())


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ASSETS:  # a fixed list: nothing else under static/ (or above it) is served
        raise ApiError(404, "no such file")
    body = await run_in_threadpool((STATIC / name).read_bytes)
    return Response(body, media_type=ASSETS[name], headers={"X-Content-Type-Options": "nosniff",
                                                            "Cache-Control": "no-cache"})
