"""What a valid manifest is, and the checker that finds every mistake in one.

    checker = ManifestChecker("manifests/manifest.yaml")
    manifest = parse_checked(text, checker, lambda document: checker.manifest(document, sha256))

(convoy.manifest's `load_manifest` and `parse_manifest` do just that.) The
checker walks the round-trip document (convoy.yamlcheck), collects
(line, message) problems and builds the dataclasses of
convoy.manifest_model from what is valid. Each section is checked by its
own object, which reports to the one checker:

    ManifestValues     the problems and the value checks every section makes (versions, names)
    _Components        `components:`: each one's source, version and where it comes from
    _Configurations    `configurations:` (members and pins) and `default_configuration`
    ManifestChecker    a ManifestValues: the document, its keys, `schema_version`, `release`,
                       and the paths of local components with every version they are resolved with

The schema's keys, sources and reserved names are here; the rules of
version strings and tag formats are convoy.versions'.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, Mapping, Optional

from convoy import untrusted
from convoy.manifest_model import Component, Configuration, Manifest
from convoy.versions import DEFAULT_TAG_FORMAT, tag_format_problem, version_problem
from convoy.yamlcheck import Checker, dotted, key_line, kind_of

SCHEMA_VERSION = 1
SOURCES = ("git", "archive", "local")
RESERVED_NAMES = frozenset({
    "convoy_manifest", "bazel_tools", "platforms", "bazel_skylib", "rules_python",
    "rules_cc", "rules_java", "remote_coverage_tools", "local_config_platform",
})

_TOP_KEYS = ("schema_version", "default_configuration", "release", "components", "configurations")
_RELEASE_KEYS = ("tag_format",)
_CONFIGURATION_KEYS = ("components", "pins")
_SOURCE_KEYS = {  # source and version first
    "git": ("source", "version", "remote", "commit"),
    "archive": ("source", "version", "url", "strip_prefix", "sha256"),
    "local": ("source", "version", "path"),
}
_ALL_COMPONENT_KEYS = tuple(dict.fromkeys(k for keys in _SOURCE_KEYS.values() for k in keys))
_REQUIRED_BY_SOURCE = {"git": "remote", "archive": "url", "local": "path"}

_EXAMPLES = {  # shown in "how to fix" hints
    "default_configuration": "<configuration name>",
    "tag_format": '"v{year}.{month}.{n}"',
    "source": "git",
    "version": "v1.2.3",
    "remote": "https://git.example.com/team/<name>.git",
    "commit": "<40-hex commit id>",
    "url": "https://example.com/<name>-{version}.tar.gz",
    "strip_prefix": "<name>-{version}",
    "sha256": "<64-hex digest>",
    "path": "components/<name>/{version}",
}

_COMPONENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_COMPONENT_NAME_RULE = "a Bazel repository name: a letter, then letters, digits, _ . -"
_CONFIGURATION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_CONFIGURATION_NAME_RULE = "a letter, then letters, digits, _ -"
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _unknown_component(name: object, known: Mapping[str, Any]) -> str:
    return f"unknown component '{name}' (known: {', '.join(sorted(known))})"


class ManifestValues(Checker):
    """The value checks that both sections of the manifest make."""

    EXAMPLES = _EXAMPLES

    def version(self, parent: Mapping, key: str, where: str, missing_at: int) -> Optional[str]:
        """parent[key] if it is a valid version string."""
        version = self.string(parent, key, where, missing_at, example=_EXAMPLES["version"])
        problem = version_problem(version) if version is not None else None
        if problem:
            self.problem(key_line(parent, key), dotted(where, key), problem, "fix it, e.g. v1.2.3")
            return None
        return version

    def name(self, name: object, line: int, where: str, kind: str, pattern: re.Pattern, rule: str) -> None:
        if not isinstance(name, str) or not pattern.fullmatch(name):
            self.problem(line, where, f"'{name}' is not a valid {kind} name ({rule})", "rename it")
        elif kind == "component" and name in RESERVED_NAMES:
            self.problem(line, where, f"'{name}' is reserved (a repository name Bazel or convoy uses)", "rename it")



class _Components:
    """The `components:` section, checked with the manifest's `checker`."""

    def __init__(self, checker: ManifestValues) -> None:
        self.checker = checker

    def components(self, document: Mapping) -> Optional[dict[str, Optional[Component]]]:
        """Every declared name -> its Component, or None if it is invalid (the
        name still counts, so that configurations using it get no second
        error). None if there is no valid `components` mapping at all."""
        components = self.checker.mapping(document, "components", "", missing_at=1)
        if components is None:
            return None
        result: dict[str, Optional[Component]] = {}
        for name, spec in components.items():
            result[str(name)] = self.named_component(name, spec, key_line(components, name))
        return result

    def named_component(self, name: object, spec: Any, line: int) -> Optional[Component]:
        """The component declared as `name` at `line`, its name checked too."""
        self.checker.name(name, line, "components", "component", _COMPONENT_NAME, _COMPONENT_NAME_RULE)
        return self.component(str(name), spec, line)

    def component(self, name: str, spec: Any, line: int) -> Optional[Component]:
        where = f"components.{name}"
        if not isinstance(spec, Mapping):
            self.checker.problem(
                line, where, f"must be a mapping, not {kind_of(spec)}",
                "give it source:, version: and where it comes from",
            )
            return None
        errors = len(self.checker.problems)
        source = self.checker.string(spec, "source", where, missing_at=line)
        if source is not None and source not in SOURCES:
            self.checker.problem(
                key_line(spec, "source"), f"{where}.source",
                f"unknown source '{source}' (expected: {', '.join(SOURCES)})", "fix it",
            )
            source = None
        self.checker.unknown_keys(spec, where, _SOURCE_KEYS[source] if source else _ALL_COMPONENT_KEYS)
        version = self.checker.version(spec, "version", where, line)
        values = {}
        if source is not None:
            for key in _SOURCE_KEYS[source][2:]:
                required_at = line if key == _REQUIRED_BY_SOURCE[source] else None
                values[key] = self.checker.string(spec, key, where, required_at)
            self.source_values(spec, where, values)
        if len(self.checker.problems) > errors:
            return None
        key_lines = MappingProxyType({str(k): key_line(spec, k) for k in spec})
        return Component(name=name, source=source, version=version, line=line, key_lines=key_lines, **values)

    def source_values(self, spec: Mapping, where: str, values: dict[str, Optional[str]]) -> None:
        """Checks the form of commit, sha256, remote and url; lowercases sha256."""
        checks = (
            ("commit", untrusted.COMMIT_ID.fullmatch, "is not a full commit id (40 lowercase hex digits)",
             "write the full id, e.g. from git rev-parse <tag>"),
            ("sha256", _SHA256.fullmatch, "is not a sha256 (64 hex digits)",
             "fix it, or remove it to trust the archive as downloaded"),
        )
        for key, valid, what, fix in checks:
            value = values.get(key)
            if value is not None and not valid(value):
                self.checker.problem(key_line(spec, key), dotted(where, key), f"'{untrusted.printable(value)}' {what}",
                                     fix)
        for key, problem_of, fix in (
            ("remote", untrusted.remote_problem, "write an absolute path or a URL (https://, ssh://, git://, file://)"),
            ("url", untrusted.url_problem, "fix it"),
        ):
            value = values.get(key)
            problem = problem_of(value) if value is not None else None
            if problem:
                self.checker.problem(key_line(spec, key), dotted(where, key),
                                     f"'{untrusted.printable(value)}' {problem}", fix)
        if values.get("sha256"):
            values["sha256"] = values["sha256"].lower()



class _Configurations:
    """The `configurations:` section and `default_configuration`, checked with the manifest's `checker`."""

    def __init__(self, checker: ManifestValues) -> None:
        self.checker = checker

    def configurations(
        self, document: Mapping, known: Optional[Mapping[str, Any]]
    ) -> dict[str, Optional[Configuration]]:
        """Every declared name -> its Configuration, or None if it is invalid.
        `known` holds the component names (None: there are none to check)."""
        configurations = self.checker.mapping(document, "configurations", "", missing_at=1)
        if configurations is None:
            return {}
        if not configurations:
            self.checker.problem(
                key_line(document, "configurations"), "configurations", "must name at least one configuration",
                "add one, e.g. default: {components: [<component>, ...]}",
            )
        result = {}
        for name, spec in configurations.items():
            line = key_line(configurations, name)
            self.checker.name(name, line, "configurations", "configuration", _CONFIGURATION_NAME,
                              _CONFIGURATION_NAME_RULE)
            result[str(name)] = self.configuration(str(name), spec, line, known)
        return result

    def configuration(
        self, name: str, spec: Any, line: int, known: Optional[Mapping[str, Any]]
    ) -> Optional[Configuration]:
        where = f"configurations.{name}"
        if not isinstance(spec, Mapping):
            self.checker.problem(
                line, where, f"must be a mapping, not {kind_of(spec)}", "write it like: components: [<component>, ...]"
            )
            return None
        errors = len(self.checker.problems)
        self.checker.unknown_keys(spec, where, _CONFIGURATION_KEYS)
        members = self.members(spec, where, line, known)
        pins, pin_lines = self.pins(spec, where, members, known)
        if len(self.checker.problems) > errors:
            return None
        return Configuration(
            name=name, components=tuple(members), pins=MappingProxyType(pins), line=line,
            pin_lines=MappingProxyType(pin_lines),
        )

    def members(
        self, spec: Mapping, where: str, line: int, known: Optional[Mapping[str, Any]]
    ) -> Optional[list[str]]:
        """The configuration's component names; None if there is no valid list."""
        if "components" not in spec:
            self.checker.problem(
                line, where, "missing required key 'components'", "add it, e.g. components: [<component>, ...]"
            )
            return None
        items = spec["components"]
        where = f"{where}.components"
        if not isinstance(items, list):
            self.checker.problem(
                key_line(spec, "components"), where, f"must be a list, not {kind_of(items)}",
                "write it like components: [a, b]",
            )
            return None
        if not items:
            self.checker.problem(
                key_line(spec, "components"), where, "must list at least one component",
                "add the components of this configuration",
            )
        members: dict[str, None] = {}  # in order; a dict, to find one listed twice at once
        positions = items.lc  # read once: a property (CommentedSeq's own iteration is slow too)
        for index, item in enumerate(list.__iter__(items)):
            if isinstance(item, str) and (known is None or item in known) and item not in members:
                members[item] = None  # the common case: its line is not needed
                continue
            item_line = positions.item(index)[0] + 1
            if not isinstance(item, str):
                self.checker.problem(item_line, where, f"items must be component names, not {kind_of(item)}",
                                     "write a name")
            elif known is not None and item not in known:
                self.checker.problem(
                    item_line, where, _unknown_component(item, known), "fix the name or declare it under components:"
                )
            else:
                self.checker.problem(item_line, where, f"'{item}' is listed twice", "remove one")
        return list(members)

    def pins(
        self, spec: Mapping, where: str, members: Optional[list[str]], known: Optional[Mapping[str, Any]]
    ) -> tuple[dict[str, str], dict[str, int]]:
        """{component: version} and {component: line} of the configuration's pins."""
        pins_spec = self.checker.mapping(spec, "pins", where)
        if pins_spec is None:
            return {}, {}
        pins_where = f"{where}.pins"
        pins, pin_lines = {}, {}
        members = None if members is None else dict.fromkeys(members)  # found at once
        for name in pins_spec:
            line = key_line(pins_spec, name)
            if known is not None and name not in known:
                self.checker.problem(line, pins_where, _unknown_component(name, known),
                                     "fix the name or remove the pin")
            elif members is not None and name not in members:
                self.checker.problem(
                    line, pins_where, f"'{name}' is not in this configuration's components",
                    f"add it to {where}.components or remove the pin",
                )
            version = self.checker.version(pins_spec, name, pins_where, line)
            if version is not None:
                pins[str(name)] = version
                pin_lines[str(name)] = line
        return pins, pin_lines

    def default_configuration(self, document: Mapping, configurations: Mapping[str, Any]) -> str:
        default = self.checker.string(document, "default_configuration", "", missing_at=1)
        if default is not None and configurations and default not in configurations:
            self.checker.problem(
                key_line(document, "default_configuration"), "default_configuration",
                f"'{default}' is not a configuration (expected one of: {', '.join(sorted(configurations))})",
                "fix it or add that configuration",
            )
        return default



class ManifestChecker(ManifestValues):
    """Walks the parsed manifest, collecting (line, message) problems and
    building the dataclasses from what is valid; its sections are checked
    by `_Components` and `_Configurations`, with this checker's values."""

    def __init__(self, shown: str) -> None:
        super().__init__(shown)
        self._components = _Components(self)
        self._configurations = _Configurations(self)

    def named_component(self, name: object, spec: Any, line: int) -> Optional[Component]:
        """The component declared as `name` at `line`, its name checked too."""
        return self._components.named_component(name, spec, line)

    def configurations(
        self, document: Mapping, known: Optional[Mapping[str, Any]]
    ) -> dict[str, Optional[Configuration]]:
        """Every declared name -> its Configuration, or None if it is invalid
        (`known`: the component names; None: there are none to check)."""
        return self._configurations.configurations(document, known)

    # -- the document -----------------------------------------------------

    def manifest(self, document: Any, sha256: str) -> Optional[Manifest]:
        if not isinstance(document, Mapping):
            what = "is empty" if document is None else f"must be a mapping, not {kind_of(document)}"
            self.problem(1, "", f"the manifest {what}", "give it default_configuration, components and configurations")
            return None
        self.unknown_keys(document, "", _TOP_KEYS)
        self.schema_version(document)
        tag_format = self.release(document)
        components = self._components.components(document)
        configurations = self.configurations(document, components)
        default = self._configurations.default_configuration(document, configurations)
        self.local_paths(components or {}, configurations)
        if self.problems:
            return None
        return Manifest(  # no problems: every component and configuration is valid
            path=self.shown,
            sha256=sha256,
            default_configuration=default,
            tag_format=tag_format,
            components=components,
            configurations=configurations,
        )

    def local_paths(
        self, components: Mapping[str, Optional[Component]], configurations: Mapping[str, Optional[Configuration]]
    ) -> None:
        """Checks the path of each local component with every version it is
        resolved with (its own and its pins'): inside the integration repository."""
        for name, component in components.items():
            if component is None or component.source != "local":
                continue
            versions = {component.version: (component.line_of("path"), "")}
            for configuration in configurations.values():
                if configuration is not None and name in configuration.pins:
                    pin = configuration.pins[name]
                    which = f" (version {pin} of {configuration.name})"
                    versions.setdefault(pin, (configuration.pin_lines[name], which))
            for version, (line, which) in versions.items():
                path = component.path.replace("{version}", version)
                problem = untrusted.local_path_problem(path)
                if problem:
                    self.problem(
                        line, f"components.{name}.path", f"'{untrusted.printable(path)}'{which} {problem}",
                        f"write a path inside the integration repository, e.g. path: {_EXAMPLES['path']}",
                    )
                    break

    def schema_version(self, document: Mapping) -> None:
        value = document.get("schema_version", SCHEMA_VERSION)
        if value == SCHEMA_VERSION and type(value) is int:
            return
        if type(value) is int:
            what, fix = f"{value} is not supported (this convoy reads {SCHEMA_VERSION})", "upgrade convoy or fix it"
        else:
            what = f"must be the number {SCHEMA_VERSION}, not {kind_of(value)}"
            fix = f"write schema_version: {SCHEMA_VERSION}"
        self.problem(key_line(document, "schema_version"), "schema_version", what, fix)

    def release(self, document: Mapping) -> str:
        release = self.mapping(document, "release", "")
        if release is None:
            return DEFAULT_TAG_FORMAT
        self.unknown_keys(release, "release", _RELEASE_KEYS)
        tag_format = self.string(release, "tag_format", "release")
        if tag_format is None:
            return DEFAULT_TAG_FORMAT
        problem = tag_format_problem(tag_format)
        if problem:
            self.problem(
                key_line(release, "tag_format"), "release.tag_format", problem,
                f"fix it, e.g. tag_format: {_EXAMPLES['tag_format']}",
            )
        return tag_format
