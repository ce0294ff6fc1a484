"""The store's interface: `Store` (where the state lives) and `Transaction`
(the reads and writes of one transaction), which every backend implements,
and what does not depend on a backend: timestamps (`now`, `iso`), the
checkout's state directory (`state_dir`, `has_state`), `MAX_ID`, and a
store's URL as it may be shown (`shown_url`: never its password).

All of a backend's SQL lives behind the methods of `Transaction`; callers see
only the records of convoy.models. A write transaction commits when its block
ends and rolls back if it raises; `Store.read()` is a read-only snapshot.
Which request runs next is not the store's choice: the queue decides it,
with these methods.
"""

from __future__ import annotations

import abc
import contextlib
import datetime
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from convoy.errors import ConvoyError
from convoy.models import (
    KIND_REQUEST, Build, Delivery, Event, LeaseRow, OpenGroup, Release, Request, RequestBump, RequestState, Stage, Task,
    TaskState, TestResult,
)
from convoy.untrusted import printable, redact_userinfo

STATE_DIR = ".convoy"
DB_NAME = "state.db"
MAX_ID = 2**63 - 1  # SQLite's largest integer; no row has a larger id


_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def shown_url(url: str) -> str:
    """A store's `url` as it may be shown: no password, in its userinfo or in a password= parameter
    (a user name alone is shown: postgresql://convoy@db/convoy)."""
    head, sep, tail = url.partition("://")
    authority = tail.split("/", 1)[0].split("?", 1)[0]
    if sep and "@" in authority and ":" not in authority.rpartition("@")[0]:
        return printable(_PASSWORD_PARAM.sub(r"\1***", url))
    return printable(_PASSWORD_PARAM.sub(r"\1***", redact_userinfo(url)))


def now() -> float:
    return time.time()


def iso(ts: float) -> str:
    """A timestamp as ISO 8601 UTC with milliseconds ("2024-05-17T09:00:00.123Z")."""
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Transaction(abc.ABC):
    """The reads and writes of one transaction. Returned records are
    snapshots; `update_*` take the fields to change as keyword arguments."""

    # requests
    @abc.abstractmethod
    def insert_request(self, **fields: Any) -> Request: ...

    @abc.abstractmethod
    def request(self, request_id: int) -> Optional[Request]: ...

    @abc.abstractmethod
    def requests(
        self, states: Optional[Iterable[RequestState]] = None, component: Optional[str] = None,
        kind: str = KIND_REQUEST,
    ) -> list[Request]:
        """Requests (in these states, bumping this component: the primary
        bump's or another of a group's), oldest first. Only the merge
        queue's, unless `kind` is KIND_TRY: then only tries (`request(id)`
        returns either kind)."""

    @abc.abstractmethod
    def update_request(self, request_id: int, **fields: Any) -> Request: ...

    @abc.abstractmethod
    def add_request_time(self, request_id: int, total: float, bazel: float, git: float) -> None: ...

    # builds, stages, tasks
    @abc.abstractmethod
    def insert_build(self, request_id: int, base_commit: str, candidate_commit: str) -> Build: ...

    @abc.abstractmethod
    def build(self, build_id: int) -> Optional[Build]: ...

    @abc.abstractmethod
    def builds(self, request_id: int) -> list[Build]: ...

    @abc.abstractmethod
    def builds_of_commit(self, candidate_commit: str) -> list[Build]: ...

    @abc.abstractmethod
    def update_build(self, build_id: int, **fields: Any) -> Build: ...

    @abc.abstractmethod
    def insert_stage(self, build_id: int, position: int, name: str, command: str) -> Stage: ...

    @abc.abstractmethod
    def stages(self, build_id: int) -> list[Stage]: ...

    @abc.abstractmethod
    def update_stage(self, stage_id: int, **fields: Any) -> Stage: ...

    @abc.abstractmethod
    def insert_task(self, stage_id: int, build_id: int, configuration: str) -> Task: ...

    @abc.abstractmethod
    def task(self, task_id: int) -> Optional[Task]: ...

    @abc.abstractmethod
    def tasks(self, *, build_id: Optional[int] = None, stage_id: Optional[int] = None,
              states: Optional[Iterable[TaskState]] = None) -> list[Task]: ...

    @abc.abstractmethod
    def update_task(self, task_id: int, **fields: Any) -> Task: ...

    # events and plugin cursors
    @abc.abstractmethod
    def add_event(
        self, type: str, *, request_id: Optional[int] = None, build_id: Optional[int] = None,
        stage_id: Optional[int] = None, task_id: Optional[int] = None, data: Optional[Mapping[str, Any]] = None,
    ) -> Event: ...

    @abc.abstractmethod
    def events(self, *, after: int = 0, request_id: Optional[int] = None, limit: Optional[int] = None) -> list[Event]: ...

    @abc.abstractmethod
    def last_event_id(self) -> int: ...

    @abc.abstractmethod
    def cursor(self, plugin: str) -> Optional[int]: ...

    @abc.abstractmethod
    def set_cursor(self, plugin: str, event_id: int) -> None: ...

    # releases
    @abc.abstractmethod
    def insert_release(self, *, request_id: Optional[int], build_id: Optional[int], tag: str, commit: str,
                       notes: str) -> Release: ...

    @abc.abstractmethod
    def releases(self, *, request_id: Optional[int] = None) -> list[Release]: ...

    # leases: who processes the queue (one holder per name until it expires)
    @abc.abstractmethod
    def acquire_lease(self, name: str, owner: str, ttl: float) -> Optional[str]:
        """Takes or renews the lease; returns None, or the other live holder."""

    @abc.abstractmethod
    def release_lease(self, name: str, owner: str) -> None: ...

    @abc.abstractmethod
    def leases(self) -> list[LeaseRow]:
        """Every lease row, expired ones too, by name (`convoy workers`)."""

    # meta: small named values (the schema version; the queue's window chain under 'queue.chain')
    @abc.abstractmethod
    def meta(self, key: str) -> Optional[str]:
        """The value stored under `key`, or None."""

    @abc.abstractmethod
    def set_meta(self, key: str, value: str) -> None:
        """Stores `value` under `key` (replacing what was there)."""

    # open groups: bumps held until `convoy submit --group NAME --close`
    @abc.abstractmethod
    def open_group(self, name: str) -> Optional[OpenGroup]: ...

    @abc.abstractmethod
    def open_groups(self) -> list[OpenGroup]:
        """Every open group, by name."""

    @abc.abstractmethod
    def put_open_group(self, name: str, bumps: Iterable[RequestBump], requested_by: Optional[str]) -> OpenGroup:
        """Creates the group, or replaces its bumps (its requested_by and
        created_at are kept)."""

    @abc.abstractmethod
    def delete_open_group(self, name: str) -> None: ...

    # forge deliveries: a webhook delivery acted on once (convoy serve)
    @abc.abstractmethod
    def delivery(self, forge: str, delivery: str) -> Optional[Delivery]: ...

    @abc.abstractmethod
    def record_delivery(self, forge: str, delivery: str, *, request_id: Optional[int], outcome: str) -> Delivery:
        """Records what the delivery did (a delivery already recorded keeps its first record)."""

    # the tests' results (schema 5): one row per test target per task
    @abc.abstractmethod
    def add_test_results(self, rows: Iterable[dict]) -> None:
        """Records test results: dicts with target, configuration, stage, status, and optionally
        attempts, rigs, detail, request_id, build_id, task_id."""

    @abc.abstractmethod
    def test_results(self, *, target: Optional[str] = None, configuration: Optional[str] = None,
                     task_id: Optional[int] = None, limit: Optional[int] = None) -> list[TestResult]:
        """The results that match, newest first."""

    @abc.abstractmethod
    def passed_on_main(self, target: str, configuration: str) -> bool:
        """Whether the target's latest result in a succeeded build of a merged request passed."""

    # what is recent (convoy serve's status and page): the cost of each is that of what it returns,
    # whatever the history the store keeps
    @abc.abstractmethod
    def latest_requests(self, states: Iterable[RequestState], limit: int) -> list[Request]:
        """The newest `limit` of the merge queue's requests in these states, newest first."""

    @abc.abstractmethod
    def merged_stages(self, limit: int) -> list[Stage]:
        """The stages that succeeded, in the builds that succeeded, of the newest `limit` merged
        requests (the history of the status's estimates): oldest request first, each build's in order."""

    @abc.abstractmethod
    def latest_releases(self, limit: int) -> list[Release]:
        """The newest `limit` releases, newest first."""


class Store(abc.ABC):
    """Where the driver's state lives."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[Transaction]:
        """A write transaction: committed when the block ends, rolled back if it raises."""

    @abc.abstractmethod
    def read(self) -> contextlib.AbstractContextManager[Transaction]:
        """A read-only snapshot."""

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Calls `listener()` after every committed transaction that added events."""
        self._listeners = [*getattr(self, "_listeners", []), listener]

    def _committed(self) -> None:
        for listener in getattr(self, "_listeners", []):
            try:
                listener()
            except Exception:  # a listener (progress lines, plugin wake-up) never undoes a commit's caller
                logging.getLogger("convoy.store").exception("a commit listener failed")

    def close(self) -> None:
        pass

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def state_dir(checkout: Path, *, create: bool = True) -> Path:
    """The checkout's `.convoy` directory, made if missing and `create`
    (mode 0700: the queue, logs and events are this user's alone).
    ConvoyError if it is not a directory, or cannot be made."""
    path = checkout / STATE_DIR
    if path.is_dir():
        return path
    if path.exists() or path.is_symlink():
        raise ConvoyError(
            f"{printable(path)} is not a directory (convoy keeps its state there); move it aside "
            f"(mv {printable(path)} {printable(path)}.old) and run the command again"
        )
    if create:
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another convoy
            return state_dir(checkout, create=False)
        except OSError as e:
            raise ConvoyError(
                f"cannot create {printable(path)} ({e.strerror}); make {printable(checkout)} writable for this "
                "user, or run convoy as the checkout's owner"
            ) from None
    return path


def has_state(checkout: Path) -> bool:
    """Whether the checkout has a state database (something was submitted)."""
    return (state_dir(checkout, create=False) / DB_NAME).exists()
