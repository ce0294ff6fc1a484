"""Checking a person's YAML file: every problem at once, each at its line with a fix.

A Checker subclass walks a document loaded by `parse_yaml` (ruamel.yaml's
round-trip loader, which keeps line numbers) and calls `problem()` for each
mistake; the caller raises one ConvoyError with all of them. Used by the
manifest (convoy.manifest) and by convoy.yaml (convoy.config).
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode
from ruamel.yaml.reader import ReaderError

from convoy.errors import ConvoyError


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
    marker = conflict_marker_line(text)
    if marker is not None:
        raise ConvoyError(
            f"{shown}:{marker}: unresolved merge conflict marker; resolve the merge conflict "
            "(keep the right lines, delete the <<<<<<< ======= >>>>>>> markers)"
        )
    result = build(parse_yaml(shown, text, checker))
    if checker.problems:
        raise ConvoyError.of(message for _, message in sorted(checker.problems, key=lambda p: p[0]))
    return result


def read_text(path: str | os.PathLike[str], shown: str, missing: str) -> str:
    """The UTF-8 text of a person's file; ConvoyError (`missing` if it does not exist)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConvoyError(missing) from None
    except OSError as e:
        raise ConvoyError(f"{shown}: cannot read it ({e.strerror}); check the path and its permissions") from None
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
        checker.duplicate_keys(_compose(text) or yaml.compose(text), "")
        return yaml.load(text)
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


def _compose(text: str) -> Optional[Node]:
    """The node tree from ruamel's C parser (ten times faster than the pure
    one on a large manifest), or None when it is not there or fails: the
    pure parser then composes again and reports the error as usual."""
    try:
        return YAML(typ="safe", pure=False).compose(text)
    except Exception:  # any failure: leave the diagnosis to the pure parser
        return None


def key_line(mapping: Any, key: Any) -> int:
    """The 1-based line of `key` in a round-trip mapping."""
    return mapping.lc.key(key)[0] + 1


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
