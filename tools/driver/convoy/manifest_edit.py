"""The bump: a text edit of manifest.yaml that keeps the person's file.

`apply_bump` changes a component's version (and what pins it) or one
configuration's pin, and nothing else: every byte outside the changed lines
stays as it was (comments, quoting, key order, blank lines, flow lists like
`[a, b]`). It works on the text, at the positions ruamel.yaml reports for
each key and value (the start and end marks of the nodes its C composer
makes; see compose_positions): a value is
replaced in place, keeping its quotes; a new key is a new line with the
indentation of its siblings (or `, key: value` in a flow mapping `{...}`); a
removed key loses its line. The result is checked again with the manifest
loader before it is returned: the whole of it, or, when every edit is
inside one component's lines and no line moved, that component's lines
(the rest of the text, byte for byte the one already validated, keeps its
parsed components and configurations).

The manifest is parsed and validated once per text (convoy.manifest's
cache): the text a bump starts from is usually the one the previous bump
made and validated, and the validated result is returned with the text
(bump_manifest), so that the caller need not parse it again.

    new_text = apply_bump(text, Bump("planner", "v2.2.0", commit="5e6f..."))

Semantics, for Bump(component, version, commit, configuration, archive_url,
strip_prefix):

- configuration None: `components.<component>.version` becomes `version`.
  With `commit`, the component's `commit:` is set (replaced, or added after
  `version:`); without, an existing `commit:` is removed (it pinned the old
  version). The component must come from git to take a commit. An
  archive's `sha256:` is removed too (it pinned the old archive; convoy
  lock resolves the new one).
- archive_url: the component becomes `source: archive` with that `url` (and
  `strip_prefix` if given); keys of its old source that an archive does not
  have (`remote`, `commit`, `path`) go, and so do an old `sha256` and
  `strip_prefix` (they described the old archive). `commit` is not written:
  convoy lock pins an archive by its sha256.
- configuration X: `configurations.X.pins.<component>` becomes `version`
  (`pins:` is created if X has none); the component must be in X, and a
  pin takes a version only (no commit, no archive).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node

from convoy.errors import ConvoyError
from convoy.manifest import Manifest, parse_manifest, version_problem
from convoy.manifest_editor import _Editor, _entry, _last_leaf_end, _value
from convoy.untrusted import COMMIT_ID
from convoy.yamlcheck import c_yaml, no_cyclic_gc

DEFAULT_SHOWN = "manifests/manifest.yaml"
_URL_SCHEMES = ("http://", "https://", "file://")
# Characters after which the C parser's positions are not the text's: see compose_positions.
_OTHER_POSITIONS = ("\ufeff", "\x85", "\u2028", "\u2029")
# Keys an archive component does not keep when a bump makes it one.
_DROPPED_FOR_ARCHIVE = ("remote", "commit", "path", "sha256", "strip_prefix")


@dataclass(frozen=True)
class Bump:
    """One change to the manifest (see the module docstring)."""

    component: str
    version: str
    commit: Optional[str] = None
    configuration: Optional[str] = None
    archive_url: Optional[str] = None
    strip_prefix: Optional[str] = None

    def describe(self) -> str:
        """e.g. "planner v2.2.0" or "firmware v2.9.5 in drone"."""
        where = f" in {self.configuration}" if self.configuration else ""
        return f"{self.component} {self.version}{where}"


def apply_bump(text: str, bump: Bump, *, shown: str = DEFAULT_SHOWN) -> str:
    """The manifest `text` with `bump` applied; see the module docstring and bump_manifest."""
    return bump_manifest(text, bump, shown=shown)[0]


def bump_manifest(text: str, bump: Bump, *, shown: str = DEFAULT_SHOWN) -> tuple[str, Manifest]:
    """The manifest `text` with `bump` applied, and that text as parsed and validated.

    Raises ConvoyError (one line per problem, naming `shown`) if the
    manifest is not valid to begin with, if the bump does not fit it
    (unknown component or configuration, a malformed version or commit), or
    if a value to change is written in a form this edit cannot keep (a
    multi-line or aliased value).
    """
    manifest = parse_manifest(text, shown)  # once per text: the queue's last bump parsed this one
    _check_bump(manifest, bump, shown)
    root = _component_positions(text, manifest, bump) or compose_positions(text)
    editor = _Editor(text, shown)
    if bump.configuration is None:
        component = _value(_value(root, "components"), bump.component)
        if bump.archive_url is not None:
            editor.set(component, "source", "archive")
            editor.set(component, "version", bump.version)
            editor.set(component, "url", bump.archive_url, after="version")
            for key in _DROPPED_FOR_ARCHIVE:
                if key == "strip_prefix" and bump.strip_prefix is not None:
                    editor.set(component, key, bump.strip_prefix, after="url")
                else:
                    editor.delete(component, key)
        else:
            editor.set(component, "version", bump.version)
            if bump.commit is not None:
                editor.set(component, "commit", bump.commit, after="version")
            else:
                editor.delete(component, "commit")
            editor.delete(component, "sha256")
    else:
        configuration = _value(_value(root, "configurations"), bump.configuration)
        pins = _value(configuration, "pins")
        if pins is None:
            editor.add_mapping(configuration, "pins", bump.component, bump.version)
        else:
            editor.set(pins, bump.component, bump.version)
    result = editor.apply()
    edited = _derived(manifest, bump, text, result, root, editor, shown)
    if edited is None:
        try:
            edited = parse_manifest(result, shown)
        except ConvoyError as e:  # the edit broke the file: a bug here, not the user's doing
            raise RuntimeError(f"the bump of {bump.describe()} made an invalid manifest:\n{e}\n---\n{result}") from None
    _check_applied(edited, bump)
    return result, edited


def _derived(manifest: Manifest, bump: Bump, text: str, result: str, root: Optional[Node], editor: "_Editor",
             shown: str) -> Optional[Manifest]:
    """The edited manifest without parsing all of `result` again, or None
    (the caller then parses it whole): when the bump changed one component's
    block mapping (every edit inside its lines) and kept every line where it
    was, the new Manifest is the old one with that component read again from
    its own lines (checked as the full load checks it) and the new text's
    sha256; it is cached as parse_manifest's result for `result`."""
    if bump.configuration is not None:
        return None
    entry = _entry(_value(root, "components"), bump.component)
    if entry is None or not isinstance(entry[1], MappingNode) or entry[1].flow_style or not entry[1].value:
        return None
    key_node, node = entry
    start = editor._line_start(key_node.start_mark.index)
    end = editor._next_line(_last_leaf_end(node))[0]
    if key_node.start_mark.line < 1 or any(e.start < start or e.end > end for e in editor.edits):
        return None
    delta = len(result) - len(text)
    block = result[start:end + delta]
    if (block.count("\n") != text.count("\n", start, end) or result[:start] != text[:start]
            or result[end + delta:] != text[end:] or any(c in block for c in _OTHER_POSITIONS + ("\r",))):
        return None
    from convoy import manifest as manifest_module
    from convoy.manifest_check import ManifestChecker
    from convoy.yamlcheck import EventReader

    # The component's lines at their own line numbers, under a `components:` on the line above.
    mini = "\n" * (key_node.start_mark.line - 1) + "components:\n" + block
    try:
        with no_cyclic_gc():
            reader = EventReader(shown, mini)
            found = []
            for key, _, value in reader.entries(reader.document()):
                for name, name_event, spec in reader.entries(value):
                    found.append((name, reader.build(spec), name_event.start_mark.line + 1))
            reader.end()
    except Exception:  # noqa: BLE001 -- anything unusual: the full parse judges
        return None
    if len(found) != 1 or found[0][0] != bump.component:
        return None
    checker = ManifestChecker(shown)
    component = checker.named_component(*found[0])
    if component is not None:
        checker.local_paths({bump.component: component}, manifest.configurations)
    if component is None or checker.problems:
        return None
    return manifest_module.remember(result, dataclasses.replace(
        manifest, path=shown, components={**manifest.components, bump.component: component}))


def compose_positions(text: str) -> Optional[Node]:
    """The node tree of `text` (valid: parse_manifest bounded and checked it
    first), whose marks are the positions to edit.

    From ruamel's C composer (linear, several times faster than the pure
    one); from the pure one if the C parser cannot read the text (it refuses
    some flow scalars the pure one takes, e.g. `{remote: https://x}`; so
    did parse_manifest, which then read it with the pure one too) or would
    count positions otherwise (it skips a byte order mark; NEL, LS and PS
    are line breaks to it).
    """
    with no_cyclic_gc():
        if not any(c in text for c in _OTHER_POSITIONS):
            try:
                return c_yaml().compose(text)
            except Exception:  # noqa: BLE001 -- any failure: as parse_manifest, the pure composer reads it
                pass
        return YAML(typ="safe", pure=True).compose(text)


def _component_positions(text: str, manifest: Manifest, bump: Bump) -> Optional[Node]:
    """compose_positions of only the lines a component's bump edits, or None:
    `components:` then the component's lines (from its name to the next
    component's), everything before them blanked to spaces so that every
    mark (index, line, column) is the one in `text`. Not for a pin's bump,
    the last component, or a text whose positions the C parser counts otherwise."""
    if bump.configuration is not None or "\r" in text or any(c in text for c in _OTHER_POSITIONS):
        return None
    names = list(manifest.components)
    component = manifest.components.get(bump.component)
    index = names.index(bump.component) if component is not None else len(names)
    if index + 1 >= len(names):
        return None
    first, after = component.line, manifest.components[names[index + 1]].line
    start = 0
    for _ in range(first - 1):
        start = text.find("\n", start) + 1
        if start == 0:
            return None
    end = start
    for _ in range(after - first):
        end = text.find("\n", end) + 1
        if end == 0:
            return None
    head = text.find("\n")
    if head < len("components:") or head >= start:
        return None
    blank = "\n".join(" " * len(line) for line in text[len("components:"):start].split("\n"))
    mini = "components:" + blank + text[start:end]
    try:
        with no_cyclic_gc():
            root = c_yaml().compose(mini)
    except Exception:  # noqa: BLE001 -- any failure: the whole text's positions
        return None
    entry = _entry(_value(root, "components"), bump.component)
    if entry is None or entry[0].start_mark.index != text.find(bump.component, start) \
            or len(_value(root, "components").value) != 1:
        return None
    return root


def _check_bump(manifest: Manifest, bump: Bump, shown: str) -> None:
    problems = []
    component = manifest.components.get(bump.component)
    if component is None:
        problems.append(
            f"{shown}: unknown component '{bump.component}' (known: {', '.join(sorted(manifest.components))}); "
            f"check the name, or declare it under components: in {shown} first"
        )
    problem = version_problem(bump.version)
    if problem:
        problems.append(f"{problem}; give a version like v1.2.3")
    if bump.commit is not None and not COMMIT_ID.fullmatch(bump.commit):
        problems.append(
            f"'{bump.commit}' is not a full commit id (40 lowercase hex digits); "
            "give the full id, e.g. from git rev-parse <tag>"
        )
    if bump.archive_url is not None and not bump.archive_url.startswith(_URL_SCHEMES):
        problems.append(f"archive URL '{bump.archive_url}' must start with http://, https:// or file://; fix it")
    if bump.strip_prefix is not None and bump.archive_url is None:
        problems.append("strip_prefix goes with an archive URL; give the archive URL too, or drop strip_prefix")
    if bump.configuration is not None:
        configuration = manifest.configurations.get(bump.configuration)
        if configuration is None:
            problems.append(
                f"{shown}: unknown configuration '{bump.configuration}' (known: "
                f"{', '.join(sorted(manifest.configurations))}); check the name or bump every configuration"
            )
        elif component is not None and bump.component not in configuration.components:
            problems.append(
                f"{shown}: configuration '{bump.configuration}' does not include '{bump.component}' (it has: "
                f"{', '.join(configuration.components)}); bump another configuration, or add it to "
                f"configurations.{bump.configuration}.components"
            )
        if bump.commit is not None or bump.archive_url is not None:
            problems.append(
                f"a pin in configurations.{bump.configuration}.pins names a version only; drop the commit and "
                "archive URL, or bump the component for every configuration"
            )
    elif component is not None and bump.commit is not None and bump.archive_url is None \
            and component.source != "git":
        problems.append(
            f"{shown}: component '{bump.component}' comes from source {component.source}, and only git sources "
            "take a commit; drop the commit, or give an archive URL"
        )
    if problems:
        raise ConvoyError.of(problems)


def _check_applied(manifest: Manifest, bump: Bump) -> None:
    """Guards against an edit that parsed but said something else."""
    component = manifest.components[bump.component]
    if bump.configuration is not None:
        ok = manifest.configurations[bump.configuration].pins.get(bump.component) == bump.version
    elif bump.archive_url is not None:
        ok = (component.source, component.version, component.url, component.strip_prefix) == (
            "archive", bump.version, bump.archive_url, bump.strip_prefix)
    else:
        ok = (component.version, component.commit, component.sha256) == (bump.version, bump.commit, None)
    if not ok:
        raise RuntimeError(f"the bump of {bump.describe()} did not take effect: {component}")
