"""Plugins: subscribers to the driver's events that never fail a build.

A plugin gets each event it `wants` through `deliver`, which either returns
or raises PluginError with a one-line reason (the caller records it as a
PLUGIN_ERROR event and carries on). Delivery is bounded by the plugin's
`timeout`: a plugin that hangs costs at most that long.

An event is a JSON-able dict:

    {"id": 42, "ts": ..., "type": "BUILD_FAIL", "request_id": 7, "build_id": 3,
     "stage_id": 9, "task_id": null, "data": {...}}

Kinds (configured in convoy.yaml, see convoy.config.PluginSpec):

- LogPlugin appends the event as one JSON line (keys sorted) to a file
  that only the driver's user can read (0600; a directory it makes, 0700).
- CommandPlugin runs an argument list (no shell) in the repository root
  with the event as JSON on stdin and CONVOY_EVENT=<type> in its
  environment, less the other plugins' secrets; a non-zero exit or a
  timeout is a PluginError.
- WebhookPlugin POSTs the event (compact JSON, keys sorted) with headers
  X-Convoy-Event, X-Convoy-Delivery (the event id) and
  X-Convoy-Signature: sha256=<hex HMAC-SHA256 of the body>, the secret read
  from an environment variable at each delivery. A non-2xx answer or a
  connection error is retried with exponential backoff (0.5 s, 1 s, 2 s,
  ...) while the timeout budget lasts. Each attempt ends when the budget
  does: its socket timeout is what is left, and a watchdog shuts the
  socket at the deadline, so a server that trickles its answer a byte at a
  time cannot hold a delivery. Redirects are not followed (a non-2xx
  answer). Userinfo in the URL (https://user:password@host/...) is sent as
  HTTP Basic authorization and shown as user:*** in every message.
- ForgeStatusPlugin (convoy.plugins_forge) sets commit statuses on GitHub
  or GitLab, through the same `post`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from convoy import fsutil
from convoy.config import ALL_EVENTS, PluginSpec
from convoy.untrusted import redact_userinfo

BACKOFF_START = 0.5  # seconds before the first retry; doubles after each
_STDERR_LIMIT = 200
_BODY_LIMIT = 1024  # bytes of an error answer kept (convoy.plugins_forge reads the forge's message)


class PluginError(Exception):
    """A delivery failed; the message is one line saying why."""


class Plugin:
    """The base: a name, the event types it wants ("*": all), and whether
    it is to get the whole event history when it is new (`replay`; see
    convoy.events.Dispatcher)."""

    def __init__(self, name: str, events: Sequence[str] = (ALL_EVENTS,), *, replay: bool = False) -> None:
        self.name = name
        self.events = frozenset(events)
        self.replay = replay

    def wants(self, event_type: str) -> bool:
        return ALL_EVENTS in self.events or event_type in self.events

    def deliver(self, event: Mapping[str, Any]) -> None:
        """Delivers one event; raises PluginError with a one-line reason."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class LogPlugin(Plugin):
    """Appends one JSON line per event to `path` (its directory is created).

    Each line is written with one write() on a file opened for appending, so
    that lines from several processes do not interleave.
    """

    def __init__(self, name: str, events: Sequence[str], path: Path, *, replay: bool = False) -> None:
        super().__init__(name, events, replay=replay)
        self.path = Path(path)

    def deliver(self, event: Mapping[str, Any]) -> None:
        line = (json.dumps(event, sort_keys=True, default=str) + "\n").encode("utf-8")
        try:
            if not self.path.parent.is_dir():
                fsutil.private_dir(self.path.parent)
            fd = fsutil.open_private(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as e:
            raise PluginError(f"cannot write {self.path}: {e.strerror or e}") from None


class CommandPlugin(Plugin):
    """Runs `argv` in `cwd` with the event JSON on stdin; see the module docstring.

    The command runs in a session of its own, so that a timeout kills it and
    whatever it started. It gets the driver's environment without the
    variables in `withheld_env` (the other plugins' secrets).
    """

    def __init__(self, name: str, events: Sequence[str], argv: Sequence[str], *, timeout: float = 10.0,
                 cwd: Optional[Path] = None, withheld_env: Sequence[str] = (), replay: bool = False) -> None:
        super().__init__(name, events, replay=replay)
        if not argv:
            raise ValueError("a command plugin needs a command")
        self.argv = tuple(argv)
        self.timeout = timeout
        self.cwd = cwd
        self.withheld_env = frozenset(withheld_env)

    def deliver(self, event: Mapping[str, Any]) -> None:
        body = json.dumps(event, sort_keys=True, default=str).encode("utf-8")
        env = {k: v for k, v in os.environ.items() if k not in self.withheld_env}
        env["CONVOY_EVENT"] = str(event.get("type", ""))
        try:
            proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, start_new_session=True,
            )
        except OSError as e:
            raise PluginError(f"cannot run {self.argv[0]}: {e.strerror or e}") from None
        try:
            _, stderr = proc.communicate(body, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise PluginError(f"timed out after {self.timeout:g} s") from None
        if proc.returncode < 0:
            raise PluginError(f"killed by signal {-proc.returncode}{_first_line(stderr, ': ')}")
        if proc.returncode != 0:
            raise PluginError(f"exit {proc.returncode}{_first_line(stderr, ': ')}")


class WebhookPlugin(Plugin):
    """POSTs each event to `url`, signed; see the module docstring."""

    def __init__(self, name: str, events: Sequence[str], url: str, secret_env: str, *, timeout: float = 10.0,
                 retries: int = 3, replay: bool = False) -> None:
        super().__init__(name, events, replay=replay)
        self.url = url
        self.secret_env = secret_env
        self.timeout = timeout
        self.retries = retries
        self.shown_url = redact_userinfo(url)  # what messages say
        self._target, self._authorization, self._credential = _split_userinfo(url)

    def deliver(self, event: Mapping[str, Any]) -> None:
        secret = os.environ.get(self.secret_env)
        if not secret:
            raise PluginError(f"environment variable {self.secret_env} (the webhook's HMAC secret) is not set")
        body = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "convoy-webhook",
            "X-Convoy-Event": str(event.get("type", "")),
            "X-Convoy-Delivery": str(event.get("id", "")),
            "X-Convoy-Signature": sign(secret.encode("utf-8"), body),
        }
        if self._authorization:
            headers["Authorization"] = self._authorization
        answer, attempts = post(self._target, body, headers, timeout=self.timeout, retries=self.retries)
        if answer.ok:
            return
        reason = " ".join(answer.reason.split())  # one line, whatever the server said
        if self._credential:  # never quote the URL's password, whatever the reason says
            reason = reason.replace(self._credential, "***")
        raise PluginError(f"POST {self.shown_url}: {reason} ({_count(attempts, 'attempt')} in {self.timeout:g} s)")


@dataclass(frozen=True)
class Answer:
    """What one POST came to: `ok` (answered 2xx), else `reason` (why
    not), `status` (None: no HTTP answer) and the first KiB of the body."""

    ok: bool
    reason: str = ""
    status: Optional[int] = None
    body: bytes = b""


def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout: float, retries: int,
         final: Callable[[Answer], bool] = lambda answer: False) -> tuple[Answer, int]:
    """POSTs `body` to `url` (no userinfo: pass it in `headers`) until it is
    answered 2xx, `final(answer)` says not to try again, `retries` retries
    were made, or the `timeout` budget ends (see the module docstring:
    backoff, a watchdog per attempt, no redirects). Returns the last answer
    and how many attempts were made; never raises for the network's sake."""
    deadline = time.monotonic() + timeout
    answer, attempts, delay = Answer(False, "no attempt made"), 0, BACKOFF_START
    while attempts <= retries:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        attempts += 1
        answer = _post_once(url, body, headers, remaining)
        if answer.ok or final(answer):
            break
        if attempts > retries or time.monotonic() + delay >= deadline:
            break
        time.sleep(delay)
        delay *= 2
    return answer, attempts


def _post_once(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Answer:
    """One POST, cut off after `timeout` seconds whatever the server does."""
    watchdog = _Watchdog(timeout)
    timed_out = Answer(False, f"timed out after {timeout:.1f} s")
    # No redirects: a 3xx is an answer that is not 2xx.
    opener = urllib.request.build_opener(_NoRedirect, _WatchedHTTP(watchdog.track), _WatchedHTTPS(watchdog.track))
    try:
        with watchdog:
            request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
            try:
                with opener.open(request, timeout=timeout) as response:
                    status = response.status
                    answer = Answer(200 <= status < 300, "" if 200 <= status < 300 else f"HTTP {status}", status)
            except urllib.error.HTTPError as e:
                try:
                    text = e.read(_BODY_LIMIT)  # still under the watchdog
                finally:
                    e.close()
                answer = Answer(False, f"HTTP {e.code} {e.reason}".strip(), e.code, text)
    except urllib.error.URLError as e:
        reason = e.reason
        if watchdog.fired or isinstance(reason, (socket.timeout, TimeoutError)):
            return timed_out
        return Answer(False, str(getattr(reason, "strerror", None) or reason))
    except (socket.timeout, TimeoutError):
        return timed_out
    except (OSError, ValueError, http.client.HTTPException) as e:  # a reset connection, a malformed answer
        if watchdog.fired:  # the watchdog shut the socket under it
            return timed_out
        return Answer(False, str(e) or type(e).__name__)
    if watchdog.fired:  # a cut answer can look whole (its headers end at the shut socket's EOF)
        return timed_out
    return answer


class _Watchdog:
    """Shuts the sockets of the connections it `track`s once `seconds`
    have passed (a timer thread), so that a blocked read ends: a socket
    timeout alone bounds each read, not the whole answer. `fired` says
    whether it did. Use it as a context manager around one attempt."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> "_Watchdog":
        self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._timer.cancel()

    def track(self, connection_class: type) -> Callable[..., http.client.HTTPConnection]:
        """A factory of `connection_class` connections that the watchdog cuts."""
        def connection(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
            made = connection_class(*args, **kwargs)
            with self._lock:
                if self.fired:
                    raise TimeoutError("the delivery's time is up")
                self._connections.append(made)
            return made
        return connection

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            connections = list(self._connections)
        for connection in connections:
            sock = connection.sock
            if sock is None:
                continue  # still connecting: its socket timeout is what is left
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # closed meanwhile
                pass


class _Watched:
    """Mixed into an urllib handler: its connections come from the watchdog's `track`."""

    def __init__(self, track: Callable[[type], Callable[..., http.client.HTTPConnection]]) -> None:
        super().__init__()
        self._track = track

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(self._track(http_class), req, **kwargs)  # type: ignore[misc]


class _WatchedHTTP(_Watched, urllib.request.HTTPHandler):
    pass


class _WatchedHTTPS(_Watched, urllib.request.HTTPSHandler):
    pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _split_userinfo(url: str) -> tuple[str, Optional[str], Optional[str]]:
    """(`url` without its userinfo, the Basic Authorization header it
    means or None, the secret part of it or None: the password, or a lone
    token before '@', as redact_userinfo hides it)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    credentials = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode("utf-8")
    target = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return target, "Basic " + base64.b64encode(credentials).decode("ascii"), (password if colon else user) or None


def make_plugins(specs: Sequence[PluginSpec], root: Path) -> list[Plugin]:
    """The plugins of convoy.yaml; `root` is the integration repository root
    (a log's relative path, a command's working directory, and the store and
    manifest a forge-status reads). A command gets none of the webhooks' or
    forges' secrets."""
    plugins: list[Plugin] = []
    secrets = tuple(spec.secret_env for spec in specs if spec.secret_env)
    for spec in specs:
        if spec.kind == "log":
            path = Path(spec.path or "")
            plugins.append(LogPlugin(spec.name, spec.events, path if path.is_absolute() else Path(root) / path,
                                     replay=spec.replay))
        elif spec.kind == "command":
            plugins.append(CommandPlugin(spec.name, spec.events, spec.command, timeout=spec.timeout, cwd=Path(root),
                                         withheld_env=secrets, replay=spec.replay))
        elif spec.kind == "webhook":
            plugins.append(WebhookPlugin(spec.name, spec.events, spec.url or "", spec.secret_env or "",
                                         timeout=spec.timeout, retries=spec.retries, replay=spec.replay))
        elif spec.kind == "forge-status":
            from convoy import plugins_forge  # it builds on this module

            plugins.append(plugins_forge.ForgeStatusPlugin(
                spec.name, spec.events, forge=spec.forge or "", api_url=spec.url, host=spec.host,
                token_env=spec.secret_env or "", link_base=spec.link_base,
                context=spec.context or plugins_forge.DEFAULT_CONTEXT, timeout=spec.timeout, retries=spec.retries,
                replay=spec.replay, requests=plugins_forge.checkout_requests(Path(root)),
                remotes=plugins_forge.checkout_remotes(Path(root))))
        else:
            raise ValueError(f"unknown plugin kind {spec.kind!r}")
    return plugins


def sign(secret: bytes, body: bytes) -> str:
    """The X-Convoy-Signature of `body`: "sha256=" + hex HMAC-SHA256 with `secret`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """Whether `signature` is sign(secret, body), compared in constant time
    (for receivers, and tests)."""
    return hmac.compare_digest(sign(secret, body), signature)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # something outside the group holds the pipes
        pass


def _first_line(stderr: Optional[bytes], prefix: str) -> str:
    text = (stderr or b"").decode("utf-8", "replace")
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(line) > _STDERR_LIMIT:
        line = line[: _STDERR_LIMIT - 3] + "..."
    return prefix + line if line else ""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
