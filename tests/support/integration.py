"""Integration repositories for the driver's end-to-end tests, and ways to drive convoy in them.

- `config_text(...)`: a convoy.yaml for tests: the session's shared Bazel
  output user root, short timeouts, a short poll interval, one
  infrastructure retry;
- `Integration`: an integration repository (bare origin + checkout,
  sample.make_integration_repo) made by the `make_integration` fixture of
  tests/conftest.py: convoy in this process or as a real one, its state,
  its git;
- `write_script`: a Python script for a command plugin.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from convoy import sample
from convoy.actions import checkout as checkout_actions
from convoy.main import main as convoy_main
from convoy.manifest import load_manifest
from convoy.models import Event, Request

from tests.support.bazel import OUTPUT_USER_ROOT  # the Bazel output user root every e2e test shares

CONVOY = Path(sys.executable).parent / "convoy"

STAGES = """\
stages:
  - {name: build, command: build, timeout: 300}
  - {name: integration, command: test, tag_filter: convoy-integration, timeout: 300}
  - {name: configuration, command: test, tag_filter: convoy-configuration, timeout: 300}
  - {name: hardware, command: test, tag_filter: convoy-hardware, timeout: 300}
"""


def config_text(*, plugins: str = "", bazel_flags: tuple[str, ...] = (), retries: int = 1,
                stages: str = STAGES) -> str:
    """convoy.yaml for tests; `plugins` is YAML list items (indented 2)."""
    startup = [f"--output_user_root={OUTPUT_USER_ROOT}", "--max_idle_secs=180"]
    return (
        "queue: {mode: serial, poll_interval: 0.1}\n"
        "parallelism: 2\n"
        f"retries: {{infrastructure: {retries}}}\n"
        "bazel:\n"
        f"  startup_flags: {json.dumps(startup)}\n"
        f"  flags: {json.dumps(list(bazel_flags))}\n"
        + stages
        + "plugins:\n  - {name: event-log, type: log, path: .convoy/events.jsonl, replay: true}\n"
        + plugins
    )


@dataclass
class Run:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out[-8000:]}\n--- stderr\n{self.err[-8000:]}"


class Integration:
    """An integration repository made for one test module, and ways to drive convoy in it."""

    def __init__(self, repo: sample.IntegrationRepo, remotes: dict[str, str]) -> None:
        self.checkout = repo.checkout
        self.bare = repo.bare
        self.remotes = remotes

    # convoy in this process (the command functions) or as a real process
    def convoy(self, *args: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = convoy_main(["convoy", args[0], f"--repo={self.checkout}", *args[1:]])
        return Run(code, out.getvalue(), err.getvalue())

    def process(self, *args: str, failpoint: Optional[str] = None, timeout: float = 600) -> Run:
        env = dict(os.environ)
        env.pop("CONVOY_FAILPOINT", None)
        if failpoint:
            env["CONVOY_FAILPOINT"] = failpoint
        proc = subprocess.run([str(CONVOY), "process", *args], cwd=self.checkout, env=env, capture_output=True,
                              text=True, timeout=timeout)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def submit(self, *args: str) -> int:
        run = self.convoy("submit", "--json", *args)
        assert run.code == 0, run
        return json.loads(run.out)["id"]

    # state
    def request(self, request_id: int) -> Request:
        with checkout_actions.store(self.checkout, create=True) as store, store.read() as tx:  # CONVOY_STORE_URL, if set
            return tx.request(request_id)

    def events(self, request_id: Optional[int] = None) -> list[Event]:
        with checkout_actions.store(self.checkout, create=True) as store, store.read() as tx:
            return tx.events(request_id=request_id)

    def show(self, request_id: int) -> dict:
        run = self.convoy("show", str(request_id), "--json")
        assert run.code == 0, run
        return json.loads(run.out)

    # git
    def git(self, *args: str, cwd: Optional[Path] = None) -> str:
        proc = subprocess.run(["git", *args], cwd=cwd or self.checkout, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
        return proc.stdout.strip()

    def origin(self, *args: str) -> str:
        return self.git(*args, cwd=self.bare)

    def origin_tags(self) -> dict[str, str]:
        """Tag -> commit on origin."""
        out = self.origin("for-each-ref", "--format=%(refname:short) %(objectname) %(*objectname)", "refs/tags")
        tags = {}
        for line in out.splitlines():
            name, obj, peeled = (line.split() + [""])[:3]
            tags[name] = peeled or obj
        return tags

    def origin_file(self, path: str, ref: str = "main") -> str:
        return self.origin("show", f"{ref}:{path}")

    def origin_pin(self, configuration: str, component: str) -> str:
        """The version `component` has in `configuration` on origin's main."""
        scratch = self.checkout.parent / "scratch-manifest"
        scratch.mkdir(exist_ok=True)
        (scratch / "manifest.yaml").write_text(self.origin_file("manifests/manifest.yaml"))
        return load_manifest(scratch / "manifest.yaml").resolved(configuration)[component].version

    def tag_commit(self, component: str, version: str) -> str:
        return self.git("rev-parse", f"{version}^{{commit}}", cwd=Path(self.remotes[component].removeprefix("file://")))

    def shutdown_bazel(self) -> None:
        slots = self.checkout / ".convoy" / "bazel"
        for slot in sorted(slots.glob("slot-*")) + sorted(slots.glob("lane-*/slot-*")):
            subprocess.run(["bazel", f"--output_user_root={OUTPUT_USER_ROOT}", f"--output_base={slot}", "shutdown"],
                           cwd=self.checkout, capture_output=True, timeout=120)


def write_script(path: Path, body: str) -> Path:
    """A Python script for a command plugin (run with this interpreter)."""
    path.write_text(textwrap.dedent(body))
    return path
