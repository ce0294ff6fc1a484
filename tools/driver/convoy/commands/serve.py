"""`convoy serve`: the queue's JSON API, the forges' webhooks and a live status page, over HTTP.

    convoy serve                              # http://127.0.0.1:8080, the checkout of the current directory
    convoy serve --listen=127.0.0.1:9000 --repo=/srv/integration
    convoy serve --listen=0.0.0.0:8080        # every interface: only behind TLS and with tokens
    convoy serve --process                    # and process the queue too (no convoy process beside it)

Endpoints (docs/api.md has each with a curl example):

    POST /api/requests                 submit, as convoy submit        (a token for the component)
    GET  /api/requests/{id}            convoy show --json
    POST /api/requests/{id}/cancel     convoy cancel                   (an admin token)
    POST /api/requests/{id}/retry      convoy retry                    (an admin token)
    GET  /api/status                   every queue, its items, stages, tasks and estimates
    GET  /api/events?after=ID          convoy events --json
    GET  /api/events/stream            the same as Server-Sent Events (Last-Event-ID)
    GET  /api/releases                 tags, notes and the request behind each
    POST /webhooks/github              a tag push or a published release submits it
    POST /webhooks/gitlab              a tag push submits it
    GET  /api/requests/{id}/logs/{task_id}   the tail of a task's log (only from .convoy/logs)
    GET  /api/lab                      the lab's rig pools, busy or idle, and their health
    GET  /                             the live status page; /requests/{id}: a request's timeline

It runs in the integration checkout (or --repo) beside `convoy process
--forever` (or, with --process, runs it as a child and stops it when it
stops), on the same store: it reads with read-only snapshots and
writes through the same functions as the commands, so a request submitted
over HTTP is exactly one submitted by `convoy submit`. Tokens and the
forges' secrets come from the environment variables and the file that
convoy.yaml's `serve:` section names, never from the command line; a
missing one stops it at start with one line. It listens on 127.0.0.1
unless --listen says otherwise, logs a line per request on stderr (never
a token, a signature or a query string) and stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import socket
from pathlib import Path

from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.untrusted import printable


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    parser.string("listen", "127.0.0.1:8080", "convoy serve: HOST:PORT to listen on (port 0: any free port).")
    parser.boolean("process", False, "convoy serve: also process the queue (a child convoy process --forever), "
                   "instead of running convoy process beside it.")


GRACE_SECONDS = 3  # open event streams get this long to end at a stop
MAX_CONNECTIONS = 500


def run(opts: argparse.Namespace, args: list[str]) -> int:
    listen, repo = opts.listen, opts.repo
    common.no_arguments("serve", args)
    host, port = parse_listen(listen)
    return serve(common.checkout(repo), host, port, process=opts.process)


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets, [::1]:8080) -> (host, port); ConvoyError otherwise."""
    host, colon, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    problem = None
    if not colon or not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
        problem = "is not HOST:PORT"
    else:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if host != "localhost":
                problem = "must name an IP address (or localhost), not a host name"
    if problem:
        raise ConvoyError(f"--listen={printable(text)} {problem}; for example --listen=127.0.0.1:8080")
    return host, int(port)


def serve(root: Path, host: str, port: int, *, process: bool = False) -> int:
    """Serves the checkout `root` on host:port until stopped; returns 0.
    With `process`, a child `convoy process --forever` processes the queue
    meanwhile (convoy.serve.processor) and is stopped with the server."""
    import uvicorn  # here, not at the top: every other command imports this module for its flags

    from convoy.manifest import load_manifest
    from convoy.serve import lab_view
    from convoy.serve.app import configure_logging, make_app
    from convoy.serve.auth import load_credentials
    from convoy.serve.processor import Processor

    config = common.config(root)
    manifest = load_manifest(common.manifest_path(root))
    credentials = load_credentials(root, config.serve, tuple(manifest.components))
    with common.store(root, create=True):  # made, or migrated, before anything reads it
        pass
    sock = _listen(host, port)
    log = configure_logging()
    logging.getLogger("uvicorn.error").handlers[:] = log.handlers
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    bound = sock.getsockname()
    shown_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    github, gitlab = credentials.github_secret is not None, credentials.gitlab_token is not None
    log.info("listening on http://%s:%d for %s (reads: %s; %d tokens; GitHub webhooks %s; GitLab webhooks %s)",
             shown_host, bound[1], printable(root), config.serve.reads, len(credentials.tokens),
             "on" if github else "off", "on" if gitlab else "off")
    app = make_app(root, config, credentials, log=log)
    lab_view.look(root)  # asked at once, in the background: the first page has the lab's answer
    server = uvicorn.Server(uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", server_header=False, proxy_headers=False,
        timeout_graceful_shutdown=GRACE_SECONDS, limit_concurrency=MAX_CONNECTIONS))
    processor = Processor(root, log) if process else None
    # uvicorn stops gracefully on SIGINT and SIGTERM, then raises the signal
    # again into the handlers it found: these, so that what follows still
    # runs (the child convoy process is stopped, not orphaned).
    quiet = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if processor is not None:
            processor.start()
        server.run(sockets=[sock])
    finally:
        sock.close()
        if processor is not None:
            processor.stop()
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
    log.info("stopped")
    return 0


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise ConvoyError(f"cannot listen on {printable(host)}:{port} ({e.strerror}); pick another --listen, or stop "
                          "what listens there") from None
    sock.set_inheritable(True)
    return sock
