"""The value types of convoy.yaml, each checked with its line and a fix.

    values = ValueChecker("convoy.yaml")   # one per file: it collects the problems
    parallelism = values.number(document, "parallelism", "", 2, minimum=1, integer=True, above=False)

`ValueChecker` is the generic checker of convoy.yamlcheck (duplicate and
unknown keys, mappings, strings) plus what convoy.yaml's values are:
bounded finite numbers, booleans, lists of non-empty strings, Bazel flags
(none that convoy sets itself), environment variable names, names by a
pattern, optional sections, and lists of mappings named by a unique
`name`. A wrong value is reported and the check returns what the
caller goes on with (the default, or None), so that every other mistake
is found too. convoy.config walks the document with one ValueChecker,
which it gives each section's checker (convoy.config_stage,
config_plugins and the plugin kinds' checkers, config_release,
config_serve, config_flaky).
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Optional

from convoy.untrusted import printable
from convoy.yamlcheck import Checker, dotted, key_line, kind_of

MAX_NUMBER = 1e9  # seconds (31 years) or a count; more overflows timers (threading.TIMEOUT_MAX)
# Flags convoy sets on every invocation itself; a stage or bazel.flags must not.
_DRIVER_FLAGS = ("--build_event_json_file", "--output_base", "--repo_env=CONVOY_CONFIGURATION=")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ValueChecker(Checker):
    """The generic checker of convoy.yamlcheck (duplicate and unknown keys,
    mappings, strings) plus the value types convoy.yaml has: numbers, booleans, lists."""

    def number(self, parent: Mapping, key: str, where: str, default: float, *, minimum: float = 0.0,
               integer: bool = False, above: bool = True, maximum: float = MAX_NUMBER) -> Any:
        """parent[key] if it is a finite number > minimum (>= with
        above=False) and <= maximum; an int if `integer`. The default when
        absent or wrong (nan and inf are wrong: a poll interval of nan polls
        without pause, a timeout of nan never ends)."""
        if key not in parent:
            return default
        value = parent[key]
        kind = "a whole number" if integer else "a number"
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            self.problem(
                key_line(parent, key), dotted(where, key), f"must be {kind}, not {kind_of(value)}",
                f"write it like {key}: {_number_example(default)}",
            )
            return default
        if isinstance(value, float) and not math.isfinite(value):  # (an int is; isfinite(10**400) overflows)
            self.problem(
                key_line(parent, key), dotted(where, key), f"must be a finite number, not {value}",
                f"write it like {key}: {_number_example(default)}",
            )
            return default
        if value < minimum or (above and value == minimum) or value > maximum:
            bound = f"greater than {minimum:g}" if above else f"at least {minimum:g}"
            if value > maximum:
                bound = f"at most {maximum:g}"
            self.problem(
                key_line(parent, key), dotted(where, key), f"must be {bound}, not {_number_text(value)}",
                f"write it like {key}: {_number_example(default)}",
            )
            return default
        return int(value) if integer else float(value)

    def boolean(self, parent: Mapping, key: str, where: str, default: bool) -> bool:
        if key not in parent:
            return default
        value = parent[key]
        if not isinstance(value, bool):
            self.problem(
                key_line(parent, key), dotted(where, key), f"must be true or false, not {kind_of(value)}",
                f"write {key}: true or {key}: false",
            )
            return default
        return value

    def strings(self, parent: Mapping, key: str, where: str, example: str, *, allow_empty: bool = True,
                missing_at: Optional[int] = None) -> Optional[tuple[str, ...]]:
        """parent[key] if it is a list of non-empty strings; reports items
        that are not, each at its own line. None if absent or not a list."""
        if key not in parent:
            if missing_at is not None:
                self.problem(missing_at, where, f"missing required key '{key}'", f"add it, e.g. {key}: {example}")
            return None
        items = parent[key]
        line = key_line(parent, key)
        if not isinstance(items, list):
            self.problem(line, dotted(where, key), f"must be a list, not {kind_of(items)}",
                         f"write it like {key}: {example}")
            return None
        if not items and not allow_empty:
            self.problem(line, dotted(where, key), "must not be empty", f"write it like {key}: {example}")
            return None
        result = []
        for index, item in enumerate(items):
            if isinstance(item, str) and item.strip():
                result.append(item)
            else:
                what = "empty strings" if isinstance(item, str) or item is None else kind_of(item)
                self.problem(line_of_item(items, index, line), dotted(where, key),
                             f"items must be non-empty strings, not {what}",
                             "put the item in quotes or remove it")
        return tuple(result)

    def flag_list(self, parent: Mapping, key: str, where: str, example: str) -> tuple[str, ...]:
        """A list of Bazel flags: each starts with '-'; none that convoy sets itself."""
        flags = self.strings(parent, key, where, example)
        if flags is None:
            return ()
        items, line = parent[key], key_line(parent, key)
        for index, flag in enumerate(items):
            if not isinstance(flag, str) or not flag.strip():
                continue
            item_line = line_of_item(items, index, line)
            if not flag.startswith("-"):
                self.problem(item_line, dotted(where, key), f"'{flag}' is not a flag (flags start with -)",
                             "write it as --name=value; targets go under a stage's targets:")
            elif flag.startswith(_DRIVER_FLAGS):
                self.problem(item_line, dotted(where, key), f"'{flag}' is set by convoy for every invocation",
                             "remove it")
        return flags

    def optional_string(self, parent: Mapping, key: str, where: str, example: str) -> Optional[str]:
        return self.string(parent, key, where, example=example)

    def section(self, document: Mapping, key: str, allowed: tuple[str, ...]) -> Mapping:
        """document[key] if it is a mapping (its unknown keys reported); {} otherwise."""
        section = self.mapping(document, key, "")
        if section is None:
            return {}
        self.unknown_keys(section, key, allowed)
        return section

    def env_names(self, parent: Mapping, key: str, where: str, example: str) -> tuple[str, ...]:
        """A list of environment variable names (not values)."""
        names = self.strings(parent, key, where, example)
        if names is None:
            return ()
        for name in names:
            if not ENV_NAME.fullmatch(name):
                self.problem(key_line(parent, key), dotted(where, key),
                             f"'{printable(name)}' is not an environment variable name",
                             f"write it like {key}: {example} (the variable's name, not its value)")
        return names

    def name_string(self, parent: Mapping, key: str, where: str, default: str, pattern: re.Pattern,
                    rule: str) -> str:
        value = self.optional_string(parent, key, where, default)
        if value is None:
            return default
        if not pattern.fullmatch(value):
            self.problem(key_line(parent, key), dotted(where, key), f"'{value}' is not {rule}",
                         f"write it like {key}: {default}")
        return value

    def items(self, document: Mapping, key: str, example: str) -> Optional[list[tuple[int, Any]]]:
        """(line, item) of the list document[key]; None if absent or mistyped."""
        if key not in document:
            return None
        items = document[key]
        line = key_line(document, key)
        if not isinstance(items, list):
            self.problem(line, key, f"must be a list, not {kind_of(items)}", f"write it as a list of '- {example}'")
            return None
        return [(line_of_item(items, index, line), item) for index, item in enumerate(items)]

    def named(self, items: list[tuple[int, Any]], where: str, kind: str) -> list[tuple[int, Any, bool]]:
        """(line, item, whether its `name` repeats an earlier item's: reported)."""
        first_lines: dict[str, int] = {}
        result = []
        for line, spec in items:
            name = spec.get("name") if isinstance(spec, Mapping) else None
            duplicate = isinstance(name, str) and name in first_lines
            if duplicate:
                self.problem(key_line(spec, "name"), where, f"duplicate {kind} name '{name}' (first at line "
                             f"{first_lines[name]})", "rename one of them")
            elif isinstance(name, str):
                first_lines[name] = key_line(spec, "name")
            result.append((line, spec, duplicate))
        return result


def line_of_item(items: Any, index: int, default: int) -> int:
    """The 1-based line of items[index] in a round-trip list."""
    try:
        return items.lc.item(index)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return default


def _number_example(default: float) -> str:
    return f"{default:g}"


def _number_text(value: float) -> str:
    """`value` for a message; a huge int (10**400 is no float) by its size."""
    if isinstance(value, float) or abs(value) < 10**15:
        return f"{value:g}"
    return f"a number of {len(str(abs(value)))} digits"
