"""The registry of plugin kinds: what convoy.yaml's `plugins:` entries may be.

A kind is one module of this package (or any module that calls
`register`) that declares, in one `PluginKind`, its `type:` name, its keys
(`Key`: name, value type, required or not, the fix's example), a checker
for what the value types do not say, the dataclass its checked keys fill
(a `PluginSpec`) and the factory that builds the plugin from it:

    KIND = PluginKind(
        name="log", keys=(Key("path", "string", required=True, example=".convoy/events.jsonl"), TIMEOUT, REPLAY),
        spec=LogSpec, factory=lambda spec, context: LogPlugin(...), position=10)

convoy.config_plugins checks each entry through `kind(name)` (name, type,
events, then the kind's keys, then timeout and replay) and
convoy.plugins.make_plugins builds each with `kind(spec.kind).factory`.
The package's own kinds are found by importing each of its modules that
has a `KIND` (`kinds()` does so once), in `position` order, which is the
order messages list them in. This module imports nothing of the plugins'
runtime; loading the kinds loads theirs (the standard library; the
forge-status kind imports the manifest and convoy.serve.repos only inside
the functions that deliver, and reads the store through
PluginContext.open_store).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Optional

if TYPE_CHECKING:  # the checkers get the file's convoy.config_values.ValueChecker (a lower module)
    from convoy.config_values import ValueChecker

ALL_EVENTS = "*"
_NOT_KINDS = ("registry", "base")  # this package's modules that declare no kind


@dataclass(frozen=True)
class PluginSpec:
    """What every plugin has: its `name`, the event types it wants ("*":
    all), the budget of one delivery (`timeout`, retries included) and
    `replay` (a plugin seen for the first time starts at the newest event;
    replay gives it the whole event history first). Each kind's spec is a
    subclass with its own keys and its `kind` name."""

    kind: ClassVar[str] = ""

    name: str
    events: tuple[str, ...] = (ALL_EVENTS,)
    timeout: float = 10.0
    replay: bool = False

    @property
    def secrets(self) -> tuple[str, ...]:
        """The environment variables holding this plugin's secrets (withheld from Bazel and command plugins)."""
        return ()


@dataclass(frozen=True)
class Key:
    """One key of a kind: its `name`, its value type (a check of
    convoy.config_values.ValueChecker: "string", "strings", "number",
    "boolean"), whether it is `required`, the `example` a fix shows, the
    `default` (numbers, booleans) and the check's keyword `options`."""

    name: str
    type: str = "string"
    required: bool = False
    example: str = ""
    default: Any = None
    options: tuple[tuple[str, Any], ...] = ()


TIMEOUT = Key("timeout", "number", default=10.0)
REPLAY = Key("replay", "boolean", default=False)
RETRIES = Key("retries", "number", default=3, options=(("integer", True), ("above", False)))
_COMMON = ("name", "type", "events")
_CHECKED_LAST = (TIMEOUT.name, REPLAY.name)  # after the kind's own keys, for every kind


@dataclass(frozen=True)
class PluginContext:
    """What a factory builds with: the integration repository `root`, the
    variables every plugin's secrets are in (`secrets`), and `open_store`,
    which opens the checkout's store read-only (a context manager giving a
    convoy.store Store; None: the caller has none). The caller gives it:
    the plugins sit below the store and do not import it."""

    root: Path
    secrets: tuple[str, ...] = ()
    open_store: Optional[Callable[[], Any]] = None


@dataclass(frozen=True)
class PluginKind:
    """A kind of plugin; see the module docstring. `keys` are the kind's
    own keys in the order an unknown key's message lists them (after name,
    type, events); `check(checker, entry, where, line)` returns the spec's
    values read from `entry` (default: each key of `keys` by its type, in
    order), reporting problems to `checker`; `events` is the default of
    `events:`; `position` orders the kinds in messages."""

    name: str
    keys: tuple[Key, ...]
    spec: type
    factory: Callable[[Any, PluginContext], Any]
    check: Optional[Callable[["ValueChecker", Mapping, str, int], dict[str, Any]]] = None
    events: tuple[str, ...] = (ALL_EVENTS,)
    position: int = 100

    @property
    def allowed(self) -> tuple[str, ...]:
        """Every key an entry of this kind may have, as messages list them."""
        return _COMMON + tuple(key.name for key in self.keys)

    def values(self, checker: "ValueChecker", entry: Mapping, where: str, line: int) -> dict[str, Any]:
        """The spec's own values of `entry` (not name, events, timeout, replay)."""
        if self.check is not None:
            return self.check(checker, entry, where, line)
        values = {}
        for key in self.keys:
            if key.name not in _CHECKED_LAST:
                value = read(checker, entry, where, line, key)
                if value is not None:
                    values[key.name] = value
        return values


_KINDS: dict[str, PluginKind] = {}
_loaded = False


def register(kind: PluginKind) -> PluginKind:
    """Adds `kind` (replacing one of the same name); returns it."""
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Removes the kind called `name` (for tests that register their own)."""
    _KINDS.pop(name, None)


def kinds() -> tuple[PluginKind, ...]:
    """Every kind, in `position` order (then by name); loads this package's own kinds the first time."""
    global _loaded
    if not _loaded:
        for module in sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])):
            if module not in _NOT_KINDS and not module.startswith("_"):
                declared = getattr(importlib.import_module(f"{__package__}.{module}"), "KIND", None)
                if isinstance(declared, PluginKind) and declared.name not in _KINDS:
                    register(declared)
        _loaded = True
    return tuple(sorted(_KINDS.values(), key=lambda k: (k.position, k.name)))


def kind_names() -> tuple[str, ...]:
    """The `type:` names, in the order messages list them."""
    return tuple(k.name for k in kinds())


def kind(name: str) -> Optional[PluginKind]:
    """The kind called `name`, or None."""
    return next((k for k in kinds() if k.name == name), None)


def all_keys() -> tuple[str, ...]:
    """Every key some kind takes (what an entry of an unknown type is checked against)."""
    return tuple(dict.fromkeys(key for k in kinds() for key in k.allowed))


def read(checker: "ValueChecker", entry: Mapping, where: str, line: int, key: Key) -> Any:
    """entry[key.name] checked as `key` says (None or the default when absent or wrong; reported)."""
    options = dict(key.options)
    if key.type == "string":
        return checker.string(entry, key.name, where, missing_at=line if key.required else None, example=key.example)
    if key.type == "strings":
        return checker.strings(entry, key.name, where, key.example, missing_at=line if key.required else None,
                               **options)
    if key.type == "number":
        return checker.number(entry, key.name, where, key.default, **options)
    if key.type == "boolean":
        return checker.boolean(entry, key.name, where, key.default)
    raise ValueError(f"unknown key type {key.type!r} of {key.name!r}")
