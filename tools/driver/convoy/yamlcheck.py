"""Checking a person's YAML file: every problem at once, each at its line with a fix.

A Checker subclass walks a document loaded by `parse_yaml` and calls
`problem()` for each mistake; the caller raises one ConvoyError with all of
them (convoy.manifest, convoy.config).

No file may exhaust the host: a file larger than MAX_BYTES, nested deeper
than MAX_DEPTH, or whose aliases (`*name`) repeat more than MAX_ALIAS_NODES
values in all (a "billion laughs": ten lines, 10**9 values) is refused in
one line, from the parser's events, before any node is built. The document is composed by ruamel's C parser (linear;
the round-trip parser is quadratic in a run of comments), then built by
the round-trip constructor, which keeps line numbers.

`c_yaml()` is that C composer, for node positions (convoy.manifest_edit);
`EventReader` reads chosen parts of a file from the C parser's events as
the round-trip document would hold them, building nothing else
(convoy.manifest's read_component, for `convoy submit`).
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import re
import stat
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml import resolver as _resolver_module
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.events import (
    AliasEvent, CollectionEndEvent, CollectionStartEvent, DocumentEndEvent, DocumentStartEvent, Event,
    MappingEndEvent, MappingStartEvent, ScalarEvent, SequenceEndEvent, SequenceStartEvent, StreamEndEvent,
    StreamStartEvent,
)
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.resolver import VersionedResolver

from convoy.errors import ConvoyError
from convoy.untrusted import printable


MAX_BYTES = 8 * 1024 * 1024  # a manifest is a few KiB; convoy.yaml less
MAX_DEPTH = 64  # levels of nested mappings and lists; convoy's files need five
MAX_ALIAS_NODES = 10_000  # values that aliases may repeat, in all

_DEFAULT_YAML_VERSION = getattr(_resolver_module, "_DEFAULT_YAML_VERSION", (1, 2))
_CONFLICT_MARKER = re.compile(r"^(<{7}|={7}|>{7}|\|{7})(\s|$)", re.MULTILINE)

T = TypeVar("T")


def conflict_marker_line(text: str) -> Optional[int]:
    """The 1-based line of the first git merge conflict marker in `text`."""
    match = _CONFLICT_MARKER.search(text)
    return None if match is None else text.count("\n", 0, match.start()) + 1


def parse_checked(text: str, checker: "Checker", build: Callable[[Any], T]) -> T:
    """`build(document)` for the YAML `text`, checked by `checker` (which
    `build` walks); raises one ConvoyError with every problem, sorted by
    line. A merge conflict marker is reported alone, before parsing."""
    shown = checker.shown
    size = len(text) if len(text) > MAX_BYTES else len(text.encode("utf-8"))
    if size > MAX_BYTES:
        raise _too_large(shown, size)
    marker = conflict_marker_line(text)
    if marker is not None:
        raise ConvoyError(
            f"{shown}:{marker}: unresolved merge conflict marker; resolve the merge conflict "
            "(keep the right lines, delete the <<<<<<< ======= >>>>>>> markers)"
        )
    with no_cyclic_gc():
        result = build(parse_yaml(shown, text, checker))
    if checker.problems:
        raise ConvoyError.of(message for _, message in sorted(checker.problems, key=lambda p: p[0]))
    return result


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Python's cycle collector paused for a parse: it makes some ten objects
    a line, which would start collections that walk every object of the
    process, again and again (a third of the time of a large manifest's
    parse). Reference counting still frees what is dropped; the collector
    runs again after (unless it was paused already)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def read_text(path: str | os.PathLike[str], shown: str, missing: str) -> str:
    """The UTF-8 text of a person's file; ConvoyError (`missing` if it does not exist)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except FileNotFoundError:
        raise ConvoyError(missing) from None
    except OSError as e:
        raise ConvoyError(f"{shown}: cannot read it ({e.strerror}); check the path and its permissions") from None
    with open(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConvoyError(f"{shown}: not a regular file; replace it with the YAML file")
        try:
            raw = f.read(MAX_BYTES + 1)  # no more: the size is checked before anything is parsed
        except OSError as e:
            raise ConvoyError(f"{shown}: cannot read it ({e.strerror}); check the disk") from None
    if len(raw) > MAX_BYTES:
        raise _too_large(shown, max(info.st_size, len(raw)))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConvoyError(f"{shown}:{line}: not UTF-8 text; save the file as UTF-8") from None


def parse_yaml(shown: str, text: str, checker: "Checker") -> Any:
    """Returns the round-trip document; duplicate keys go to `checker`.

    They are found on the composed node tree, so that all of them are
    reported; the document keeps the first of each.
    """
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True
    try:
        node = _compose(shown, text)
        checker.duplicate_keys(node, "")
        return None if node is None else _construct(shown, yaml, node)
    except ReaderError as e:  # a character YAML does not allow
        line = text.count("\n", 0, e.position) + 1
        raise ConvoyError(
            f"{shown}:{line}: invalid YAML: character #x{e.character:04x} is not allowed; remove it"
        ) from None
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = e.problem or e.context or "cannot parse"
        if e.context and e.context_mark is not None and e.problem:
            what += f" ({e.context} started at line {e.context_mark.line + 1})"
        raise ConvoyError(f"{shown}:{line}: invalid YAML: {what}; fix the YAML syntax") from None


def _compose(shown: str, text: str) -> Optional[Node]:
    """The node tree (None for an empty document), from ruamel's C parser;
    if it is not there or fails, from the pure one, which raises the error
    to report (both are linear: neither keeps comments)."""
    try:
        return _checked_compose(shown, text, pure=False)
    except ConvoyError:
        raise
    except Exception:  # any failure: leave the diagnosis to the pure parser
        return _checked_compose(shown, text, pure=True)


def _checked_compose(shown: str, text: str, *, pure: bool) -> Optional[Node]:
    """Composes `text` once its events pass `_check_events` (the composers
    recurse: the C one crashes the process on 100000 nested '[', the pure
    one raises RecursionError)."""
    _check_events(shown, YAML(typ="safe", pure=pure).parse(text))
    return YAML(typ="safe", pure=True).compose(text) if pure else c_yaml().compose(text)


class _CResolver(VersionedResolver):
    """ruamel's resolver, for its C parser: the YAML version it resolves by
    is the one the stock property ends up with there (the C parser has no
    `_scanner` that would know a %YAML directive), found without the two
    AttributeErrors per scalar the stock one raises on the way, which are
    half of composing time."""

    @property
    def processing_version(self) -> Any:
        return self._loader_version or _DEFAULT_YAML_VERSION


def c_yaml() -> YAML:
    """YAML(typ="safe") with ruamel's C parser, for `compose`: the same nodes
    and tags, composed twice as fast (see _CResolver)."""
    yaml = YAML(typ="safe")
    yaml.Resolver = _CResolver
    return yaml


def _check_events(shown: str, events: Iterable[Event]) -> None:
    """Refuses nesting deeper than MAX_DEPTH (with aliases expanded), aliases
    that repeat more than MAX_ALIAS_NODES values in all, and an alias inside
    what it names (a cycle). Stops at the first: the parser reads no further."""
    for _ in bounded_events(shown, events):
        pass


def bounded_events(shown: str, events: Iterable[Event]) -> Iterator[Event]:
    """`events`, each passed on once the bounds of `_check_events` hold for
    it and all before it; the first that breaks them raises ConvoyError."""
    named: dict[Any, tuple[int, int]] = {}  # anchor -> (values, levels) of what it names
    open_ = [[None, 0, 0]]  # [anchor, values, levels below] per open collection, the stream first
    repeated = 0
    for event in events:
        line = event.start_mark.line + 1
        if isinstance(event, CollectionStartEvent):
            if len(open_) > MAX_DEPTH:
                raise _too_deep(shown, line)
            open_.append([event.anchor, 1, 0])
            yield event
            continue
        if isinstance(event, CollectionEndEvent):
            anchor, values, levels = open_.pop()
            size = (values, levels + 1)
        elif isinstance(event, AliasEvent):
            if any(event.anchor == entry[0] for entry in open_):
                raise ConvoyError(f"{shown}:{line}: YAML alias '*{event.anchor}' is inside what it names (a "
                                  "cycle, which never ends); write the value out")
            anchor, size = None, named.get(event.anchor, (1, 0))  # an unknown one: the composer reports it
            repeated += size[0]
            if repeated > MAX_ALIAS_NODES:
                raise ConvoyError(
                    f"{shown}:{line}: YAML aliases repeat more than {MAX_ALIAS_NODES} values (a file must not "
                    "expand far beyond what it shows); write the values out, or use fewer aliases"
                )
            if len(open_) - 1 + size[1] > MAX_DEPTH:
                raise _too_deep(shown, line)
        elif isinstance(event, ScalarEvent):
            anchor, size = event.anchor, (1, 0)
        else:  # the stream's and documents' start and end
            yield event
            continue
        if anchor is not None:
            named[anchor] = size
        parent = open_[-1]
        parent[1] += size[0]
        parent[2] = max(parent[2], size[1])
        yield event


class Irregular(Exception):
    """The part an EventReader reads holds what only the full load judges."""


class EventReader:
    """Reads chosen parts of a YAML document from the C parser's events,
    skipping the rest unbuilt (for a caller that needs a few entries of a
    large file):

        reader = EventReader(shown, text)
        root = reader.document()                          # the root's first event
        for key, key_event, value in reader.entries(root):
            tree = reader.build(value) if key == "wanted" else reader.skip(value)
        reader.end()

    A built part is what parse_yaml's round-trip document holds there:
    CommentedMap and CommentedSeq with their line numbers, and str. It only
    builds strings: anything else in a part it builds (a number, a date, an
    empty value, a block scalar `|`, a tag, an anchor or alias, a merge key
    `<<`, a duplicate key, a key that is not a string) raises Irregular, as
    does a second document or a %YAML directive. The whole file is still
    parsed (by the C parser, with the bounds of parse_yaml): a syntax error
    anywhere raises ruamel's error, a file too deep or with too many aliases
    ConvoyError. A caller falls back to parse_checked on any of them, which
    reports every problem as usual.
    """

    def __init__(self, shown: str, text: str) -> None:
        self._events = bounded_events(shown, YAML(typ="safe").parse(text))
        self._resolver = _CResolver()
        self._strings: dict[tuple[str, Any], bool] = {}  # (plain value, implicit) -> resolves to a string

    def next(self) -> Event:
        return next(self._events)

    def document(self) -> Event:
        """The first event of the (only) document's root node."""
        if not isinstance(self.next(), StreamStartEvent):
            raise Irregular("no stream")
        start = self.next()
        if not isinstance(start, DocumentStartEvent) or start.version or start.tags:
            raise Irregular("no document, or directives")
        return self.next()

    def end(self) -> None:
        """Reads to the end of the stream: one document, and nothing after it."""
        if not isinstance(self.next(), DocumentEndEvent) or not isinstance(self.next(), StreamEndEvent):
            raise Irregular("more than one document")

    def skip(self, event: Event) -> None:
        """Reads past the node that starts with `event`, building nothing."""
        if not isinstance(event, CollectionStartEvent):
            return
        depth = 1
        while depth:
            event = self.next()
            if isinstance(event, CollectionStartEvent):
                depth += 1
            elif isinstance(event, CollectionEndEvent):
                depth -= 1

    def string(self, event: Event) -> str:
        """The string a scalar `event` is, as the round-trip loader makes it."""
        if not isinstance(event, ScalarEvent) or event.tag is not None or event.anchor is not None \
                or event.style in ("|", ">"):
            raise Irregular("not a plain string")
        key = (event.value, event.implicit)
        is_string = self._strings.get(key)
        if is_string is None:
            tag = self._resolver.resolve(ScalarNode, event.value, event.implicit)
            is_string = self._strings[key] = tag is self._resolver.DEFAULT_SCALAR_TAG
        if not is_string:
            raise Irregular("not a string")
        return event.value

    def entries(self, event: Event) -> Iterator[tuple[str, Event, Event]]:
        """(key, its event, the value's first event) of the mapping that starts
        with `event`; the caller reads each value (skip or build) before the next."""
        if not isinstance(event, MappingStartEvent) or event.tag is not None or event.anchor is not None:
            raise Irregular("not a plain mapping")
        seen = set()
        while True:
            key_event = self.next()
            if isinstance(key_event, MappingEndEvent):
                return
            key = self.string(key_event)
            if key in seen:
                raise Irregular("duplicate key")
            seen.add(key)
            yield key, key_event, self.next()

    def build(self, event: Event) -> Any:
        """The node that starts with `event`, as the round-trip loader makes it."""
        if isinstance(event, ScalarEvent):
            return self.string(event)
        if isinstance(event, SequenceStartEvent):
            if event.tag is not None or event.anchor is not None:
                raise Irregular("not a plain sequence")
            sequence = CommentedSeq()
            sequence._yaml_set_line_col(event.start_mark.line, event.start_mark.column)
            while True:
                item = self.next()
                if isinstance(item, SequenceEndEvent):
                    return sequence
                sequence._yaml_set_idx_line_col(len(sequence), [item.start_mark.line, item.start_mark.column])
                sequence.append(self.build(item))
        mapping = CommentedMap()
        mapping._yaml_set_line_col(event.start_mark.line, event.start_mark.column)
        for key, key_event, value in self.entries(event):
            mapping._yaml_set_kv_line_col(key, [key_event.start_mark.line, key_event.start_mark.column,
                                                value.start_mark.line, value.start_mark.column])
            mapping[key] = self.build(value)
        return mapping


def _construct(shown: str, yaml: YAML, node: Node) -> Any:
    """The round-trip document of `node`. A scalar YAML resolves but Python
    cannot build (a date 2024-13-45, an int of 5000 digits) is a ConvoyError
    at its line."""
    try:
        return yaml.constructor.construct_document(node)
    except (ValueError, OverflowError):
        pass
    nodes = [node]
    while nodes:  # find the first such scalar (no deeper than MAX_DEPTH, no cycle: the events were checked)
        item = nodes.pop()
        if isinstance(item, MappingNode):
            nodes.extend(reversed([n for pair in item.value for n in pair]))
        elif isinstance(item, SequenceNode):
            nodes.extend(reversed(item.value))
        else:
            try:
                YAML(typ="rt").constructor.construct_object(item)
            except (ValueError, OverflowError):
                kind = str(item.tag).rsplit(":", 1)[-1]
                value = item.value if len(item.value) <= 40 else item.value[:37] + "..."
                raise ConvoyError(f"{shown}:{item.start_mark.line + 1}: '{printable(value)}' is not a valid YAML "
                                  f"{kind}; fix it, or put it in quotes to make it a string") from None
    raise ConvoyError(f"{shown}: a value cannot be read; fix it, or put it in quotes to make it a string")


def _too_deep(shown: str, line: int) -> ConvoyError:
    return ConvoyError(f"{shown}:{line}: nested more than {MAX_DEPTH} levels deep (convoy's YAML files need a "
                       "few); remove the extra levels")


def _too_large(shown: str, size: int) -> ConvoyError:
    return ConvoyError(
        f"{shown}: {size} bytes, more than the {MAX_BYTES // 2**20} MiB convoy reads in a manifest or convoy.yaml; "
        "make it smaller (remove long comments and what is no longer used)"
    )


def key_line(mapping: Any, key: Any) -> int:
    """The 1-based line of `key` in a round-trip mapping; for a key that a
    `<<` merge key brought in (it has no position of its own), the
    mapping's line."""
    try:
        return mapping.lc.key(key)[0] + 1
    except (KeyError, TypeError, AttributeError):
        line = getattr(getattr(mapping, "lc", None), "line", None)
        return line + 1 if isinstance(line, int) else 1


def dotted(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def kind_of(value: object) -> str:
    kinds = (
        (bool, "a boolean"), ((int, float), "a number"), (datetime.date, "a date"),
        (str, "a string"), (Mapping, "a mapping"), (list, "a list"),
    )
    if value is None:
        return "empty"
    return next((kind for types, kind in kinds if isinstance(value, types)), type(value).__name__)


class Checker:
    """Collects (line, message) problems of one file, shown as `shown`.

    `EXAMPLES` maps a key to the example value that fix hints show.
    """

    EXAMPLES: Mapping[str, str] = {}

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.problems: list[tuple[int, str]] = []

    def problem(self, line: int, where: str, what: str, fix: str) -> None:
        located = f"{where}: {what}" if where else what
        self.problems.append((line, f"{self.shown}:{line}: {located}; {fix}"))

    # -- generic checks ---------------------------------------------------

    def duplicate_keys(self, node: Optional[Node], where: str) -> None:
        if isinstance(node, MappingNode):
            first_lines: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                key = (key_node.tag, str(key_node.value))
                line = key_node.start_mark.line + 1
                if key in first_lines:
                    self.problem(
                        line, where, f"duplicate key '{key_node.value}' (first at line {first_lines[key]})",
                        "remove one of them",
                    )
                else:
                    first_lines[key] = line
                    self.duplicate_keys(value_node, dotted(where, key_node.value))
        elif isinstance(node, SequenceNode):
            for item in node.value:
                self.duplicate_keys(item, where)

    def unknown_keys(self, mapping: Mapping, where: str, allowed: tuple[str, ...]) -> None:
        for key in mapping:
            if key not in allowed:
                self.problem(
                    key_line(mapping, key), where, f"unknown key '{key}' (expected: {', '.join(allowed)})",
                    "fix or remove it",
                )

    def mapping(self, parent: Mapping, key: str, where: str, missing_at: Optional[int] = None) -> Optional[Mapping]:
        """parent[key] if it is a mapping; reports it mistyped, or missing (at
        line `missing_at`, if given: the key is required)."""
        if key not in parent:
            if missing_at is not None:
                self.problem(missing_at, where, f"missing required key '{key}'", f"add it, e.g. {key}: {{...}}")
            return None
        value = parent[key]
        if not isinstance(value, Mapping):
            self.problem(
                key_line(parent, key), dotted(where, key), f"must be a mapping, not {kind_of(value)}",
                "write it as indented 'name: value' lines",
            )
            return None
        return value

    def string(
        self, parent: Mapping, key: str, where: str, missing_at: Optional[int] = None, example: str = ""
    ) -> Optional[str]:
        """parent[key] if it is a non-empty string; reports it mistyped, or
        missing (at line `missing_at`, if given: the key is required)."""
        example = example or self.EXAMPLES[key]
        if key not in parent:
            if missing_at is not None:
                self.problem(missing_at, where, f"missing required key '{key}'", f"add it, e.g. {key}: {example}")
            return None
        value = parent[key]
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, str) or value is None:
            what, fix = "has no value", f"give it one, e.g. {key}: {example}"
        elif isinstance(value, (bool, int, float, datetime.date)):
            what, fix = f"must be a string, not {kind_of(value)}", f'put it in quotes, e.g. {key}: "{example}"'
        else:
            what, fix = f"must be a string, not {kind_of(value)}", f"write it like {key}: {example}"
        self.problem(key_line(parent, key), dotted(where, key), what, fix)
        return None
