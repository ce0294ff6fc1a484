"""The `log` plugin kind: each event appended as one JSON line to a private file.

    plugins:
      - {name: event-log, type: log, events: ["*"], path: .convoy/events.jsonl}

`path` is relative to the integration repository's root (or absolute).
The file is one only the driver's user can read (0600; a directory it
makes, 0700); keys are sorted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from convoy import fsutil
from convoy.plugins.base import Plugin, PluginError
from convoy.plugins.registry import REPLAY, TIMEOUT, Key, PluginContext, PluginKind, PluginSpec


@dataclass(frozen=True)
class LogSpec(PluginSpec):
    """A checked `log` entry: the file's `path` as written."""

    kind: ClassVar[str] = "log"

    path: str = ""


class LogPlugin(Plugin):
    """Appends one JSON line per event to `path` (its directory is created).

    Each line is written with one write() on a file opened for appending, so
    that lines from several processes do not interleave.
    """

    def __init__(self, name: str, events: Sequence[str], path: Path, *, replay: bool = False) -> None:
        super().__init__(name, events, replay=replay)
        self.path = Path(path)

    def deliver(self, event: Mapping[str, Any]) -> None:
        line = (json.dumps(event, sort_keys=True, default=str) + "\n").encode("utf-8")
        try:
            if not self.path.parent.is_dir():
                fsutil.private_dir(self.path.parent)
            fd = fsutil.open_private(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as e:
            raise PluginError(f"cannot write {self.path}: {e.strerror or e}") from None


def _build(spec: LogSpec, context: PluginContext) -> LogPlugin:
    path = Path(spec.path)
    return LogPlugin(spec.name, spec.events, path if path.is_absolute() else context.root / path, replay=spec.replay)


KIND = PluginKind(
    name="log", keys=(Key("path", "string", required=True, example=".convoy/events.jsonl"), TIMEOUT, REPLAY),
    spec=LogSpec, factory=_build, position=10,
)
