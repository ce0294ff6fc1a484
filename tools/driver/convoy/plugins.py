"""Plugins: subscribers to the driver's events that never fail a build.

A plugin gets each event it `wants` through `deliver`, which either returns
or raises PluginError with a one-line reason (the caller records it as a
PLUGIN_ERROR event and carries on). Delivery is bounded by the plugin's
`timeout`: a plugin that hangs costs at most that long.

An event is a JSON-able dict:

    {"id": 42, "ts": ..., "type": "BUILD_FAIL", "request_id": 7, "build_id": 3,
     "stage_id": 9, "task_id": null, "data": {...}}

Kinds (configured in convoy.yaml, see convoy.config.PluginSpec):

- LogPlugin appends the event as one JSON line (keys sorted) to a file.
- CommandPlugin runs an argument list (no shell) in the repository root
  with the event as JSON on stdin and CONVOY_EVENT=<type> in its
  environment; a non-zero exit or a timeout is a PluginError.
- WebhookPlugin POSTs the event (compact JSON, keys sorted) with headers
  X-Convoy-Event, X-Convoy-Delivery (the event id) and
  X-Convoy-Signature: sha256=<hex HMAC-SHA256 of the body>, the secret read
  from an environment variable at each delivery. A non-2xx answer or a
  connection error is retried with exponential backoff (0.5 s, 1 s, 2 s,
  ...) while the timeout budget lasts; each attempt's socket timeout is what
  is left of it. Redirects are not followed (a non-2xx answer).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from convoy.config import ALL_EVENTS, PluginSpec

BACKOFF_START = 0.5  # seconds before the first retry; doubles after each
_STDERR_LIMIT = 200


class PluginError(Exception):
    """A delivery failed; the message is one line saying why."""


class Plugin:
    """The base: a name and the event types it wants ("*": all)."""

    def __init__(self, name: str, events: Sequence[str] = (ALL_EVENTS,)) -> None:
        self.name = name
        self.events = frozenset(events)

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

    def __init__(self, name: str, events: Sequence[str], path: Path) -> None:
        super().__init__(name, events)
        self.path = Path(path)

    def deliver(self, event: Mapping[str, Any]) -> None:
        line = (json.dumps(event, sort_keys=True, default=str) + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as e:
            raise PluginError(f"cannot write {self.path}: {e.strerror or e}") from None


class CommandPlugin(Plugin):
    """Runs `argv` in `cwd` with the event JSON on stdin; see the module docstring.

    The command runs in a session of its own, so that a timeout kills it and
    whatever it started.
    """

    def __init__(self, name: str, events: Sequence[str], argv: Sequence[str], *, timeout: float = 10.0,
                 cwd: Optional[Path] = None) -> None:
        super().__init__(name, events)
        if not argv:
            raise ValueError("a command plugin needs a command")
        self.argv = tuple(argv)
        self.timeout = timeout
        self.cwd = cwd

    def deliver(self, event: Mapping[str, Any]) -> None:
        body = json.dumps(event, sort_keys=True, default=str).encode("utf-8")
        env = {**os.environ, "CONVOY_EVENT": str(event.get("type", ""))}
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
                 retries: int = 3) -> None:
        super().__init__(name, events)
        self.url = url
        self.secret_env = secret_env
        self.timeout = timeout
        self.retries = retries
        # No redirects: a 3xx is an answer that is not 2xx.
        self._opener = urllib.request.build_opener(_NoRedirect)

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
        deadline = time.monotonic() + self.timeout
        reason, attempts, delay = "no attempt made", 0, BACKOFF_START
        while attempts <= self.retries:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            attempts += 1
            reason = self._attempt(body, headers, remaining)
            if reason is None:
                return
            if attempts > self.retries or time.monotonic() + delay >= deadline:
                break
            time.sleep(delay)
            delay *= 2
        reason = " ".join(reason.split())  # one line, whatever the server said
        raise PluginError(f"POST {self.url}: {reason} ({_count(attempts, 'attempt')} in {self.timeout:g} s)")

    def _attempt(self, body: bytes, headers: Mapping[str, str], timeout: float) -> Optional[str]:
        """One POST; None if it was answered 2xx, else why not."""
        try:
            request = urllib.request.Request(self.url, data=body, headers=dict(headers), method="POST")
            with self._opener.open(request, timeout=timeout) as response:
                status = response.status
        except urllib.error.HTTPError as e:
            e.close()
            return f"HTTP {e.code} {e.reason}".strip()
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                return f"timed out after {timeout:.1f} s"
            return str(getattr(reason, "strerror", None) or reason)
        except (socket.timeout, TimeoutError):
            return f"timed out after {timeout:.1f} s"
        except (OSError, ValueError, http.client.HTTPException) as e:  # a reset connection, a malformed answer
            return str(e) or type(e).__name__
        if 200 <= status < 300:
            return None
        return f"HTTP {status}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def make_plugins(specs: Sequence[PluginSpec], root: Path) -> list[Plugin]:
    """The plugins of convoy.yaml; `root` is the integration repository root
    (a log's relative path, and a command's working directory)."""
    plugins: list[Plugin] = []
    for spec in specs:
        if spec.kind == "log":
            path = Path(spec.path or "")
            plugins.append(LogPlugin(spec.name, spec.events, path if path.is_absolute() else Path(root) / path))
        elif spec.kind == "command":
            plugins.append(CommandPlugin(spec.name, spec.events, spec.command, timeout=spec.timeout, cwd=Path(root)))
        elif spec.kind == "webhook":
            plugins.append(WebhookPlugin(spec.name, spec.events, spec.url or "", spec.secret_env or "",
                                         timeout=spec.timeout, retries=spec.retries))
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
