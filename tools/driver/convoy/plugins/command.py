"""The `command` plugin kind: a program run with each event as JSON on stdin.

    plugins:
      - {name: notify, type: command, events: [BUILD_FAIL], command: [scripts/notify, --to, ci], timeout: 10}

The argument list runs without a shell in the repository root, with
CONVOY_EVENT=<type> in its environment, less every plugin's secrets; a
non-zero exit or a timeout is a PluginError (with the first line of its
stderr).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional, Sequence

from convoy.plugins.base import Plugin, PluginError
from convoy.plugins.registry import REPLAY, TIMEOUT, Key, PluginContext, PluginKind, PluginSpec

_STDERR_LIMIT = 200


@dataclass(frozen=True)
class CommandSpec(PluginSpec):
    """A checked `command` entry: the argument list."""

    kind: ClassVar[str] = "command"

    command: tuple[str, ...] = ()


class CommandPlugin(Plugin):
    """Runs `argv` in `cwd` with the event JSON on stdin; see the module docstring.

    The command runs in a session of its own, so that a timeout kills it and
    whatever it started. It gets the driver's environment without the
    variables in `withheld_env` (the other plugins' secrets).
    """

    def __init__(self, name: str, events: Sequence[str], argv: Sequence[str], *, timeout: float = 10.0,
                 cwd: Optional[Path] = None, withheld_env: Sequence[str] = (), replay: bool = False) -> None:
        super().__init__(name, events, replay=replay)
        if not argv:
            raise ValueError("a command plugin needs a command")
        self.argv = tuple(argv)
        self.timeout = timeout
        self.cwd = cwd
        self.withheld_env = frozenset(withheld_env)

    def deliver(self, event: Mapping[str, Any]) -> None:
        body = json.dumps(event, sort_keys=True, default=str).encode("utf-8")
        env = {k: v for k, v in os.environ.items() if k not in self.withheld_env}
        env["CONVOY_EVENT"] = str(event.get("type", ""))
        try:
            proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, start_new_session=True,
            )
        except OSError as e:
            raise PluginError(f"cannot run {self.argv[0]}: {e.strerror or e}") from None
        try:
            _, stderr = proc.communicate(body, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise PluginError(f"timed out after {self.timeout:g} s") from None
        if proc.returncode < 0:
            raise PluginError(f"killed by signal {-proc.returncode}{_first_line(stderr, ': ')}")
        if proc.returncode != 0:
            raise PluginError(f"exit {proc.returncode}{_first_line(stderr, ': ')}")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # something outside the group holds the pipes
        pass


def _first_line(stderr: Optional[bytes], prefix: str) -> str:
    text = (stderr or b"").decode("utf-8", "replace")
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(line) > _STDERR_LIMIT:
        line = line[: _STDERR_LIMIT - 3] + "..."
    return prefix + line if line else ""


def _build(spec: CommandSpec, context: PluginContext) -> CommandPlugin:
    return CommandPlugin(spec.name, spec.events, spec.command, timeout=spec.timeout, cwd=context.root,
                         withheld_env=context.secrets, replay=spec.replay)


KIND = PluginKind(
    name="command",
    keys=(Key("command", "strings", required=True, example="[scripts/notify, --channel, ci]",
              options=(("allow_empty", False),)), TIMEOUT, REPLAY),
    spec=CommandSpec, factory=_build, position=20,
)
