"""convoy.yaml's `plugins:` list, checked by asking the registry of plugin kinds.

    plugins:
      - {name: log, type: log, events: ["*"], path: .convoy/events.jsonl}
      - {name: notify, type: command, events: [BUILD_FAIL], command: [scripts/notify, --to, ci]}

    plugins = check_plugins(values, document)   # values: the convoy.config_values.ValueChecker of the file

Every entry has a `name` (unique), a `type` (a kind of
convoy.plugins.registry: its keys, its checker and its spec are the
kind's), `events` (event types or "*"; the kind's default), `timeout` and
`replay`. Each entry becomes its kind's PluginSpec; a wrong one is
reported and left out.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from convoy.config_values import ValueChecker, line_of_item
from convoy.models import EVENT_TYPES
from convoy.plugins.registry import ALL_EVENTS, REPLAY, TIMEOUT, PluginSpec, all_keys, kind, kind_names, read
from convoy.yamlcheck import key_line, kind_of

_PLUGIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


def check_plugins(values: ValueChecker, document: Mapping) -> tuple[PluginSpec, ...]:
    """The plugins of `document`'s `plugins:` list (none if absent), their problems reported to `values`."""
    items = values.items(document, "plugins", "name: event-log")
    plugins = []
    for line, spec, duplicate in values.named(items or [], "plugins", "plugin"):
        plugin = _plugin(values, spec, line)
        if plugin is not None and not duplicate:
            plugins.append(plugin)
    return tuple(plugins)


def _plugin(values: ValueChecker, spec: Any, line: int) -> Optional[PluginSpec]:
    if not isinstance(spec, Mapping):
        values.problem(line, "plugins", f"each plugin must be a mapping, not {kind_of(spec)}",
                       "write it like - {name: event-log, type: log, path: .convoy/events.jsonl}")
        return None
    errors = len(values.problems)
    name = values.string(spec, "name", "plugins", missing_at=line, example="event-log")
    where = f"plugins.{name}" if name else "plugins"
    if name is not None and not _PLUGIN_NAME.fullmatch(name):
        values.problem(key_line(spec, "name"), where,
                       f"'{name}' is not a valid plugin name (a letter, then letters, digits, _ . -)", "rename it")
    type_name = values.string(spec, "type", where, missing_at=line, example="log")
    declared = kind(type_name) if type_name is not None else None
    if type_name is not None and declared is None:
        values.problem(key_line(spec, "type"), f"{where}.type",
                       f"unknown plugin type '{type_name}' (expected: {', '.join(kind_names())})", "fix it")
    values.unknown_keys(spec, where, declared.allowed if declared else all_keys())
    events = _events(values, spec, where)
    own: dict[str, Any] = {}
    if declared is not None:
        own = declared.values(values, spec, where, line)
        events = events if "events" in spec else declared.events
    timeout = read(values, spec, where, line, TIMEOUT)
    replay = read(values, spec, where, line, REPLAY)
    if len(values.problems) > errors or name is None or declared is None:
        return None
    return declared.spec(name=name, events=events, timeout=timeout, replay=replay, **own)


def _events(values: ValueChecker, spec: Mapping, where: str) -> tuple[str, ...]:
    names = values.strings(spec, "events", where, '[BUILD_FAIL, RELEASE_TAGGED] or ["*"]', allow_empty=False)
    if names is None:
        return (ALL_EVENTS,)
    items, line = spec["events"], key_line(spec, "events")
    seen: set[str] = set()
    for index, name in enumerate(items):
        if not isinstance(name, str) or not name.strip():
            continue
        item_line = line_of_item(items, index, line)
        if name != ALL_EVENTS and name not in EVENT_TYPES:
            close = [e for e in EVENT_TYPES if e == name.upper().replace("-", "_")]
            hint = f"did you mean {close[0]}?" if close else f"expected one of: {', '.join(EVENT_TYPES)}, or \"*\""
            values.problem(item_line, f"{where}.events", f"unknown event '{name}' ({hint})", "fix or remove it")
        elif name in seen:
            values.problem(item_line, f"{where}.events", f"'{name}' is listed twice", "remove one")
        seen.add(name)
    if ALL_EVENTS in seen and len(names) > 1:
        values.problem(line, f"{where}.events", '"*" already means every event',
                       'write events: ["*"] alone, or list the events you want')
    return names
