"""Reading a Bazel build event file (--build_event_json_file).

Bazel writes one JSON object per line, each with an `id` naming the event
(`{"testSummary": {"label": ...}}`, `{"targetCompleted": ...}`, ...) and a
payload; the last one has `"lastMessage": true`. `read_bep` turns a file into
one TargetResult per top-level target and the command's exit code. It never
raises on a file cut short (a killed run), a missing file or a garbled line:
`complete` tells whether the last message was seen.

What Bazel 4.2 writes, as observed (and relied on here):

- A target's test outcome is its `testSummary.overallStatus` (PASSED, FLAKY,
  FAILED, TIMEOUT, NO_STATUS, FAILED_TO_BUILD, INCOMPLETE, REMOTE_FAILURE,
  TOOL_HALTED_BEFORE_TESTING); each attempt is a `testResult` with
  `testAttemptDurationMillis`, `cachedLocally` and its `test.log`
  (`file://` URI; with --flaky_test_attempts the failed attempts' logs are
  test_attempts/attempt_<n>.log).
- An incompatible target (target_compatible_with) completes as
  `"aborted": {"reason": "SKIPPED"}`; a target whose action failed completes
  with no `success` and a `failureDetail`; one that failed analysis or
  loading is aborted with ANALYSIS_FAILURE / LOADING_FAILURE.
- When a build stops early (no --keep_going) or is interrupted, Bazel closes
  every announced event with an `aborted` payload after `buildFinished`:
  with no reason when the build stopped (another target failed; Bazel's
  console says NO STATUS: status no_status; which targets got that far
  varies from run to run), with USER_INTERRUPTED when it was interrupted
  (status incomplete).
- `buildFinished.finished.exitCode` is {"name": "TESTS_FAILED", "code": 3};
  success is {"name": "SUCCESS"} (proto3 drops the zero code).
- A test target filtered out by --test_tag_filters completes (it is built)
  without `testTimeoutSeconds` and gets no testSummary.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional
from urllib.parse import unquote, urlparse

# TargetResult.status values.
PASSED = "passed"
FAILED = "failed"
FLAKY = "flaky"
TIMEOUT = "timeout"
SKIPPED = "skipped"
NO_STATUS = "no_status"
FAILED_TO_BUILD = "failed_to_build"
INCOMPLETE = "incomplete"
BUILT = "built"
STATUSES = (PASSED, FAILED, FLAKY, TIMEOUT, SKIPPED, NO_STATUS, FAILED_TO_BUILD, INCOMPLETE, BUILT)
# The statuses that are the target's own failure (a rejection, not bad luck).
FAILING_STATUSES = frozenset({FAILED, TIMEOUT, FAILED_TO_BUILD})

_SUMMARY_STATUS = {
    "PASSED": PASSED,
    "FLAKY": FLAKY,
    "FAILED": FAILED,
    "TIMEOUT": TIMEOUT,
    "NO_STATUS": NO_STATUS,
    "FAILED_TO_BUILD": FAILED_TO_BUILD,
    "TOOL_HALTED_BEFORE_TESTING": NO_STATUS,
    "INCOMPLETE": INCOMPLETE,
    "REMOTE_FAILURE": INCOMPLETE,  # the remote executor failed, not the test
}
_BUILD_FAILURE_REASONS = frozenset({"LOADING_FAILURE", "ANALYSIS_FAILURE"})
# Aborted because the build stopped before it (another target failed):
# Bazel's console says NO STATUS. Any other reason (USER_INTERRUPTED, ...)
# means the run itself was cut short: incomplete.
_NOT_REACHED_REASONS = frozenset({"", "UNKNOWN", "NO_BUILD", "NO_ANALYZE"})


@dataclass(frozen=True)
class TargetResult:
    """What became of one top-level target.

    `status` is one of STATUSES; `cached` is True when every test attempt's
    result came from a cache; `duration_ms` is the time spent running the
    test (all attempts, as Bazel measured them; for a cached result, the
    original run's); `log_paths` are the test.log of every attempt, in
    order, as local paths (remote URIs are kept as they are).
    """

    label: str
    status: str
    cached: bool = False
    duration_ms: Optional[int] = None
    log_paths: tuple[str, ...] = ()
    attempts: int = 0

    @property
    def failing(self) -> bool:
        """Whether the target itself failed (failed, timed out, did not build)."""
        return self.status in FAILING_STATUSES


@dataclass(frozen=True)
class BepSummary:
    """The build event file of one command: its targets, in the order Bazel
    first named them, the exit code Bazel reported (None if it never got
    that far) and whether the file is complete (the last message was seen).
    """

    targets: tuple[TargetResult, ...]
    exit_code: Optional[int]
    exit_name: Optional[str]
    complete: bool

    def failing(self) -> tuple[TargetResult, ...]:
        """The targets that failed, timed out, or did not build."""
        return tuple(t for t in self.targets if t.failing)

    def with_status(self, *statuses: str) -> tuple[TargetResult, ...]:
        """The targets whose status is one of `statuses`."""
        return tuple(t for t in self.targets if t.status in statuses)


@dataclass
class _Target:
    """Everything the file says about one label, gathered before deciding."""

    label: str
    configured_abort: Optional[str] = None
    completed: Optional[Mapping[str, Any]] = None
    completed_abort: Optional[str] = None
    summary: Optional[Mapping[str, Any]] = None
    summary_abort: Optional[str] = None
    attempts: list[tuple[tuple[int, int, int], Mapping[str, Any]]] = field(default_factory=list)


def read_bep(path: str | os.PathLike[str]) -> BepSummary:
    """Reads the build event file at `path`; see the module docstring.

    A missing or unreadable file gives no targets, no exit code and
    complete=False; lines that are not JSON objects are skipped.
    """
    targets: dict[str, _Target] = {}
    exit_code: Optional[int] = None
    exit_name: Optional[str] = None
    complete = False

    def target(label: str) -> _Target:
        if label not in targets:
            targets[label] = _Target(label)
        return targets[label]

    for event in _events(Path(path)):
        if event.get("lastMessage") is True:
            complete = True
        ids = event.get("id")
        if not isinstance(ids, Mapping) or len(ids) != 1:
            continue
        kind, key = next(iter(ids.items()))
        if not isinstance(key, Mapping):
            continue
        label = key.get("label")
        aborted = _abort_reason(event)
        if kind == "buildFinished":
            code = _get(event, "finished", "exitCode")
            if isinstance(code, Mapping):
                exit_name = code.get("name")
                exit_code = _int(code.get("code"), 0)
        elif not isinstance(label, str):
            continue
        elif kind == "targetConfigured":
            if aborted is not None:
                target(label).configured_abort = aborted
            else:
                target(label)
        elif kind == "targetCompleted":
            if aborted is not None:
                target(label).completed_abort = aborted
            else:
                target(label).completed = _get(event, "completed") or {}
        elif kind == "testSummary":
            if aborted is not None:
                target(label).summary_abort = aborted
            else:
                target(label).summary = _get(event, "testSummary") or {}
        elif kind == "testResult" and aborted is None:
            order = (_int(key.get("run"), 1), _int(key.get("shard"), 1), _int(key.get("attempt"), 1))
            target(label).attempts.append((order, _get(event, "testResult") or {}))
    return BepSummary(
        targets=tuple(_result(t, complete) for t in targets.values()),
        exit_code=exit_code,
        exit_name=exit_name,
        complete=complete,
    )


def _events(path: Path) -> Iterator[Mapping[str, Any]]:
    try:
        with path.open("rb") as f:
            for raw in f:
                try:
                    event = json.loads(raw)
                except ValueError:  # a line cut short by a kill, or garbage
                    continue
                if isinstance(event, Mapping):
                    yield event
    except OSError:
        return


def _result(t: _Target, complete: bool) -> TargetResult:
    attempts = [result for _, result in sorted(t.attempts, key=lambda a: a[0])]
    status = _status(t, complete)
    cached = bool(attempts) and all(_cached(a) for a in attempts)
    if not attempts and t.summary is not None:
        cached = _int(t.summary.get("totalNumCached"), 0) > 0
    duration: Optional[int] = None
    if attempts:
        duration = sum(_int(a.get("testAttemptDurationMillis"), 0) for a in attempts)
    elif t.summary is not None and "totalRunDurationMillis" in t.summary:
        duration = _int(t.summary.get("totalRunDurationMillis"), 0)
    logs = [_local(o.get("uri", "")) for a in attempts for o in a.get("testActionOutput") or ()
            if isinstance(o, Mapping) and o.get("name") == "test.log" and o.get("uri")]
    if not logs and t.summary is not None:
        logs = [_local(f.get("uri", "")) for key in ("failed", "passed") for f in t.summary.get(key) or ()
                if isinstance(f, Mapping) and f.get("uri")]
    return TargetResult(
        label=t.label, status=status, cached=cached, duration_ms=duration, log_paths=tuple(logs),
        attempts=len(attempts),
    )


def _status(t: _Target, complete: bool) -> str:
    if t.summary is not None:
        return _SUMMARY_STATUS.get(str(t.summary.get("overallStatus", "NO_STATUS")), INCOMPLETE)
    for reason in (t.completed_abort, t.configured_abort):
        if reason is None:
            continue
        if reason == "SKIPPED":
            return SKIPPED
        if reason in _BUILD_FAILURE_REASONS:
            return FAILED_TO_BUILD
        return NO_STATUS if reason in _NOT_REACHED_REASONS else INCOMPLETE
    if t.completed is None:
        return INCOMPLETE  # configured, never completed: the run was cut short
    if not t.completed.get("success"):
        return FAILED_TO_BUILD
    if "testTimeoutSeconds" in t.completed:  # a test Bazel meant to run
        if t.summary_abort is None:  # no summary at all
            return NO_STATUS if complete else INCOMPLETE
        return NO_STATUS if t.summary_abort in _NOT_REACHED_REASONS else INCOMPLETE
    return BUILT


def _abort_reason(event: Mapping[str, Any]) -> Optional[str]:
    """The reason of an `aborted` payload ('' when Bazel gives none); None if
    the event is not aborted."""
    aborted = event.get("aborted")
    if aborted is None:
        return None
    reason = aborted.get("reason") if isinstance(aborted, Mapping) else None
    return str(reason) if reason else ""


def _cached(attempt: Mapping[str, Any]) -> bool:
    info = attempt.get("executionInfo")
    remote = isinstance(info, Mapping) and bool(info.get("cachedRemotely"))
    return bool(attempt.get("cachedLocally")) or remote


def _get(event: Mapping[str, Any], *keys: str) -> Any:
    value: Any = event
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _int(value: Any, default: int) -> int:
    """Bazel writes int64 fields as strings ("36") and int32 as numbers."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _local(uri: str) -> str:
    """The local path of a file:// URI; other URIs (bytestream://) unchanged."""
    if uri.startswith("file://"):
        return unquote(urlparse(uri).path)
    return uri


def output_files(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """The files each completed top-level target built in its `default`
    output group ({label: [local path or URI, ...]}, in Bazel's order); a
    target that did not complete successfully is absent."""
    sets: dict[str, Mapping[str, Any]] = {}
    completed: dict[str, list[str]] = {}
    for event in _events(Path(path)):
        ids = event.get("id")
        if not isinstance(ids, Mapping) or len(ids) != 1:
            continue
        kind, key = next(iter(ids.items()))
        if kind == "namedSet" and isinstance(key, Mapping):
            sets[str(key.get("id"))] = _get(event, "namedSetOfFiles") or {}
        elif kind == "targetCompleted" and isinstance(key, Mapping) and isinstance(key.get("label"), str):
            done = _get(event, "completed")
            if not isinstance(done, Mapping) or done.get("success") is not True:
                continue
            roots = [str(s.get("id")) for group in done.get("outputGroup") or ()
                     if isinstance(group, Mapping) and group.get("name") == "default"
                     for s in group.get("fileSets") or () if isinstance(s, Mapping)]
            completed[key["label"]] = roots
    result = {}
    for label, roots in completed.items():
        files: list[str] = []
        seen: set[str] = set()
        pending = list(reversed(roots))
        while pending:
            set_id = pending.pop()
            if set_id in seen or set_id not in sets:
                continue
            seen.add(set_id)
            named = sets[set_id]
            files += [_local(f["uri"]) for f in named.get("files") or () if isinstance(f, Mapping) and f.get("uri")]
            pending += reversed([str(s.get("id")) for s in named.get("fileSets") or () if isinstance(s, Mapping)])
        result[label] = files
    return result
