"""The records of what the queue's work left behind, read from and written to the store like
convoy.models' (which re-exports them): a forge's webhook delivery that `convoy serve` acted on
(`Delivery`), one test target's result in one task (`TestResult`: `convoy flakes`), and a release
tag pushed for a merged candidate (`Release`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Delivery:
    """A forge's webhook delivery that `convoy serve` acted on (`outcome`:
    submitted, existing or ignored; `request_id`: the request it queued or
    found)."""

    forge: str
    delivery: str
    request_id: Optional[int]
    outcome: str
    received_at: float


@dataclass(frozen=True)
class TestResult:
    """One test target's result in one task (`convoy flakes`): Bazel's
    status, or convoy's verdict (QUARANTINED; FLAKY when convoy's own retry
    passed), the attempts it took, and the rigs of a hardware test (in the
    order it ran on them)."""

    __test__ = False  # not a pytest class

    id: int
    target: str
    configuration: str
    stage: str
    status: str
    attempts: int
    rigs: tuple[str, ...]
    detail: Optional[str]
    request_id: Optional[int]
    build_id: Optional[int]
    task_id: Optional[int]
    recorded_at: float


@dataclass(frozen=True)
class Release:
    """A release tag pushed for a request's merged candidate."""

    id: int
    request_id: Optional[int]
    build_id: Optional[int]
    tag: str
    commit: str
    notes: str
    created_at: float
