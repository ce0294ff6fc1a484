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
loader before it is returned.

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

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from convoy.errors import ConvoyError
from convoy.manifest import Manifest, parse_manifest, version_problem
from convoy.untrusted import COMMIT_ID
from convoy.yamlcheck import c_yaml, no_cyclic_gc

DEFAULT_SHOWN = "manifests/manifest.yaml"
_SPACES = re.compile(r" +")
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
    root = compose_positions(text)
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
    try:
        edited = parse_manifest(result, shown)
    except ConvoyError as e:  # the edit broke the file: a bug here, not the user's doing
        raise RuntimeError(f"the bump of {bump.describe()} made an invalid manifest:\n{e}\n---\n{result}") from None
    _check_applied(edited, bump)
    return result, edited


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


def _value(mapping: Optional[Node], key: str) -> Optional[Node]:
    """The value node of `key` in a mapping node (None if absent)."""
    entry = _entry(mapping, key)
    return entry[1] if entry else None


def _entry(mapping: Optional[Node], key: str) -> Optional[tuple[Node, Node]]:
    if not isinstance(mapping, MappingNode):
        return None
    for key_node, value_node in mapping.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def _last_leaf_end(node: Node) -> int:
    """Where the last thing written for `node` ends: a block collection's own
    end mark runs on over the comments and blank lines after it."""
    if isinstance(node, MappingNode) and not node.flow_style and node.value:
        return _last_leaf_end(node.value[-1][1])
    if isinstance(node, SequenceNode) and not node.flow_style and node.value:
        return _last_leaf_end(node.value[-1])
    return node.end_mark.index


@dataclass(order=True)
class _Edit:
    start: int
    end: int
    seq: int
    text: str = field(compare=False)


class _Editor:
    """Collects replacements, insertions and deletions against the original
    text, then applies them all at once."""

    def __init__(self, text: str, shown: str) -> None:
        self.text = text
        self.shown = shown
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.edits: list[_Edit] = []
        self.inserted: dict[tuple[int, str], int] = {}  # (mapping id, key) -> where it was inserted

    def _add(self, start: int, end: int, text: str) -> None:
        self.edits.append(_Edit(start, end, len(self.edits), text))

    def apply(self) -> str:
        out, position = [], 0
        for edit in sorted(self.edits):
            if edit.start < position:
                raise RuntimeError(f"overlapping manifest edits at {edit.start}")
            out.append(self.text[position:edit.start])
            out.append(edit.text)
            position = edit.end
        out.append(self.text[position:])
        return "".join(out)

    # -- operations ----------------------------------------------------------

    def set(self, mapping: Node, key: str, value: str, *, after: Optional[str] = None) -> None:
        """Sets mapping[key] to the string `value`: in place if the key is
        there, else as a new entry after `after` (default: the last entry)."""
        entry = _entry(mapping, key)
        if entry is not None:
            key_node, node = entry
            self._check_editable(node, key, key_node.start_mark.line + 1)
            flow = self._in_flow(mapping)
            rendered = _render(value, node.style, flow)
            start, end = node.start_mark.index, node.end_mark.index
            # Keep an inline comment in its column (`version: v1   # note`),
            # as long as one space is left before it.
            spaces = _SPACES.match(self.text, end)
            gap = spaces.end() - end if spaces else 0
            if gap and self.text[end + gap:end + gap + 1] == "#":
                shift = len(rendered) - (end - start)
                rendered += " " * max(1, gap - shift)
                end += gap
            self._add(start, end, rendered)
        else:
            self._insert(mapping, key, value, after)

    def delete(self, mapping: Node, key: str) -> None:
        """Removes mapping[key] (its whole line in a block mapping); nothing if absent."""
        entry = _entry(mapping, key)
        if entry is None:
            return
        key_node, value_node = entry
        if mapping.flow_style:
            index = next(i for i, (k, _) in enumerate(mapping.value) if k is key_node)
            pairs = mapping.value
            if index > 0:  # from the end of the previous entry: ", key: value"
                self._add(_last_leaf_end(pairs[index - 1][1]), _last_leaf_end(value_node), "")
            elif len(pairs) > 1:  # the first of several: "key: value, "
                self._add(key_node.start_mark.index, pairs[1][0].start_mark.index, "")
            else:
                self._add(key_node.start_mark.index, _last_leaf_end(value_node), "")
            return
        start = self._line_start(key_node.start_mark.index)
        if self.text[start:key_node.start_mark.index].strip():
            self._refuse(key_node.start_mark.line + 1, key, "does not start its line")
        self._add(start, self._next_line(_last_leaf_end(value_node))[0], "")

    def add_mapping(self, mapping: Node, key: str, child_key: str, child_value: str) -> None:
        """Adds `key:` holding the one entry `child_key: child_value` at the end of `mapping`."""
        if mapping.flow_style:
            self._insert(mapping, key, None, None, raw=f"{{{child_key}: {_render(child_value, None, True)}}}")
            return
        indent = self._indent(mapping)
        parent = self._parent_column(mapping)
        step = indent - parent if parent is not None and indent > parent else 2
        nl = self.newline
        raw = f"{nl}{' ' * (indent + step)}{child_key}: {_render(child_value, None, False)}"
        self._insert(mapping, key, None, None, raw=raw)

    # -- helpers -------------------------------------------------------------

    def _insert(self, mapping: Node, key: str, value: Optional[str], after: Optional[str], *,
                raw: Optional[str] = None) -> None:
        """A new entry `key: value` (or `key:<raw>`) after `after` or the last entry."""
        position = self.inserted.get((id(mapping), after)) if after is not None else None
        if position is None:
            anchor = _entry(mapping, after) if after is not None else None
            if anchor is None and mapping.value:
                anchor = mapping.value[-1]
            position = self._after(mapping, anchor)
        flow = self._in_flow(mapping)
        if raw is None:
            body = f"{key}: {_render(value or '', self._sibling_style(mapping), flow)}"
        else:
            body = f"{key}:{raw}" if not flow else f"{key}: {raw}"
        if mapping.flow_style:
            text = f", {body}" if mapping.value else body
        else:
            prefix = "" if position == 0 or self.text[position - 1] == "\n" else self.newline
            text = f"{prefix}{' ' * self._indent(mapping)}{body}{self.newline}"
        self._add(position, position, text)
        self.inserted[(id(mapping), key)] = position

    def _after(self, mapping: Node, anchor: Optional[tuple[Node, Node]]) -> int:
        """Where an entry following `anchor` goes."""
        if mapping.flow_style:
            if anchor is None:  # an empty {}: just inside the brace
                return mapping.start_mark.index + 1
            return _last_leaf_end(anchor[1])
        return self._next_line(_last_leaf_end(anchor[1]))[0]

    def _next_line(self, index: int) -> tuple[int, bool]:
        """The start of the line after the one holding `index` (the text's
        end if there is none), and whether a line break was found."""
        newline = self.text.find("\n", index)
        if newline < 0:
            return len(self.text), False
        return newline + 1, True

    def _line_start(self, index: int) -> int:
        return self.text.rfind("\n", 0, index) + 1

    def _indent(self, mapping: Node) -> int:
        return mapping.value[0][0].start_mark.column

    def _parent_column(self, mapping: Node) -> Optional[int]:
        """The column of the key that holds `mapping` (its line's indentation)."""
        start = self._line_start(mapping.start_mark.index)
        parent_line_end = start - 1
        if parent_line_end < 0:
            return None
        line_start = self._line_start(parent_line_end)
        line = self.text[line_start:parent_line_end]
        # The key holding a block mapping is on the nearest line above that
        # is not blank or a comment.
        while not line.strip() or line.lstrip().startswith("#"):
            if line_start == 0:
                return None
            parent_line_end = line_start - 1
            line_start = self._line_start(parent_line_end)
            line = self.text[line_start:parent_line_end]
        return len(line) - len(line.lstrip(" "))

    def _sibling_style(self, mapping: Node) -> Optional[str]:
        """The quoting of the mapping's last scalar value, for a new value to match."""
        for _, value in reversed(mapping.value):
            if isinstance(value, ScalarNode):
                return value.style if value.style in ("'", '"') else None
        return None

    def _in_flow(self, mapping: Node) -> bool:
        return bool(mapping.flow_style)

    def _check_editable(self, node: Node, key: str, line: int) -> None:
        """Refuses values whose text is not just the value: a collection, a
        multi-line scalar, an anchor or alias (one node, several places)."""
        if not isinstance(node, ScalarNode):
            self._refuse(line, key, "is not a single value")
        if node.style in ("|", ">") or node.start_mark.line != node.end_mark.line:
            self._refuse(line, key, "spans several lines")
        if getattr(node, "anchor", None) or self.text[node.start_mark.index] in "*&":
            self._refuse(line, key, "is a YAML anchor or alias")

    def _refuse(self, line: int, key: str, why: str) -> None:
        raise ConvoyError(
            f"{self.shown}:{line}: '{key}' {why}, which convoy cannot edit while keeping the file as written; "
            f"write it as one plain line ({key}: value)"
        )


def _render(value: str, style: Optional[str], flow: bool) -> str:
    """`value` as a YAML scalar in the given quoting ("'", '"' or plain);
    plain only if it reads back as the same string there."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"' or not _plain_ok(value, flow):
        return _double_quoted(value)
    return value


def _double_quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _plain_ok(value: str, flow: bool) -> bool:
    if not value or value != value.strip() or any(c in value for c in "\n\r\t"):
        return False
    document = f"{{k: {value}}}" if flow else f"k: {value}\n"
    try:
        loaded: Any = YAML(typ="safe", pure=True).load(document)
    except YAMLError:
        return False
    return isinstance(loaded, dict) and loaded == {"k": value}
