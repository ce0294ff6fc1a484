"""The driver's records: requests, builds, stages, tasks, events, releases, leases (deliveries,
test results and releases are convoy.models_results', re-exported here). Plain dataclasses, read from and
written to the store (convoy.store); the state enums carry the lifecycles of DESIGN.md ("The driver"):

    request  queued -> testing -> merged | rejected | superseded | cancelled | error
             (an infrastructure error sends a testing request back to queued)
    try      queued -> testing -> passed | failed | cancelled | error
             (a request arriving sends a testing try back to queued: convoy.tries)
    build    building -> succeeded | failed
    stage    waiting -> building -> succeeded | failed; `skipped` when an
             earlier stage failed (the stage never started)
    task     waiting -> ready -> scheduled -> building -> succeeded | failed;
             `skipped` with its stage; an interrupted task (building or
             scheduled when the driver died) goes back to ready

A request in `testing` also has a `phase`, the step it is at, from which a
restarted `convoy process` resumes it:

    candidate -> building -> merging -> pushed -> tagged
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from convoy.models_results import Delivery, Release, TestResult  # noqa: F401 (models' records too)


class RequestState(str, enum.Enum):
    QUEUED = "queued"
    TESTING = "testing"
    MERGED = "merged"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"
    ERROR = "error"
    PASSED = "passed"  # a try's endings (kind "try"): a request never takes them
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self not in (RequestState.QUEUED, RequestState.TESTING)


# A record's kind: a request of the merge queue, or a try (`convoy try`: the
# stages run on a candidate that is never merged nor tagged; convoy.tries).
KIND_REQUEST = "request"
KIND_TRY = "try"

# A request's priority (requests.priority, schema 5): higher goes first.
PRIORITY_NORMAL = 0
PRIORITY_HIGH = 10
PRIORITIES = {"normal": PRIORITY_NORMAL, "high": PRIORITY_HIGH}


class Phase(str, enum.Enum):
    """Where a `testing` request is; each is a point a restart resumes from."""

    CANDIDATE = "candidate"  # making the candidate commit (redone from scratch on resume)
    BUILDING = "building"  # the candidate exists; its build runs
    MERGING = "merging"  # the build passed; the branch is to be moved to the candidate
    PUSHED = "pushed"  # the branch is at the candidate on the remote; the tag is to be made
    TAGGED = "tagged"  # the release tag is on the remote (the request is merged)


class BuildState(str, enum.Enum):
    BUILDING = "building"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class StageState(str, enum.Enum):
    WAITING = "waiting"
    BUILDING = "building"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # an earlier stage failed: this one never started


# The outcome of a task that did not run because its configuration's pins
# did not move (Task.is_unchanged), and what `convoy show` and the notes say.
UNCHANGED = "UNCHANGED"
UNCHANGED_DETAIL = "unchanged: skipped (the bump moved no pin of this configuration)"


class TaskState(str, enum.Enum):
    WAITING = "waiting"
    READY = "ready"
    OFFERED = "offered"  # ready, and offered to a spare worker (convoy.spares) before it runs here
    SCHEDULED = "scheduled"
    BUILDING = "building"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def is_final(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.SKIPPED)


# Event types, in the order of a request's life. DESIGN.md's list plus the
# request transitions that it leaves implicit.
REQUEST_QUEUED = "REQUEST_QUEUED"
REQUEST_SUPERSEDED = "REQUEST_SUPERSEDED"
REQUEST_CANCELLED = "REQUEST_CANCELLED"
BUILD_START = "BUILD_START"
STAGE_START = "STAGE_START"
TASK_START = "TASK_START"
TASK_COMPLETE = "TASK_COMPLETE"
TASK_SUCCESS = "TASK_SUCCESS"
TASK_FAIL = "TASK_FAIL"
STAGE_COMPLETE = "STAGE_COMPLETE"
BUILD_COMPLETE = "BUILD_COMPLETE"
BUILD_SUCCESS = "BUILD_SUCCESS"
BUILD_FAIL = "BUILD_FAIL"
MANIFEST_UPDATED = "MANIFEST_UPDATED"
RELEASE_TAGGED = "RELEASE_TAGGED"
REQUEST_REJECTED = "REQUEST_REJECTED"
REQUEST_REQUEUED = "REQUEST_REQUEUED"
REQUEST_ERROR = "REQUEST_ERROR"
PLUGIN_ERROR = "PLUGIN_ERROR"
# A try's life (`convoy try`): queued (again, when a request stopped it),
# started, and its verdict; its builds report BUILD_START ... as a request's.
TRY_QUEUED = "TRY_QUEUED"
TRY_START = "TRY_START"
TRY_PASSED = "TRY_PASSED"
TRY_FAILED = "TRY_FAILED"
# The lab's (no request): a rig's health moved, by the driver or a person
# (convoy.lab.health; data: rig, pool, old, new, reason, by).
RIG_HEALTH_CHANGED = "RIG_HEALTH_CHANGED"
# Steering the queue (`convoy pause`, `resume`, `drain`, `promote`): data {"by": ..., "reason": ...}.
QUEUE_PAUSED = "QUEUE_PAUSED"
QUEUE_RESUMED = "QUEUE_RESUMED"
QUEUE_DRAINING = "QUEUE_DRAINING"
REQUEST_PROMOTED = "REQUEST_PROMOTED"

# Every event type, in the order convoy.yaml's messages list them: the
# design's fifteen, then the four the queue added, then the tries' four,
# then the lab's one, then the four of steering the queue (convoy.config imports it).
EVENT_TYPES = (
    REQUEST_QUEUED, BUILD_START, STAGE_START, TASK_START, TASK_COMPLETE, TASK_SUCCESS,
    TASK_FAIL, STAGE_COMPLETE, BUILD_COMPLETE, BUILD_SUCCESS, BUILD_FAIL, MANIFEST_UPDATED,
    RELEASE_TAGGED, REQUEST_REJECTED, PLUGIN_ERROR,
    REQUEST_SUPERSEDED, REQUEST_CANCELLED, REQUEST_REQUEUED, REQUEST_ERROR,
    TRY_QUEUED, TRY_START, TRY_PASSED, TRY_FAILED,
    RIG_HEALTH_CHANGED,
    QUEUE_PAUSED, QUEUE_RESUMED, QUEUE_DRAINING, REQUEST_PROMOTED,
)


@dataclass(frozen=True)
class RequestBump:
    """One bump of a request: `component` to `version` (the fields of the
    request's primary bump; `commit`, `configuration` as there)."""

    component: str
    version: str
    commit: Optional[str] = None
    commit_given: bool = False
    archive_url: Optional[str] = None
    strip_prefix: Optional[str] = None
    configuration: Optional[str] = None

    @property
    def title(self) -> str:
        """"messages v1.5.0" (and the scope, if one)."""
        scope = f" [{self.configuration}]" if self.configuration else ""
        return f"{self.component} {self.version}{scope}"

    def to_dict(self) -> dict[str, Any]:
        return {"component": self.component, "version": self.version, "commit": self.commit,
                "commit_given": self.commit_given, "archive_url": self.archive_url,
                "strip_prefix": self.strip_prefix, "configuration": self.configuration}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RequestBump":
        return cls(component=str(data["component"]), version=str(data["version"]), commit=data.get("commit"),
                   commit_given=bool(data.get("commit_given")), archive_url=data.get("archive_url"),
                   strip_prefix=data.get("strip_prefix"), configuration=data.get("configuration"))

    @classmethod
    def of(cls, source: Any) -> "RequestBump":
        """The bump of anything with the seven bump fields (a Request's
        primary, a Submission), of a mapping of them, or the bump itself."""
        if isinstance(source, RequestBump):
            return source
        if isinstance(source, Mapping):
            return cls.from_dict(source)
        return cls(component=source.component, version=source.version, commit=source.commit,
                   commit_given=source.commit_given, archive_url=source.archive_url,
                   strip_prefix=source.strip_prefix, configuration=source.configuration)


def bumps_title(bumps: Sequence[RequestBump]) -> str:
    """"messages v2.0.0 + planner v3.0.0"."""
    return " + ".join(b.title for b in bumps)


@dataclass(frozen=True)
class Request:
    """One integration request: bump `component` to `version`, and, for a
    group, the `bumps` beyond that one, all tested, merged and tagged as one.

    `commit` is the component's commit: given at submit (`commit_given`) or
    resolved from the version then. `configuration` limits the request to
    one configuration (None: every configuration that has the component).
    `detail` says, in one line, why a request ended as it did. `all_bumps`
    is every bump, this primary one first; `components` their components.
    `kind` is KIND_REQUEST, or KIND_TRY for a try (`is_try`), which shares
    the record and its builds but never the merge queue.
    """

    id: int
    component: str
    version: str
    commit: Optional[str]
    commit_given: bool
    archive_url: Optional[str]
    strip_prefix: Optional[str]
    configuration: Optional[str]
    requested_by: str
    state: RequestState
    phase: Optional[Phase]
    attempts: int
    base_commit: Optional[str]
    candidate_commit: Optional[str]
    tag: Optional[str]
    detail: Optional[str]
    superseded_by: Optional[int]
    cancel_requested: bool
    created_at: float
    updated_at: float
    finished_at: Optional[float]
    total_seconds: float
    bazel_seconds: float
    git_seconds: float
    bumps: tuple[RequestBump, ...] = ()  # a group's bumps beyond the primary one
    kind: str = KIND_REQUEST
    priority: int = 0  # PRIORITY_NORMAL; higher goes first (convoy submit --priority, convoy promote)

    @property
    def is_try(self) -> bool:
        return self.kind == KIND_TRY

    @property
    def primary(self) -> RequestBump:
        return RequestBump.of(self)

    @property
    def all_bumps(self) -> tuple[RequestBump, ...]:
        """Every bump of the request, the primary one (component, version, ...) first."""
        return (self.primary, *self.bumps)

    @property
    def components(self) -> tuple[str, ...]:
        """The components the request bumps, in its bumps' order."""
        return tuple(b.component for b in self.all_bumps)

    @property
    def is_group(self) -> bool:
        return bool(self.bumps)

    @property
    def title(self) -> str:
        """"messages v1.5.0" (and the scope, if one); a group's
        "messages v2.0.0 + planner v3.0.0"."""
        return bumps_title(self.all_bumps)


@dataclass(frozen=True)
class OpenGroup:
    """A group being gathered (`convoy submit ... --group NAME`): its bumps
    are held until `convoy submit --group NAME --close` queues them as one request."""

    name: str
    bumps: tuple[RequestBump, ...]
    requested_by: Optional[str]
    created_at: float


@dataclass(frozen=True)
class Build:
    """One candidate of a request and its run through the construction plan.

    `number` counts the request's builds from 1 (a rebuild after the branch
    moved, or a retry after an infrastructure error, is a new build).
    """

    id: int
    request_id: int
    number: int
    state: BuildState
    base_commit: str
    candidate_commit: str
    started_at: float
    finished_at: Optional[float]
    detail: Optional[str]


@dataclass(frozen=True)
class Stage:
    """One stage of a build: `command` over `targets` with the stage's flags."""

    id: int
    build_id: int
    position: int
    name: str
    command: str
    state: StageState
    started_at: Optional[float]
    finished_at: Optional[float]


@dataclass(frozen=True)
class TargetOutcome:
    """What Bazel said about one target of a task (from the build event file).

    A test (`is_test`: it has a test result) either ran or came from a cache
    (`cached`: Bazel's own, the disk cache or a remote one).
    """

    label: str
    status: str
    cached: bool = False
    duration_ms: Optional[int] = None
    log_paths: tuple[str, ...] = ()
    # Over convoy's runs of the task (convoy.retries): how many ran the target, the rigs a
    # hardware test ran on (in order), and why it ran again or does not count.
    attempts: int = 1
    rigs: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def is_test(self) -> bool:
        return self.status.lower() in TESTED_STATUSES

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "label": self.label, "status": self.status, "cached": self.cached,
            "duration_ms": self.duration_ms, "log_paths": list(self.log_paths),
        }
        if self.attempts != 1:
            data["attempts"] = self.attempts
        if self.rigs:
            data["rigs"] = list(self.rigs)
        if self.notes:
            data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TargetOutcome":
        return cls(
            label=data["label"], status=data["status"], cached=bool(data.get("cached")),
            duration_ms=data.get("duration_ms"), log_paths=tuple(data.get("log_paths") or ()),
            attempts=int(data.get("attempts") or 1), rigs=tuple(data.get("rigs") or ()),
            notes=tuple(data.get("notes") or ()),
        )


@dataclass(frozen=True)
class Task:
    """One Bazel invocation: a stage in one configuration, on one slot.

    A configuration whose resolved pins the bump did not move gets a task
    that never runs: skipped, outcome UNCHANGED (`is_unchanged`).

    `outcome` is the bazel.Outcome name once it ran; `pid` the Bazel
    client's process id while it runs (a restarted driver kills a leftover
    one); `runs` counts how often it was started (more than 1 after an
    interruption).
    """

    id: int
    stage_id: int
    build_id: int
    configuration: str
    state: TaskState
    slot: Optional[int]
    pid: Optional[int]
    outcome: Optional[str]
    exit_code: Optional[int]
    log_path: Optional[str]
    bep_path: Optional[str]
    targets: tuple[TargetOutcome, ...]
    detail: Optional[str]
    runs: int
    started_at: Optional[float]
    finished_at: Optional[float]
    log_tail: Optional[str] = None  # the log's last 16 KiB (schema 6), for a worker without the file

    @property
    def is_unchanged(self) -> bool:
        """Skipped because the configuration's pins did not move (not a failure)."""
        return self.state == TaskState.SKIPPED and self.outcome == UNCHANGED

    @property
    def duration(self) -> Optional[float]:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def test_counts(self) -> tuple[int, int]:
        """(ran, cached): how many of the task's tests ran, and how many came from a cache."""
        tests = [t for t in self.targets if t.is_test]
        cached = sum(1 for t in tests if t.cached)
        return len(tests) - cached, cached

    @property
    def failing_targets(self) -> tuple[TargetOutcome, ...]:
        return tuple(t for t in self.targets if is_failing_status(t.status))


@dataclass(frozen=True)
class Event:
    """A persisted event; `id` is its place in the one total order."""

    id: int
    ts: str
    type: str
    request_id: Optional[int]
    build_id: Optional[int]
    stage_id: Optional[int]
    task_id: Optional[int]
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The event as plugins receive it."""
        return {
            "id": self.id, "ts": self.ts, "type": self.type, "request_id": self.request_id,
            "build_id": self.build_id, "stage_id": self.stage_id, "task_id": self.task_id,
            "data": json.loads(json.dumps(self.data)),
        }


QUEUE_LEASE = "queue"  # the lease row of the worker that schedules the queue (convoy.queue.lock)
WORKER_PREFIX = "worker "  # a worker's presence row in the leases: "worker <name>:<pid>"


@dataclass(frozen=True)
class LeaseRow:
    """A lease: "queue" (who schedules it) or a worker's presence ("worker <name>:<pid>"), until `expires_at`."""

    name: str
    owner: str
    expires_at: float


# Target statuses (convoy.bep's, lowercase) that make a task fail: the
# target's own failure. Others (passed, flaky, skipped, built, no_status,
# incomplete) do not by themselves.
FAILING_STATUSES = frozenset({"failed", "timeout", "failed_to_build"})
# The statuses of a test that has a result (it ran, or came from a cache).
TESTED_STATUSES = frozenset({"passed", "failed", "flaky", "timeout", "quarantined"})


def is_failing_status(status: str) -> bool:
    return status.lower() in FAILING_STATUSES
