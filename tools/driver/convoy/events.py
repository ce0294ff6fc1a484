"""Events: persisted in order with the state change they report, then delivered to plugins.

The driver writes an event in the same transaction as the state change it
reports (`Transaction.add_event`), so the event log is exactly what
happened. Delivery to plugins happens after the commit, never inside it:

- each plugin has a cursor in the store (the id of the last event it was
  given); a `Dispatcher` thread per plugin reads the events after it, hands
  those the plugin wants to `Plugin.deliver`, and moves the cursor. A crash
  between a commit and a delivery is caught up from the cursor at the next
  start: delivery is at least once, in order, per plugin. A plugin seen for
  the first time starts at the newest event (it gets what happens from
  then on), unless it asks for the whole history (`replay: true` in
  convoy.yaml: the plugin's `replay` attribute).
- a plugin that raises (or fails any other way) never reaches the build: the
  failure becomes a PLUGIN_ERROR event and the cursor moves on (the plugin
  has its own timeout and retries). PLUGIN_ERROR is delivered only to
  plugins that name it explicitly in their `events`; a failure to deliver a
  PLUGIN_ERROR is not recorded again, so there are no loops. The error's
  text is one line, and a URL in it shows no password (user:***@host).
- only `convoy process` delivers (one deliverer per checkout: cursors are
  never raced); events written by `convoy submit` or `convoy cancel` reach
  the plugins when a `convoy process` runs next.

`describe(event)` is the one-line text of an event, shared by `convoy
process` (its progress lines) and `convoy events`. Event data is untrusted
text (a requester, a reason, Bazel's output): every control character in it
is escaped, so a stored newline or terminal escape cannot forge a line.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from convoy import models
from convoy.models import Event
from convoy.store import Store
from convoy.untrusted import printable, redact_userinfo

log = logging.getLogger("convoy.events")

POLL_SECONDS = 1.0  # a dispatcher looks for new events at least this often
BATCH = 200
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def plugin_name(plugin: Any, index: int) -> str:
    """The name a plugin's cursor and errors are recorded under."""
    name = getattr(plugin, "name", None) or getattr(getattr(plugin, "spec", None), "name", None)
    return str(name) if name else f"plugin-{index}"


def replays(plugin: Any) -> bool:
    """Whether a new `plugin` is to get the whole event history."""
    return getattr(plugin, "replay", False) is True


def error_text(error: BaseException) -> str:
    """A plugin's failure as one line for an event: no URL's password in it."""
    text = " ".join((str(error) or type(error).__name__).split())
    return _URL.sub(lambda m: redact_userinfo(m.group()), text)


def wants(plugin: Any, event_type: str) -> bool:
    """Whether `plugin` is to be given events of `event_type`; PLUGIN_ERROR
    only where the plugin names it explicitly."""
    if event_type == models.PLUGIN_ERROR:
        named = getattr(plugin, "events", None)
        if named is None:
            named = getattr(getattr(plugin, "spec", None), "events", None)
        if named is not None and models.PLUGIN_ERROR not in tuple(named):
            return False
    try:
        return bool(plugin.wants(event_type))
    except Exception:  # a broken plugin never breaks the driver
        log.exception("plugin.wants(%s) failed", event_type)
        return False


class Dispatcher:
    """Delivers events to plugins from their cursors, one thread per plugin."""

    def __init__(self, store: Store, plugins: Sequence[Any], *, on_error: Optional[Callable[[str], None]] = None):
        self.store = store
        self.plugins = [(plugin_name(p, i), p) for i, p in enumerate(plugins)]
        self.on_error = on_error
        self._wake = {name: threading.Event() for name, _ in self.plugins}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._positions: dict[str, int] = {}
        self._cond = threading.Condition()

    def start(self) -> "Dispatcher":
        with self.store.transaction() as tx:
            last = tx.last_event_id()
            for name, plugin in self.plugins:
                cursor = tx.cursor(name)
                if cursor is None:  # new: from now on, or from the beginning if it asks
                    cursor = 0 if replays(plugin) else last
                    tx.set_cursor(name, cursor)
                self._positions[name] = cursor
        for name, plugin in self.plugins:
            thread = threading.Thread(target=self._loop, args=(name, plugin), name=f"plugin-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def notify(self) -> None:
        """New events were committed: wake every plugin's thread."""
        for wake in self._wake.values():
            wake.set()

    def flush(self, timeout: float) -> bool:
        """Waits (up to `timeout` s) until every plugin has been given every
        event written so far; returns whether they all were."""
        deadline = time.monotonic() + timeout
        while True:
            with self.store.read() as tx:
                last = tx.last_event_id()
            self.notify()
            with self._cond:
                while any(pos < last for pos in self._positions.values()):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(min(remaining, POLL_SECONDS))
            with self.store.read() as tx:
                if tx.last_event_id() == last:  # no PLUGIN_ERROR came in meanwhile
                    return True

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self.notify()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self, name: str, plugin: Any) -> None:
        while not self._stop.is_set():
            self._wake[name].wait(POLL_SECONDS)
            self._wake[name].clear()
            try:
                self._deliver_pending(name, plugin)
            except Exception:  # the store went away, ...: try again at the next wake
                log.exception("delivering events to plugin %s failed", name)

    def _deliver_pending(self, name: str, plugin: Any) -> None:
        while not self._stop.is_set():
            with self.store.read() as tx:
                pending = tx.events(after=self._positions[name], limit=BATCH)
            if not pending:
                return
            for event in pending:
                if self._stop.is_set():
                    return
                self._deliver(name, plugin, event)
                with self.store.transaction() as tx:
                    tx.set_cursor(name, event.id)
                with self._cond:
                    self._positions[name] = event.id
                    self._cond.notify_all()

    def _deliver(self, name: str, plugin: Any, event: Event) -> None:
        if not wants(plugin, event.type):
            return
        try:
            plugin.deliver(event.to_dict())
        except Exception as e:  # PluginError, or any bug in a plugin
            if event.type == models.PLUGIN_ERROR:
                return  # never an error about an error
            error = error_text(e)
            with self.store.transaction() as tx:
                tx.add_event(
                    models.PLUGIN_ERROR, request_id=event.request_id, build_id=event.build_id,
                    stage_id=event.stage_id, task_id=event.task_id,
                    data={"plugin": name, "event_id": event.id, "event_type": event.type, "error": error},
                )
            if self.on_error is not None:
                self.on_error(f"plugin {name}: {event.type} #{event.id}: {error}")


# --- one line per event -------------------------------------------------------


def _seconds(value: Any) -> str:
    return f"{value:.1f} s" if isinstance(value, (int, float)) else "?"


def _short(commit: Any) -> str:
    return str(commit)[:10] if commit else "-"


def _failures(data: Mapping[str, Any]) -> str:
    parts = []
    for failure in data.get("failures") or ():
        targets = ", ".join(f"{t['label']} {t['status']}" for t in failure.get("targets") or ()) or failure.get(
            "outcome", "failed")
        parts.append(f"{failure.get('configuration')}: {targets}")
    return "; ".join(parts)


def _plus(data: Mapping[str, Any]) -> str:
    """" + planner v3.0.0 [rover]" for a group's other bumps (data["bumps"]); "" for a single bump."""
    bumps = data.get("bumps") or ()
    return "".join(f" + {b.get('component')} {b.get('version')}" + (
        f" [{b['configuration']}]" if b.get("configuration") else "") for b in bumps if isinstance(b, Mapping))


def describe(event: Event) -> str:
    """The event in one line: `#<request> <what happened>`, every control
    character in it escaped (see untrusted.printable)."""
    return printable(_describe(event))


def _describe(event: Event) -> str:
    d = event.data
    who = f"#{event.request_id}" if event.request_id is not None else "-"
    t = event.type
    task = f"{d.get('stage')}/{d.get('configuration')}"
    if t == models.REQUEST_QUEUED:
        scope = f" in {d['configuration']}" if d.get("configuration") else ""
        archive = f" from {redact_userinfo(str(d['archive_url']))}" if d.get("archive_url") else ""
        what = f"queued: {d.get('component')} {d.get('version')}{scope} @ {_short(d.get('commit'))}{archive}" \
               f"{_plus(d)} (by {d.get('requested_by')})"
    elif t == models.REQUEST_SUPERSEDED:
        what = f"superseded by #{d.get('superseded_by')} ({d.get('component')} {d.get('version')})"
    elif t == models.REQUEST_CANCELLED:
        what = "cancelled" + (f": {d['reason']}" if d.get("reason") else "")
    elif t == models.BUILD_START:
        what = (f"build {d.get('number')} of {d.get('component')} {d.get('version')}{_plus(d)}: candidate "
                f"{_short(d.get('candidate_commit'))} on {_short(d.get('base_commit'))}; stages "
                f"{', '.join(d.get('stages') or ())}; configurations {', '.join(d.get('configurations') or ())}")
    elif t == models.STAGE_START:
        what = f"stage {d.get('stage')} started ({', '.join(d.get('configurations') or ())})"
    elif t == models.TASK_START:
        what = f"task {task} started (slot {d.get('slot')}, run {d.get('run')}; log {d.get('log_path')})"
    elif t == models.TASK_COMPLETE:
        what = f"task {task} {d.get('outcome')} in {_seconds(d.get('duration'))}"
        failing = d.get("failing_targets") or ()
        if failing:
            what += ": " + ", ".join(f"{f['label']} {f['status']}" for f in failing)
        elif d.get("detail") and d.get("outcome") != "PASSED":
            what += f": {d['detail']}"
    elif t in (models.TASK_SUCCESS, models.TASK_FAIL):
        what = f"task {task} {'succeeded' if t == models.TASK_SUCCESS else 'failed'}"
    elif t == models.STAGE_COMPLETE:
        what = f"stage {d.get('stage')} {d.get('state')} in {_seconds(d.get('duration'))}"
    elif t == models.BUILD_COMPLETE:
        what = f"build {d.get('number')} {d.get('state')} in {_seconds(d.get('duration'))}"
    elif t == models.BUILD_SUCCESS:
        what = f"build {d.get('number')} passed every stage"
    elif t == models.BUILD_FAIL:
        what = f"build {d.get('number')} failed" + (f": {d['reason']}" if d.get("reason") else "")
    elif t == models.MANIFEST_UPDATED:
        what = f"merged: {d.get('remote')}/{d.get('branch')} is now {_short(d.get('commit'))} " \
               f"({d.get('component')} {d.get('version')}{_plus(d)})"
    elif t == models.RELEASE_TAGGED:
        what = f"released: tag {d.get('tag')} on {_short(d.get('commit'))}"
    elif t == models.REQUEST_REJECTED:
        what = f"rejected: {d.get('summary')}"
    elif t == models.REQUEST_REQUEUED:
        what = f"infrastructure error, back in the queue (attempt {d.get('attempts')} of " \
               f"{d.get('limit')} retries): {d.get('reason')}"
    elif t == models.REQUEST_ERROR:
        what = f"error after {d.get('attempts')} attempts: {d.get('reason')}"
    elif t == models.TRY_QUEUED:
        what = f"try of {d.get('component')} {d.get('version')} @ {_short(d.get('commit'))} " + (
            f"waits again: {d.get('reason')}" if d.get("again") else f"queued (by {d.get('requested_by')})")
    elif t == models.TRY_START:
        what = f"try of {d.get('component')} {d.get('version')} started on {_short(d.get('base_commit'))} " \
               f"(attempt {d.get('attempt')}; nothing is merged)"
    elif t == models.TRY_PASSED:
        what = f"try passed: {d.get('component')} {d.get('version')} @ {_short(d.get('commit'))} passes every " \
               f"stage on {_short(d.get('base_commit'))}"
    elif t == models.TRY_FAILED:
        what = f"try failed: {d.get('summary')}"
    elif t in (models.QUEUE_PAUSED, models.QUEUE_DRAINING, models.QUEUE_RESUMED):
        word = {models.QUEUE_PAUSED: "paused", models.QUEUE_DRAINING: "draining", models.QUEUE_RESUMED: "resumed"}[t]
        what = f"queue {word} by {d.get('by')}" + (f" ({d['reason']})" if d.get("reason") else "")
    elif t == models.REQUEST_PROMOTED:
        what = f"promoted to high priority by {d.get('by')}"
    elif t == models.PLUGIN_ERROR:
        what = f"plugin {d.get('plugin')} failed on {d.get('event_type')} #{d.get('event_id')}: {d.get('error')}"
    else:
        what = t
    return f"{who} {what}"
