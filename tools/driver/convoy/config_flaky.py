"""convoy.yaml's keys for flaky tests: a test stage's retries, and `quarantine:`.

    stages:
      - name: integration
        command: test
        flaky_test_attempts: 2     # Bazel's --flaky_test_attempts=2: a test that fails, then passes, is FLAKY
        retry_failed: 1            # convoy runs a failing test again this often if it passed on main (0: never)
    quarantine:                    # failing tests that do not reject, until a date (reported everywhere)
      - target: //integration:plan_to_motion_test
        reason: "times out on a loaded host, #123"
        until: 2026-12-31          # after that day convoy.yaml is refused until the entry goes or moves
        configurations: [rover]    # default: every configuration

`check_stage_retries` and `check_quarantine` are steps of convoy.config's
checker. A quarantine entry names one test by its label (no patterns: a
quarantine is a decision about one test), says why, and ends: an entry
whose `until` is before today is an error when convoy.yaml is loaded, so a
quarantine cannot be forgotten. convoy.flaky applies the entries.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from convoy.config_values import ValueChecker, line_of_item
from convoy.untrusted import printable
from convoy.yamlcheck import key_line, kind_of

QUARANTINE_KEYS = ("target", "reason", "until", "configurations")
MAX_FLAKY_TEST_ATTEMPTS = 10  # Bazel's own bound of --flaky_test_attempts
MAX_RETRY_FAILED = 5  # each is one more Bazel run of the failing tests
MAX_REASON = 200
FLAKY_FLAG = "--flaky_test_attempts"
_LABEL = re.compile(r"(?P<repo>@[A-Za-z0-9_.~+-]*)?//(?P<package>[A-Za-z0-9_.+=,@~-]+(/[A-Za-z0-9_.+=,@~-]+)*)?"
                    r"(:(?P<name>[A-Za-z0-9_.+=,@~/-]+))?")
_CONFIGURATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_PATTERNS = ("all", "*", "all-targets")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class QuarantineEntry:
    """One test whose failure does not reject until `until` (inclusive), in
    `configurations` (() = every one), because `reason`. `index` is its place
    in the list, as messages name it (quarantine[0])."""

    target: str
    reason: str
    until: datetime.date
    configurations: tuple[str, ...] = ()
    index: int = 0

    def applies(self, label: str, configuration: str, today: datetime.date) -> bool:
        """Whether the entry holds `label`'s failure in `configuration` on `today`."""
        return (label == self.target and today <= self.until
                and (not self.configurations or configuration in self.configurations))

    @property
    def note(self) -> str:
        """What a quarantined result says (convoy show, the notes, the provenance)."""
        return f"quarantined until {self.until.isoformat()}: {self.reason}"


def label_of(text: str) -> Optional[str]:
    """The label as Bazel's build events name the test (`//pkg` is `//pkg:pkg`, `@//` is `//`), or None
    for what is no single target's label (a pattern like //pkg/... or //pkg:all, a flag, a typo)."""
    match = _LABEL.fullmatch(text)
    if match is None or text.endswith("...") or (match["name"] or "") in _PATTERNS:
        return None
    package, name = match["package"] or "", match["name"]
    if name is None:
        if not package:
            return None
        name = package.rsplit("/", 1)[-1]
    repo = match["repo"] if match["repo"] not in (None, "@") else ""
    return f"{repo}//{package}:{name}"


def check_stage_retries(checker: ValueChecker, spec: Mapping, where: str, command: Optional[str],
                        flags: tuple[str, ...]) -> tuple[tuple[str, ...], int]:
    """A stage's `flaky_test_attempts` (as the Bazel flag it adds: () for one attempt) and `retry_failed`
    (default 1), its problems reported to `checker`. Both are a test stage's only."""
    attempts = checker.number(spec, "flaky_test_attempts", where, 1, minimum=1, integer=True, above=False,
                              maximum=MAX_FLAKY_TEST_ATTEMPTS)
    retry_failed = checker.number(spec, "retry_failed", where, 1, integer=True, above=False,
                                  maximum=MAX_RETRY_FAILED)
    for key in ("flaky_test_attempts", "retry_failed"):
        if key in spec and command == "build":
            checker.problem(key_line(spec, key), f"{where}.{key}", "applies to test stages only (a build has no "
                            "tests to run again)", "remove it, or set it on a stage with command: test")
    if "flaky_test_attempts" in spec and any(f.split("=", 1)[0] == FLAKY_FLAG for f in flags):
        checker.problem(key_line(spec, "flaky_test_attempts"), f"{where}.flaky_test_attempts",
                        f"the stage's flags set {FLAKY_FLAG} too", f"keep one: remove {FLAKY_FLAG} from flags")
    extra = (f"{FLAKY_FLAG}={attempts}",) if attempts and attempts > 1 and command == "test" else ()
    return extra, int(retry_failed)


def check_quarantine(checker: ValueChecker, document: Mapping,
                     today: Optional[datetime.date] = None) -> tuple[QuarantineEntry, ...]:
    """The `quarantine:` list of `document`, its problems reported to `checker` (an expired entry is one)."""
    today = today or datetime.date.today()
    items = checker.items(document, "quarantine", "{target: //integration:t, reason: ..., until: 2026-12-31}")
    entries: list[QuarantineEntry] = []
    for index, (line, item) in enumerate(items or ()):
        entry = _entry(checker, item, line, index, today)
        if entry is None:
            continue
        clash = next((e for e in entries if e.target == entry.target and (
            not e.configurations or not entry.configurations
            or set(e.configurations) & set(entry.configurations))), None)
        if clash is not None:
            checker.problem(line, f"quarantine[{index}] ({entry.target})",
                            f"quarantines the test again (quarantine[{clash.index}] has it)", "remove one of them")
            continue
        entries.append(entry)
    return tuple(entries)


def _entry(checker: ValueChecker, item: Any, line: int, index: int,
           today: datetime.date) -> Optional[QuarantineEntry]:
    where = f"quarantine[{index}]"
    if not isinstance(item, Mapping):
        checker.problem(line, where, f"each entry must be a mapping, not {kind_of(item)}",
                        "write it like - {target: //integration:t, reason: ..., until: 2026-12-31}")
        return None
    errors = len(checker.problems)
    checker.unknown_keys(item, where, QUARANTINE_KEYS)
    text = checker.string(item, "target", where, missing_at=line, example="//integration:plan_to_motion_test")
    target = label_of(text) if text is not None else None
    if text is not None:
        where = f"{where} ({printable(target or text)})"
        if target is None:
            checker.problem(key_line(item, "target"), where, f"'{printable(text)}' is not a test's label",
                            "name one test, like //integration:plan_to_motion_test (no patterns)")
    reason = checker.string(item, "reason", where, missing_at=line, example='"flaky on a loaded host, see #123"')
    if reason is not None and (len(reason) > MAX_REASON or not reason.isprintable()):
        checker.problem(key_line(item, "reason"), f"{where}.reason",
                        f"must be one line of at most {MAX_REASON} printable characters",
                        "shorten it; put the story in the issue it names")
    until = _until(checker, item, where, line)
    if until is not None and until < today:
        checker.problem(key_line(item, "until"), where, f"expired on {until.isoformat()}",
                        "fix the test or move its until date")
    configurations = checker.strings(item, "configurations", where, "[rover]", allow_empty=False) or ()
    items, names_line = item.get("configurations"), key_line(item, "configurations")
    for position, name in enumerate(configurations):
        if not _CONFIGURATION.fullmatch(name):
            checker.problem(line_of_item(items, position, names_line), f"{where}.configurations",
                            f"'{printable(name)}' is not a configuration name", "write names like [rover, drone]")
    if len(checker.problems) > errors or target is None or reason is None or until is None:
        return None
    return QuarantineEntry(target=target, reason=reason, until=until, configurations=tuple(configurations),
                           index=index)


def _until(checker: ValueChecker, item: Mapping, where: str, line: int) -> Optional[datetime.date]:
    """The entry's `until`: a date (YAML's 2026-12-31, or the same in quotes); required."""
    if "until" not in item:
        checker.problem(line, where, "missing required key 'until' (a quarantine ends)",
                        "add it, e.g. until: 2026-12-31 (at most a few weeks away)")
        return None
    value = item["until"]
    if isinstance(value, str) and _DATE.fullmatch(value.strip()):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    elif isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    shown = (f"'{printable(value)}'" if isinstance(value, str)
             else "a date and time" if isinstance(value, datetime.datetime) else kind_of(value))
    checker.problem(key_line(item, "until"), f"{where}.until", f"must be a date like 2026-12-31, not {shown}",
                    "write it as YYYY-MM-DD")
    return None
