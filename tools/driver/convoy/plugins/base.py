"""What every plugin is: the `Plugin` base, `PluginError`, and `post`, the bounded HTTP POST of webhooks and forges.

A plugin gets each event it `wants` through `deliver`, which either returns
or raises PluginError with a one-line reason (the caller records it as a
PLUGIN_ERROR event and carries on). `post` POSTs until a 2xx answer, a
final one, the retries or the budget end: exponential backoff (0.5 s, 1 s,
2 s, ...); each attempt's socket timeout is what is left of the budget, and
a watchdog shuts the socket at the deadline, so a server that trickles its
answer a byte at a time cannot hold a delivery. Redirects are not followed
(a non-2xx answer).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from convoy.plugins.registry import ALL_EVENTS

BACKOFF_START = 0.5  # seconds before the first retry; doubles after each
_BODY_LIMIT = 1024  # bytes of an error answer kept (convoy.plugins.forge reads the forge's message)


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
