"""convoy.manifest's fast read of one component (`_fast_view`) for a plainly
written manifest: `components` and `configurations` matched whole by a
strict grammar (a subset of YAML), the component's own lines and the rest
of the file parsed by the C parser. Raises Irregular for anything else;
convoy.manifest.component_view then reads the file with the event reader.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Optional

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.events import MappingEndEvent, MappingStartEvent, ScalarEvent

from convoy.manifest_check import SCHEMA_VERSION, ManifestChecker
from convoy.manifest_model import ManifestView
from convoy.yamlcheck import MAX_BYTES, EventReader, Irregular, conflict_marker_line

# _fast_view's grammar: a strict subset of YAML, line by line, whose meaning is plain.
_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
_PLAIN = r"[A-Za-z0-9_./~+=$(][^\s#:]*(?::[^\s#:]+)*"
_SCALAR = rf"(?:{_PLAIN}|\"[^\"\\\n]*\"|'[^'\n]*')"
_TAIL = r"(?:[ ]+#[^\n]*)?[ ]*\n"
_SKIP = r"(?:[ ]*(?:#[^\n]*)?\n)"  # a blank or comment-only line
_TOP = re.compile(r"^([^ \n#][^\n]*)\n", re.MULTILINE)
_TOP_KEY = re.compile(rf"({_NAME}):(?:[ ]+(.*?))?{_TAIL[:-2]}")
_SPECIAL = frozenset(("true", "false", "null", "yes", "no", "on", "off", "y", "n"))


_MARKERS = ("<" * 7, "=" * 7, ">" * 7, "|" * 7)  # yamlcheck's conflict markers, at a line's start


def _has_conflict_marker(text: str) -> bool:
    """conflict_marker_line(text) is not None, by a substring search first
    (far faster than its pattern's ^ at every line of a large file)."""
    if not text.startswith(_MARKERS) and not any(f"\n{marker}" in text for marker in _MARKERS):
        return False
    return conflict_marker_line(text) is not None


_TOP_START = re.compile(r"\n(?=[^ \n#])")  # a newline before a top-level line: found by its literal "\n"


def _top_starts(text: str) -> list[int]:
    """Where each top-level line starts (not a blank, comment or indented
    line): what _TOP finds, five times faster than its ^ at every line."""
    starts = [0] if text and text[0] not in " \n#" else []
    starts += [m.end() for m in _TOP_START.finditer(text)]
    return starts


def _section_pattern(outer: int, inner: int) -> re.Pattern:
    """The body of `components:`: names at `outer` spaces, each a block
    mapping of scalars at `inner` spaces."""
    return re.compile(
        rf"(?>{_SKIP}|[ ]{{{outer}}}{_NAME}:{_TAIL}(?>{_SKIP}|[ ]{{{inner}}}{_NAME}:[ ]+{_SCALAR}{_TAIL})*)*"
    )


def _fast_view(text: str, shown: str, name: str) -> ManifestView:
    """component_view of a manifest written plainly (block mappings of plain
    or simply quoted scalars; configurations' lists as `- name` lines or
    `[a, b]`), without the YAML parser's events for the two large sections:
    each is matched whole by a strict grammar, the component's own lines and
    the rest of the file parsed by the C parser as _read_view parses them.
    Raises Irregular for anything else (then _read_view reads it)."""
    if len(text) > MAX_BYTES // 4 or "\r" in text or "\t" in text or not text.endswith("\n") \
            or _has_conflict_marker(text):
        raise Irregular("not plain")
    tops = [_TOP.match(text, start) for start in _top_starts(text)]
    sections: dict[str, tuple[int, int, int]] = {}  # key -> (line start, body start, body end)
    for i, top in enumerate(tops):
        key = _TOP_KEY.fullmatch(top.group(1))
        if key is None:
            if top.group(0).startswith("---") or top.group(0).startswith("%"):
                raise Irregular("directives or documents")
            continue  # e.g. a flow value: the C parser judges the rest
        if key.group(1) in sections:
            raise Irregular("a duplicate section")
        sections[key.group(1)] = (top.start(), top.end(), tops[i + 1].start() if i + 1 < len(tops) else len(text))
    if "components" not in sections or "configurations" not in sections:
        raise Irregular("a required section is missing")
    c_start, c_body, c_end = sections["components"]
    g_start, g_body, g_end = sections["configurations"]
    if _TOP_KEY.fullmatch(text[c_start:c_body - 1]).group(2) is not None \
            or _TOP_KEY.fullmatch(text[g_start:g_body - 1]).group(2) is not None:
        raise Irregular("a section's value on its own line")
    body = text[c_body:c_end]
    first = re.search(r"^([ ]+)\S", body, re.MULTILINE)
    field = re.search(r"^[ ]+\S[^\n]*\n(?:[ ]*(?:#[^\n]*)?\n)*([ ]+)[A-Za-z_]", body, re.MULTILINE)
    if first is None or field is None or len(field.group(1)) <= len(first.group(1)):
        raise Irregular("no components")
    outer, inner = len(first.group(1)), len(field.group(1))
    if not _section_pattern(outer, inner).fullmatch(body):
        raise Irregular("components not plain")
    names_found = re.findall(rf"^[ ]{{{outer}}}({_NAME}):", body, re.MULTILINE)
    names = dict.fromkeys(names_found)
    if len(names) != len(names_found) or not _SPECIAL.isdisjoint(map(str.lower, names)):
        raise Irregular("a duplicate or special name")
    spec = line = None
    own = None
    if name in names:  # its line found by its literal text (a name is unique), then matched there
        at = body.find(f"\n{' ' * outer}{name}:") + 1 if not body.startswith(f"{' ' * outer}{name}:") else 0
        own = re.compile(rf"[ ]{{{outer}}}{re.escape(name)}:[^\n]*\n(?:(?:[ ]{{{outer + 1},}}[^\n]*|[ ]*)\n)*"
                         ).match(body, at)
    if own is not None:
        line = text.count("\n", 0, c_body + own.start()) + 1
        reader = EventReader(shown, "\n" * (line - 2) + "components:\n" + own.group(0))
        for _, _, value in reader.entries(reader.document()):
            for _, _, component_value in reader.entries(value):
                spec = reader.build(component_value)
        reader.end()
    document = CommentedMap()
    document["components"] = None
    document._yaml_set_kv_line_col("configurations", [text.count("\n", 0, g_start), 0,
                                                      text.count("\n", 0, g_body), 0])
    document["configurations"] = _plain_configurations(text, g_body, g_end)
    # The rest of the file, both sections blanked (their lines kept), as _read_view reads it.
    if c_start > g_start:
        raise Irregular("configurations before components")
    rest = (text[:c_start] + "components: {}\n" + "\n" * text.count("\n", c_body, c_end) + text[c_end:g_start]
            + "configurations: {}\n" + "\n" * text.count("\n", g_body, g_end) + text[g_end:])
    reader = EventReader(shown, rest)
    blanked = set()
    for key, _, value in reader.entries(reader.document()):
        if key in ("components", "configurations"):
            if not isinstance(value, MappingStartEvent) or not isinstance(reader.next(), MappingEndEvent):
                raise Irregular("the sections are not where they seemed")
            blanked.add(key)
        elif key == "schema_version":
            if not (isinstance(value, ScalarEvent) and value.value == str(SCHEMA_VERSION) and value.implicit[0]
                    and value.tag is None and value.anchor is None):
                raise Irregular("schema_version")
        else:
            reader.skip(value)
    reader.end()
    if len(blanked) != 2:
        raise Irregular("the sections are not where they seemed")
    return checked_view(shown, name, spec, line, document, names)


_CONFIGURATION = re.compile(rf"^([ ]+)({_NAME}):{_TAIL}", re.MULTILINE)



def checked_view(shown: str, name: str, spec, line: Optional[int], document, names) -> ManifestView:
    """The view of component `name` (its `spec` at `line`, None if it is not
    there) and of the configurations of `document`, checked as the whole
    manifest would be; Irregular if the checker has anything to say (the
    caller then reads the whole file, which says it). Shared by this
    module's plain reader and convoy.manifest's event reader."""
    checker = ManifestChecker(shown)
    component = checker.named_component(name, spec, line) if line is not None else None
    configurations = checker.configurations(document, names)
    if component is not None:
        checker.local_paths({name: component}, configurations)
    if checker.problems:
        raise Irregular("problems")
    return ManifestView(
        path=shown, name=name, component=component, component_names=tuple(names),
        members=MappingProxyType({n: c.components for n, c in configurations.items()}),
    )

def _plain_configurations(text: str, start: int, end: int) -> CommentedMap:
    """The body of `configurations:` as the round-trip loader makes it, for
    a plain one: names, each with `components:` (`- name` lines or one
    `[a, b]` line) and `pins:` (`name: version` lines); Irregular otherwise."""
    body = text[start:end]
    base_line = text.count("\n", 0, start)
    first = re.match(rf"{_SKIP}*([ ]+)", body)
    if first is None:
        raise Irregular("no configurations")
    outer = len(first.group(1))
    heads = [m for m in _CONFIGURATION.finditer(body) if len(m.group(1)) == outer]
    if not heads or not re.fullmatch(rf"{_SKIP}*", body[:heads[0].start()]):
        raise Irregular("configurations not plain")
    result = CommentedMap()
    line_of = _LineCounter(body, base_line)
    for i, head in enumerate(heads):
        part_end = heads[i + 1].start() if i + 1 < len(heads) else len(body)
        name = head.group(2)
        if name in result or name.lower() in _SPECIAL:
            raise Irregular("a duplicate or special configuration")
        head_line = line_of(head.start())
        result._yaml_set_kv_line_col(name, [head_line, outer, head_line + 1, 0])
        result[name] = _plain_configuration(body, head.end(), part_end, outer, line_of)
    return result


class _LineCounter:
    """0-based line of an offset in `body`, counting forward (offsets asked in order)."""

    def __init__(self, body: str, base: int) -> None:
        self.body, self.offset, self.line = body, 0, base

    def __call__(self, offset: int) -> int:
        if offset < self.offset:
            raise Irregular("out of order")
        self.line += self.body.count("\n", self.offset, offset)
        self.offset = offset
        return self.line


def _plain_configuration(body: str, start: int, end: int, outer: int, line_of: _LineCounter) -> CommentedMap:
    part = body[start:end]
    keys = re.compile(rf"^([ ]+)({_NAME}):(?:[ ]+([^\n#]*?))?{_TAIL}", re.MULTILINE)
    spec = CommentedMap()
    found = [m for m in keys.finditer(part)]
    if not found:
        raise Irregular("an empty configuration")
    inner = len(found[0].group(1))
    if inner <= outer:
        raise Irregular("not nested")
    tops = [m for m in found if len(m.group(1)) == inner]
    if not re.fullmatch(rf"{_SKIP}*", part[:tops[0].start()]):
        raise Irregular("not plain")
    for i, key in enumerate(tops):
        value_end = tops[i + 1].start() if i + 1 < len(tops) else len(part)
        value_text = part[key.end():value_end]
        key_line = line_of(start + key.start())
        k = key.group(2)
        if k in spec:
            raise Irregular("a duplicate key")
        if k == "components" and key.group(3) and key.group(3).startswith("["):
            items = re.fullmatch(rf"\[[ ]*({_NAME}(?:[ ]*,[ ]*{_NAME})*)?[ ]*\]", key.group(3))
            if items is None or not re.fullmatch(rf"{_SKIP}*", value_text):
                raise Irregular("not a plain flow list")
            names = re.split(r"[ ]*,[ ]*", items.group(1)) if items.group(1) else []
            seq = CommentedSeq(names)
            seq.lc.data = {i: [key_line, 0] for i in range(len(names))}  # the items' line (the checker's)
            spec._yaml_set_kv_line_col(k, [key_line, inner, key_line, 0])
            spec[k] = seq
        elif k == "components" and not key.group(3) and _items(value_text) is not None:
            indent, names = _items(value_text)  # one item a line: their lines follow the key's
            if indent < inner:
                raise Irregular("not plain items")
            seq = CommentedSeq(names)
            seq.lc.data = _ConsecutiveLines(key_line + 1, indent + 2)
            spec._yaml_set_kv_line_col(k, [key_line, inner, key_line + 1, indent])
            spec[k] = seq
        elif k == "components" and not key.group(3):
            item = re.compile(rf"([ ]+)- ({_NAME}){_TAIL}|{_SKIP}")
            names, lines, position, line = [], [], 0, key_line + 1
            indent = None
            for m in item.finditer(value_text):
                if m.start() != position:
                    raise Irregular("not plain items")
                position = m.end()
                if m.group(2) is not None:
                    if indent is None:
                        indent = len(m.group(1))
                    elif len(m.group(1)) != indent:
                        raise Irregular("items not aligned")
                    names.append(m.group(2))
                    lines.append(line)
                line += 1
            if position != len(value_text) or not names or indent < inner:
                raise Irregular("not plain items")
            seq = CommentedSeq(names)
            seq.lc.data = {i: [n, indent + 2] for i, n in enumerate(lines)}
            spec._yaml_set_kv_line_col(k, [key_line, inner, lines[0], indent])
            spec[k] = seq
        elif k == "pins" and not key.group(3):
            pin = re.compile(rf"([ ]+)({_NAME}):[ ]+({_PLAIN}){_TAIL}|{_SKIP}")
            pins, position, line, indent = CommentedMap(), 0, key_line + 1, None
            for m in pin.finditer(value_text):
                if m.start() != position:
                    raise Irregular("not plain pins")
                position = m.end()
                if m.group(2) is not None:
                    if indent is None:
                        indent = len(m.group(1))
                    elif len(m.group(1)) != indent:
                        raise Irregular("pins not aligned")
                    if m.group(2) in pins or not _is_string(m.group(3)):
                        raise Irregular("a duplicate pin or not a string")
                    pins._yaml_set_kv_line_col(m.group(2), [line, indent, line, indent + len(m.group(2)) + 2])
                    pins[m.group(2)] = m.group(3)
                line += 1
            if position != len(value_text) or not pins or indent <= inner:
                raise Irregular("not plain pins")
            spec._yaml_set_kv_line_col(k, [key_line, inner, key_line + 1, indent])
            spec[k] = pins
        else:
            raise Irregular("not a plain configuration key")
    return spec


class _ConsecutiveLines(dict):
    """A CommentedSeq's item positions (`lc.data`) for items one a line from
    `first` on, at column `column`, made when the checker asks for one (it
    does only to report a problem) rather than a list per item up front."""

    def __init__(self, first: int, column: int) -> None:
        super().__init__()
        self.first, self.column = first, column

    def __missing__(self, index: int) -> list[int]:
        return [self.first + index, self.column]


_ITEM = re.compile(rf"([ ]+)- {_NAME}{_TAIL}")
_ITEMS: dict[int, re.Pattern] = {}


def _items(value_text: str) -> Optional[tuple[int, list[str]]]:
    """(indent, names) of a block list of plain names, one a line with no
    blank or comment line among them; None otherwise."""
    first = _ITEM.match(value_text)
    if first is None:
        return None
    indent = len(first.group(1))
    pattern = _ITEMS.get(indent)
    if pattern is None:
        pattern = _ITEMS[indent] = re.compile(rf"(?>[ ]{{{indent}}}- ({_NAME}){_TAIL})+")
    if pattern.fullmatch(value_text) is None:
        return None
    return indent, re.findall(rf"^[ ]{{{indent}}}- ({_NAME})", value_text, re.MULTILINE)


_RESOLVES: dict[str, bool] = {}


def _is_string(value: str) -> bool:
    """Whether a plain scalar is a string to the loader (not a number, a date, ...)."""
    found = _RESOLVES.get(value)
    if found is None:
        from ruamel.yaml.nodes import ScalarNode

        from convoy.yamlcheck import _CResolver

        resolver = _CResolver()
        found = resolver.resolve(ScalarNode, value, (True, False)) is resolver.DEFAULT_SCALAR_TAG
        if len(_RESOLVES) < 4096:
            _RESOLVES[value] = found
    return found
