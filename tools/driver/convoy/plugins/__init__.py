"""Plugins: subscribers to the driver's events that never fail a build.

A plugin gets each event it `wants` through `deliver`, which either returns
or raises PluginError with a one-line reason (the caller records it as a
PLUGIN_ERROR event and carries on). Delivery is bounded by the plugin's
`timeout`: a plugin that hangs costs at most that long.

An event is a JSON-able dict:

    {"id": 42, "ts": ..., "type": "BUILD_FAIL", "request_id": 7, "build_id": 3,
     "stage_id": 9, "task_id": null, "data": {...}}

Each kind is one module of this package, declaring its `type:` name, its
convoy.yaml keys, checker, spec and factory in one `KIND`
(convoy.plugins.registry, which convoy.config asks to check a `plugins:`
entry): `log` (log.py: LogPlugin), `command` (command.py: CommandPlugin),
`webhook` (webhook.py: WebhookPlugin, `sign`, `verify`) and
`forge-status` (forge.py: ForgeStatusPlugin). What they share is base.py's
(`Plugin`, `PluginError`, `post`). `make_plugins` builds the plugins of a
Config:

    plugins = make_plugins(config.plugins, root)

`open_store` opens the checkout's store read-only (a context manager; the
caller, above the store, gives it: convoy.commands.process passes
`lambda: checkout_store(root, create=False, readonly=True)`).

A new kind is a module here with a `KIND` (found by
convoy.plugins.registry.kinds), or a `register(PluginKind(...))` anywhere
before convoy.yaml is loaded.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from convoy.plugins.registry import ALL_EVENTS, PluginContext, PluginKind, PluginSpec, kind, register

if TYPE_CHECKING:
    from convoy.plugins.base import Plugin

# The names this package gives, by the module that holds them: imported when
# first asked for (`from convoy.plugins import LogPlugin`), so that
# convoy.config, which imports the registry, loads no plugin's runtime.
_LAZY = {
    "BACKOFF_START": "base", "Answer": "base", "Plugin": "base", "PluginError": "base", "post": "base",
    "CommandPlugin": "command", "CommandSpec": "command",
    "ForgeStatusPlugin": "forge", "ForgeStatusSpec": "forge",
    "LogPlugin": "log", "LogSpec": "log",
    "WebhookPlugin": "webhook", "WebhookSpec": "webhook", "sign": "webhook", "verify": "webhook",
}

__all__ = [
    "ALL_EVENTS", "PluginContext", "PluginKind", "PluginSpec", "kind", "make_plugins", "register", *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def make_plugins(specs: Sequence[PluginSpec], root: Path, *,
                 open_store: Optional[Callable[[], Any]] = None) -> list["Plugin"]:
    """The plugins of convoy.yaml, each built by its kind's factory; `root`
    is the integration repository root (a log's relative path, a command's
    working directory, and the manifest a forge-status reads), `open_store`
    opens its store read-only (a forge-status reads its requests there; see
    PluginContext). A command gets none of the plugins' secrets."""
    context = PluginContext(root=Path(root), secrets=tuple(s for spec in specs for s in spec.secrets),
                            open_store=open_store)
    plugins = []
    for spec in specs:
        declared = kind(spec.kind)
        if declared is None:
            raise ValueError(f"unknown plugin kind {spec.kind!r}")
        plugins.append(declared.factory(spec, context))
    return plugins
