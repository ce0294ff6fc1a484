"""Affected targets: the tests of a stage that depend on a component whose pin moved.

A test stage with `affected_only: true` runs, in each configuration, only
the test targets that depend on a component whose pin the candidate moved
in that configuration (the build stage still builds everything):

    changed = changed_components(checkout, build, "rover")     # Changed(("planner",), None)
    selection = select_tests(worktree, spec, "rover", changed, QuerySettings(output_base=slot, flags=flags))
    selection.targets(spec)    # ("//integration:plan_to_motion_test",), or spec.targets on a fallback
    selection.detail()         # "affected only: 1 of 2 test targets (query 0.3 s)"

`changed_components` compares the lock of the build's base commit with the
candidate's (convoy.lock.moved_components: every field of each entry) in
one configuration.
`select_tests` asks Bazel (convoy.bazel.query) in the task's own output
base, with its startup flags and `--repo_env=CONVOY_CONFIGURATION=<c>` (and
the task's explicit `--repo_env`/`--override_repository` flags), so the
slot's server answers from what it has loaded and nothing is fetched again
(measured on Bazel 4.2.3 with the sample: 0.2-0.3 s a query on a warm
server; the test run after it analyses nothing anew). Two queries, where
<targets> is the stage's (`a -b c` as `(("a" except "b") + "c")`):

    tests(<targets>)                                  --output=xml: every test, with its tags
    let t = tests(<targets>) in ($t intersect rdeps($t, set(@c//...:* @convoy_manifest//...:*)))
                                + (buildfiles($t) intersect set(@c//...:*))

The stage's tests are those the first query names, less those the stage's
`--test_tag_filters` leaves out and those tagged `manual` (which a pattern
does not run) unless named in `targets`. The hub @convoy_manifest counts as
changed too (its configuration.json records the pins).

Whenever the answer cannot be trusted, the task tests everything and
`fallback` says why: the query failed (a Bazel error, a timeout, output
that is not labels), no component's pin moved (e.g. the base commit's lock
is unreadable), a component left the configuration, or a BUILD file of the
tests loads a .bzl of a changed component (a load is not an edge `rdeps`
sees). The queries' command lines and Bazel's messages go to
`<task log>.query.log`.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections import OrderedDict
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from convoy import bazel
from convoy import candidate as cand
from convoy import fsutil
from convoy import lock
from convoy.config import StageSpec
from convoy.models import Build

HUB = "convoy_manifest"  # the hub repository: its configuration.json records every pin
QUERY_TIMEOUT = 600.0  # seconds, at most (a stage's own timeout if shorter)
PREFIX = "affected only"
_REPOSITORY_FLAGS = ("--repo_env=", "--override_repository=")
_TAG_FILTER = "--test_tag_filters="


@dataclass(frozen=True)
class Changed:
    """The components whose pin moved in one configuration (sorted), or why
    that is not known (`reason`; then `components` is empty)."""

    components: tuple[str, ...]
    reason: Optional[str] = None


@dataclass(frozen=True)
class QuerySettings:
    """How the task runs Bazel: its output base (the slot), startup flags,
    flags (only their `--repo_env=`, `--override_repository=` and
    `--test_tag_filters=` count here), the environment's secrets, the
    configuration (`--repo_env=CONVOY_CONFIGURATION=...`), the query's time
    limit and where its log goes."""

    output_base: Optional[Path]
    startup_flags: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    secret_env: tuple[str, ...] = ()
    pass_env: tuple[str, ...] = ()
    timeout: float = QUERY_TIMEOUT
    log_path: Optional[Path] = None
    bazel: str = "bazel"

    @classmethod
    def of(cls, config, output_base: Optional[Path], flags: Sequence[str], *, timeout: float = QUERY_TIMEOUT,
           log_path: Optional[Path] = None) -> "QuerySettings":
        """A query run as a task of `config` (a convoy.config.Config) would run Bazel: its startup flags,
        its environment's secrets and passed variables."""
        return cls(output_base=output_base, startup_flags=tuple(config.bazel_startup_flags), flags=tuple(flags),
                   secret_env=tuple(config.secret_env), pass_env=tuple(config.bazel_pass_env), timeout=timeout,
                   log_path=log_path)


@dataclass(frozen=True)
class Selection:
    """The test targets of one task (`labels`, sorted), out of the `total`
    test targets of its stage, the queries' `seconds`, the `components`
    asked about, and `fallback`: why every test runs (None: the query
    worked and `labels` is the answer)."""

    labels: tuple[str, ...]
    total: int
    seconds: float
    components: tuple[str, ...] = ()
    fallback: Optional[str] = None

    @property
    def nothing_to_run(self) -> bool:
        """The query worked and no test depends on a changed component."""
        return self.fallback is None and not self.labels

    def targets(self, spec: StageSpec) -> tuple[str, ...]:
        """What Bazel runs: the selected labels, or the stage's targets on a fallback."""
        return tuple(spec.targets) if self.fallback is not None else self.labels

    def detail(self) -> str:
        """One line for the task's detail."""
        if self.fallback is not None:
            return f"{PREFIX}: {self.fallback}; tested everything"
        query = f"query {self.seconds:.1f} s"
        if not self.labels:
            return (f"{PREFIX}: no test depends on {', '.join(self.components)} "
                    f"(0 of {self.total} test targets, {query})")
        return f"{PREFIX}: {len(self.labels)} of {self.total} test targets ({query})"

    def event_data(self) -> dict:
        """The selection as the `affected` key of TASK_START's data."""
        return {
            "selected": None if self.fallback is not None else len(self.labels), "total": self.total,
            "query_seconds": round(self.seconds, 3), "components": list(self.components),
            "targets": list(self.labels), "fallback": self.fallback,
        }


def changed_in(old_lock: Optional[object], new_lock: Optional[object], configuration: str) -> Changed:
    """The components whose pin moved in `configuration` from `old_lock` to
    `new_lock` (parsed lock files or convoy.lock.Lock objects; None:
    unreadable)."""
    if old_lock is None:
        return Changed((), "the base commit's lock is unreadable")
    if new_lock is None:
        return Changed((), "the candidate's lock is unreadable")
    try:
        before = lock.configuration_entries(old_lock).get(configuration, {})
        after = lock.configuration_entries(new_lock).get(configuration, {})
    except (AttributeError, KeyError, TypeError, ValueError) as e:  # a lock of an unexpected shape
        return Changed((), f"the locks cannot be compared ({type(e).__name__}: {e})")
    gone = sorted(before.keys() - after.keys())
    if gone:
        return Changed((), f"{', '.join(gone)} left configuration {configuration}")
    moved = lock.moved_components(before, after)
    if not moved:
        return Changed((), f"no component's pin moved in configuration {configuration}")
    return Changed(tuple(sorted(moved)))


def changed_components(checkout: Path, build: Build, configuration: str) -> Changed:
    """changed_in() of the locks at the build's base and candidate commits."""
    return changed_in(cand.lock_at(checkout, build.base_commit), cand.lock_at(checkout, build.candidate_commit),
                      configuration)


def select_tests(worktree: Path, spec: StageSpec, configuration: str, changed: Changed,
                 settings: QuerySettings, *, commit: Optional[str] = None) -> Selection:
    """The stage's test targets that depend on `changed.components` in
    `configuration`; see the module docstring. Never raises for Bazel's sake.

    With `commit` (what `worktree` has checked out), an answer is kept for
    the process's next identical question: the window's rig gate
    (convoy.queue.rigs) asks before the stage and the task asks again; the
    second is answered without Bazel, and its query log says so."""
    _log(settings.log_path, None)  # a new log for each run of the task
    if changed.reason is not None:
        return Selection((), 0, 0.0, (), changed.reason)
    key = None
    if commit:
        key = (commit, spec.name, tuple(spec.targets), configuration, changed.components, _tag_filter(settings.flags),
               tuple(f for f in settings.flags if f.startswith(_REPOSITORY_FLAGS)))  # what reaches the queries
        with _ANSWERS_LOCK:
            known = _ANSWERS.get(key)
        if known is not None:
            _note(settings.log_path, f"# convoy: answered by the same queries on {commit[:10]}, made "
                                     f"{time.monotonic() - known[2]:.1f} s earlier in this process (at the "
                                     f"stage's gate); Bazel was not asked again\n")
            return Selection(known[0], known[1], 0.0, changed.components)
    started = time.monotonic()
    try:
        selection = _select(Path(worktree), spec, configuration, changed.components, settings)
    except _QueryFailed as e:
        reason = str(e) if isinstance(e, _LoadsComponent) else f"query failed ({e})"
        return Selection((), 0, time.monotonic() - started, changed.components, reason)
    if key is not None:
        with _ANSWERS_LOCK:
            _ANSWERS[key] = (selection[0], selection[1], time.monotonic())
            while len(_ANSWERS) > _ANSWERS_KEPT:
                _ANSWERS.popitem(last=False)
    return Selection(selection[0], selection[1], time.monotonic() - started, changed.components)


# select_tests' answers by (commit, stage, targets, configuration, components, the flags that reach the
# queries): the same tree and flags give the same answer in any output base.
_ANSWERS: "OrderedDict[tuple, tuple[tuple[str, ...], int, float]]" = OrderedDict()
_ANSWERS_LOCK = threading.Lock()
_ANSWERS_KEPT = 64


def note_not_run(log_path: Path, selection: Selection) -> None:
    """Writes the task's log when Bazel does not run (no test selected)."""
    fsutil.private_dir(log_path.parent)
    with os.fdopen(fsutil.open_private(log_path, os.O_WRONLY | os.O_TRUNC), "w") as log:
        log.write(f"# convoy: {selection.detail()}; Bazel did not run\n")


class _QueryFailed(Exception):
    """The query gave no answer to trust; the message says why, in a few words."""


class _LoadsComponent(_QueryFailed):
    """The query worked, but a BUILD file loads a changed component's .bzl."""


def _select(worktree: Path, spec: StageSpec, configuration: str, components: Sequence[str],
            settings: QuerySettings) -> tuple[tuple[str, ...], int]:
    universe = _target_expression(spec.targets)
    stage_tests = _stage_tests(_run(worktree, ["--output=xml", f"tests({universe})"], configuration, settings),
                               _tag_filter(settings.flags), spec.targets)
    if not stage_tests:
        return (), 0
    changed = " ".join(f"@{c}//...:*" for c in components)
    expression = (f"let t = tests({universe}) in ($t intersect rdeps($t, set({changed} @{HUB}//...:*)))"
                  f" + (buildfiles($t) intersect set({changed}))")
    found = _labels(_run(worktree, ["--output=label", expression], configuration, settings))
    loaded = sorted(label for label in found if label.startswith("@"))
    if loaded:
        raise _LoadsComponent(f"a BUILD file of the tests loads {loaded[0]}, which rdeps does not follow")
    return tuple(sorted(set(found) & stage_tests)), len(stage_tests)


def _target_expression(targets: Sequence[str]) -> str:
    """The stage's target patterns as a query expression, in Bazel's order:
    "a -b c" is ((a except b) + c)."""
    expression = ""
    for target in targets:
        negative = target.startswith("-")
        pattern = target[1:] if negative else target
        if not pattern or '"' in pattern or not pattern.isprintable():
            raise _QueryFailed(f"target {target!r} cannot be quoted in a query")
        word = f'"{pattern}"'
        if not expression:
            if negative:
                raise _QueryFailed(f"the targets start with a negative pattern ({target})")
            expression = word
        else:
            expression = f"({expression} {'except' if negative else '+'} {word})"
    if not expression:
        raise _QueryFailed("the stage has no targets")
    return expression


def _run(worktree: Path, args: list[str], configuration: str, settings: QuerySettings) -> str:
    flags = [f for f in settings.flags if f.startswith(_REPOSITORY_FLAGS)]
    argv = ["--noshow_progress", f"--repo_env=CONVOY_CONFIGURATION={configuration}", *flags, *args]
    command = [settings.bazel, *settings.startup_flags, *([f"--output_base={settings.output_base}"]
                                                           if settings.output_base is not None else []),
               "query", *argv]
    try:
        proc = bazel.query(worktree, argv, startup_flags=settings.startup_flags, output_base=settings.output_base,
                           timeout=settings.timeout, secret_env=settings.secret_env, pass_env=settings.pass_env,
                           bazel=settings.bazel)
    except bazel.BazelNotRun as e:
        _log(settings.log_path, (command, None, str(e)))
        raise _QueryFailed(f"timed out after {settings.timeout:g} s" if "timed out" in str(e) else str(e)) from None
    _log(settings.log_path, (command, proc.returncode, proc.stderr))
    if proc.returncode != 0:
        raise _QueryFailed(f"exit {proc.returncode}: {_first_error(proc.stderr)}")
    return proc.stdout


def _stage_tests(xml_text: str, tag_filter: Optional[str], targets: Sequence[str]) -> frozenset[str]:
    """The tests of the xml output that Bazel would run: the tag filter's
    (at least one wanted tag if any is named, no unwanted one), and not
    `manual` unless named in `targets`."""
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError as e:
        raise _QueryFailed(f"its xml output does not parse: {e}") from None
    wanted, unwanted = set(), set()
    for tag in filter(None, (t.strip() for t in (tag_filter or "").split(","))):
        if tag.startswith("-"):
            unwanted.add(tag[1:])
        elif tag != "manual":  # Bazel ignores it in a filter
            wanted.add(tag.removeprefix("+"))
    named = set(targets)
    tests = set()
    for rule in root.iter("rule"):
        label = rule.get("name")
        if not label or not label.startswith(("//", "@")):
            raise _QueryFailed(f"its xml output names a rule {label!r}")
        tags = {s.get("value") for ls in rule.findall("list") if ls.get("name") == "tags" for s in ls.iter("string")}
        if wanted and not tags & wanted or tags & unwanted or ("manual" in tags and label not in named):
            continue
        tests.add(label)
    return frozenset(tests)


def _labels(text: str) -> list[str]:
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    for label in labels:
        if not label.startswith(("//", "@")) or ":" not in label or " " in label:
            raise _QueryFailed(f"it printed {label[:80]!r}, not a label")
    return labels


def _tag_filter(flags: Sequence[str]) -> Optional[str]:
    """The last --test_tag_filters of `flags` (Bazel takes the last)."""
    values = [f[len(_TAG_FILTER):] for f in flags if f.startswith(_TAG_FILTER)]
    return values[-1] if values else None


def _first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    line = (errors or lines or ["no message"])[0].removeprefix("ERROR:").strip()
    return line if len(line) <= 200 else line[:197] + "..."


def _log(path: Optional[Path], query: Optional[tuple[list[str], Optional[int], str]]) -> None:
    """Appends one query (its arguments, exit status, Bazel's messages) to
    its log; None empties the log."""
    if query is None:
        _note(path, "", empty=True)
        return
    argv, returncode, stderr = query
    newline = "\n" if stderr and not stderr.endswith("\n") else ""
    _note(path, f"# convoy: {shlex.join(argv)}\n# exit: {returncode}\n{stderr}{newline}")


def _note(path: Optional[Path], text: str, *, empty: bool = False) -> None:
    """Appends `text` to the query log (`empty`: the log is emptied first)."""
    if path is None:
        return
    try:
        fsutil.private_dir(path.parent)
        with os.fdopen(fsutil.open_private(path, os.O_WRONLY | (os.O_TRUNC if empty else os.O_APPEND)), "a") as log:
            log.write(text)
    except OSError:  # the log is a help, not worth failing the selection for
        pass

