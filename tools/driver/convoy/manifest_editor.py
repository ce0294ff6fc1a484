"""The text editor under convoy.manifest_edit: replacements, insertions and
deletions at the positions of a composed node tree, applied all at once.

    editor = _Editor(text, shown)
    editor.set(component_node, "version", "v2.2.0")       # in place, keeping quotes and a comment's column
    editor.delete(component_node, "commit")                # the key's whole line
    new_text = editor.apply()

`_value` and `_entry` find a key's nodes in a mapping node; `_render` writes
a scalar in the quoting of its neighbours. convoy.manifest_edit decides
what to change (the bump's semantics); this module only changes text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from convoy.errors import ConvoyError

_SPACES = re.compile(r" +")


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
