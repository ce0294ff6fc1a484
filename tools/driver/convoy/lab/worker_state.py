"""What a lab worker serves, and the files it keeps in the lab's state directory.

    config = Config(server="127.0.0.1:50051", instance="convoy", pool="rover-rigs", name="rover-rigs-1",
                    rig="127.0.0.1:40123", state_dir=Path(".convoy/lab"))
    append_record(config.records, action_record(config, "start", lease=..., action=..., target=..., time=now()))
    write_status(config, pgid=None, healthy=True, health="rover board at ...", ...)

The files, under <state_dir> (the lab's directory):

    records.jsonl          every action a worker ran: a `start` and an `end`
                           line (worker, pool, rig, lease, action digest,
                           target, start/end times, exit code, status, and
                           the seconds spent fetching, running, uploading)
    workers/<name>.json    the worker's current state (health, session, what
                           it runs and the process group of its command),
                           read by `convoy lab status` and `convoy lab down`
    work/<name>/           the input roots of its actions
    cache/<name>/          its CAS file cache

A record is one O_APPEND write, so the lines of workers running side by side
never interleave; the state file is replaced atomically. Standard library
only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Optional


@dataclasses.dataclass(frozen=True)
class Config:
    """What one worker serves and where it keeps its state."""

    server: str
    instance: str
    pool: str
    name: str
    rig: Optional[str]
    state_dir: Path
    general_pool: str = "default"

    @property
    def bot_id(self) -> str:
        # The pool is part of the id, so that the service's worker list
        # (Introspection.ListWorkers) tells which pool each bot serves.
        return f"{self.pool}/{self.name}"

    @property
    def records(self) -> Path:
        return self.state_dir / "records.jsonl"

    @property
    def status_file(self) -> Path:
        return self.state_dir / "workers" / f"{self.name}.json"

    @property
    def work_dir(self) -> Path:
        return self.state_dir / "work" / self.name

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache" / self.name


def now() -> float:
    """The time as records and the state file show it (seconds, to the millisecond)."""
    return round(time.time(), 3)


def action_record(config: Config, event: str, *, lease: str, action: str, target: str, **extra: Any) -> Dict[str, Any]:
    """One line of records.jsonl: `event` (start, end) of the action of `lease` on this worker."""
    return {
        "event": event,
        "worker": config.name,
        "pool": config.pool,
        "rig": config.rig or "",
        "lease": lease,
        "action": action,
        "target": target,
        **extra,
    }


def append_record(path: Path, record: Dict[str, Any]) -> None:
    """Appends `record` to `path` as one JSON line, in one write."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def write_status(
    config: Config,
    *,
    pgid: Optional[int],
    healthy: bool,
    health: str,
    connected: bool,
    error: str,
    session: str,
    running: Optional[Dict[str, Any]],
) -> None:
    """Replaces workers/<name>.json with the worker's current state."""
    _write_json(
        config.status_file,
        {
            "name": config.name,
            "pool": config.pool,
            "rig": config.rig or "",
            "pid": os.getpid(),
            "pgid": pgid,
            "healthy": healthy,
            "health": health,
            "connected": connected,
            "error": error,
            "session": session,
            "running": running,
            "updated": now(),
        },
    )


def _write_json(path: Path, data: Dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, sort_keys=True, indent=1), encoding="utf-8")
    os.replace(tmp, path)
