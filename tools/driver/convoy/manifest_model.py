"""What a valid manifest holds: its components and configurations.

    manifest = load_manifest("manifests/manifest.yaml")     # convoy.manifest
    manifest.components["planner"]                          # Component, as declared
    manifest.resolved("rover")                              # the configuration's components, pins applied
    manifest.view("planner")                                # ManifestView: what `convoy submit` needs

convoy.manifest_check builds them from a manifest with no problem: every
field holds a checked value, and every line number points into the
manifest (for messages about a component or a pin).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Optional

from convoy.errors import ConvoyError


@dataclass(frozen=True)
class Component:
    """One component as the manifest declares it.

    `line` is the (1-based) line of its name; `key_lines` the line of each of
    its keys, so that a message can point at the `remote` or `version` line.
    """

    name: str
    source: str
    version: str
    line: int
    remote: Optional[str] = None
    commit: Optional[str] = None
    url: Optional[str] = None
    strip_prefix: Optional[str] = None
    sha256: Optional[str] = None
    path: Optional[str] = None
    key_lines: Mapping[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> int:
        """The line of `key` in the manifest, or of the component's name."""
        return self.key_lines.get(key, self.line)


@dataclass(frozen=True)
class Configuration:
    """A named selection of components; `pins` overrides their versions
    (`pin_lines`: the line of each pin)."""

    name: str
    components: tuple[str, ...]
    pins: Mapping[str, str]
    line: int
    pin_lines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """A valid manifest. `path` is as given to load_manifest; `sha256` is the
    hex digest of the file's bytes."""

    path: str
    sha256: str
    default_configuration: str
    tag_format: str
    components: dict[str, Component]
    configurations: dict[str, Configuration]

    def resolved(self, configuration_name: str) -> dict[str, Component]:
        """The components of a configuration, in its order, with its pins
        applied and `{version}` substituted in path, url and strip_prefix.

        A pin to another version drops the component's `commit` and `sha256`:
        those pin the manifest's version, not the pinned one.
        """
        configuration = self.configurations.get(configuration_name)
        if configuration is None:
            raise ConvoyError(
                f"unknown configuration '{configuration_name}' (expected one of: "
                f"{', '.join(sorted(self.configurations))}); pick one of those or add it to {self.path}"
            )
        result = {}
        components, pins = self.components, configuration.pins
        for name in configuration.components:
            component = components[name]
            pin = pins.get(name) if pins else None
            if pin is not None and pin != component.version:
                lines = MappingProxyType({**component.key_lines, "version": configuration.pin_lines[name]})
                component = _with(component, version=pin, commit=None, sha256=None, key_lines=lines)
            if component.url or component.strip_prefix or component.path:
                component = _substitute_version(component)
            result[name] = component
        return result

    def view(self, component_name: str) -> "ManifestView":
        """What `convoy submit` needs of this manifest for `component_name`."""
        return ManifestView(
            path=self.path, name=component_name, component=self.components.get(component_name),
            component_names=tuple(self.components),
            members=MappingProxyType({name: c.components for name, c in self.configurations.items()}),
        )


@dataclass(frozen=True)
class ManifestView:
    """What `convoy submit` reads of a manifest: the component `name` (None
    if there is none), checked as load_manifest checks it, the names of all
    components, and each configuration's components (`members`).

    convoy.manifest.read_component makes one from the parts of the file it
    needs; Manifest.view from a whole manifest.
    """

    path: str
    name: str
    component: Optional[Component]
    component_names: tuple[str, ...]
    members: Mapping[str, tuple[str, ...]]


def _with(component: Component, **changes) -> Component:
    """dataclasses.replace of a Component (it has no __post_init__), without
    replace's walk of the fields: a manifest of thousands of pins calls it
    thousands of times."""
    new = object.__new__(Component)
    new.__dict__.update(component.__dict__, **changes)
    return new


def _substitute_version(component: Component) -> Component:
    if not any(value and "{version}" in value for value in (component.url, component.strip_prefix, component.path)):
        return component  # frozen: nothing to substitute, the same object

    def sub(value: Optional[str]) -> Optional[str]:
        return None if value is None else value.replace("{version}", component.version)

    return _with(component, url=sub(component.url), strip_prefix=sub(component.strip_prefix), path=sub(component.path))
