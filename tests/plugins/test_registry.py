"""convoy.plugins.registry: a kind declared in one module (here, this test
module) is checked by load_config and built by make_plugins, with no other
change; the package's own kinds are found in their modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import pytest

from convoy.config import load_config
from convoy.errors import ConvoyError
from convoy.plugins import ForgeStatusPlugin, ForgeStatusSpec, Plugin, make_plugins
from convoy.plugins.registry import REPLAY, TIMEOUT, Key, PluginContext, PluginKind, PluginSpec, kind_names, register, \
    unregister


@dataclass(frozen=True)
class CounterSpec(PluginSpec):
    kind: ClassVar[str] = "counter"

    start: int = 0
    label: str = ""


class CounterPlugin(Plugin):
    def __init__(self, spec: CounterSpec, root: Any) -> None:
        super().__init__(spec.name, spec.events, replay=spec.replay)
        self.count, self.label, self.root = spec.start, spec.label, root

    def deliver(self, event: Mapping[str, Any]) -> None:
        self.count += 1


@pytest.fixture
def counter_kind():
    kind = register(PluginKind(
        name="counter",
        keys=(Key("start", "number", default=0, options=(("integer", True), ("above", False))),
              Key("label", "string", required=True, example="builds"), TIMEOUT, REPLAY),
        spec=CounterSpec, factory=lambda spec, context: CounterPlugin(spec, context.root)))
    yield kind
    unregister("counter")


def test_the_package_kinds_in_their_order():
    assert kind_names()[:4] == ("log", "command", "webhook", "forge-status")


def test_a_kind_registered_from_a_test_module_is_checked_and_built(tmp_path, counter_kind):
    path = tmp_path / "convoy.yaml"
    path.write_text("plugins:\n  - {name: c, type: counter, events: [BUILD_FAIL], start: 5, label: builds}\n")

    config = load_config(path)

    assert config.plugins == (CounterSpec(name="c", events=("BUILD_FAIL",), start=5, label="builds"),)
    (plugin,) = make_plugins(config.plugins, tmp_path)
    assert isinstance(plugin, CounterPlugin) and (plugin.count, plugin.label, plugin.root) == (5, "builds", tmp_path)
    plugin.deliver({"type": "BUILD_FAIL"})
    assert plugin.count == 6


def test_a_registered_kind_gets_the_same_checks_and_messages(tmp_path, counter_kind):
    path = tmp_path / "convoy.yaml"
    path.write_text("plugins:\n  - {name: c, type: counter, start: -1, url: x}\n  - {name: d, type: nope}\n")

    with pytest.raises(ConvoyError) as info:
        load_config(path)

    assert list(info.value.problems) == [
        "convoy.yaml:2: plugins.c: unknown key 'url' (expected: name, type, events, start, label, timeout, replay); "
        "fix or remove it",
        "convoy.yaml:2: plugins.c.start: must be at least 0, not -1; write it like start: 0",
        "convoy.yaml:2: plugins.c: missing required key 'label'; add it, e.g. label: builds",
        "convoy.yaml:3: plugins.d.type: unknown plugin type 'nope' (expected: log, command, webhook, forge-status, "
        "counter); fix it",
    ]


def test_an_unknown_kind_is_not_built(tmp_path):
    with pytest.raises(ValueError, match="unknown plugin kind 'counter'"):
        make_plugins([CounterSpec(name="c")], tmp_path)


def test_the_context_withholds_every_plugins_secrets(tmp_path):
    context = PluginContext(root=tmp_path, secrets=("A",))
    assert context.secrets == ("A",) and context.root == tmp_path


def test_a_forge_status_plugin_needs_the_callers_store(tmp_path):
    spec = ForgeStatusSpec(name="status", token_env="T")
    with pytest.raises(ValueError, match="give make_plugins open_store"):
        make_plugins([spec], tmp_path)
    (plugin,) = make_plugins([spec], tmp_path, open_store=lambda: None)
    assert isinstance(plugin, ForgeStatusPlugin) and plugin.host == "github.com"
