"""`convoy demo`: a day of the sample distributed monolith, end to end.

    convoy demo                      # in <convoy checkout>/demo-work, made anew
    convoy demo --workdir=/tmp/day
    convoy demo --mode=speculative   # or batch: the same day, with a window of candidates in flight

Makes the sample's components (examples/components) into real git
repositories with history and tags, and an integration repository (a bare
"origin" and a checkout) whose manifest pins them by git. Then it submits a
day's integration requests and runs the queue with `convoy process`, exactly
as CI jobs would:

  morning    messages v1.5.0    good                              -> merged, tagged
             controller v1.3.0  too big for the drone board       -> rejected (hardware, drone)
             planner v2.2.0     good, but v2.3.0 comes right after -> superseded
             planner v2.3.0     good; the planner is rover-only    -> merged, tagged
  afternoon  messages v1.6.0    changes speed units               -> rejected (integration, rover)

Its releases carry the sample's distribution per configuration, notes with
each component's commits, a CHANGELOG.md and SSH-signed provenance (a key
made in the workdir). It prints the status table, the tags, `convoy release
show` and `convoy verify` of the newest release, checks that every request ended as above (exit 1 if not), and says
where to look next.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import convoy
from convoy import gitutil, modes, sample
from convoy.commands import common
from convoy.config import default_config_text
from convoy.errors import ConvoyError


def add_flags(parser: common.Parser) -> None:
    parser.string("workdir", None, "demo: where to make the sample's repositories (default: demo-work in "
                  "convoy's checkout; made anew on every run).")
    parser.enum("mode", modes.DEFAULT, list(modes.names()),
                "demo: the queue mode of the day (speculative and batch show their window in flight).")


@dataclass(frozen=True)
class Step:
    """One integration request of the day and how it must end."""

    component: str
    version: str
    expected: str  # the request's final state
    why: str


MORNING = (
    Step("messages", "v1.5.0", "merged", "adds an optional battery field; compatible"),
    Step("controller", "v1.3.0", "rejected", "its firmware blob outgrows the drone board's flash"),
    Step("planner", "v2.2.0", "superseded", "good, but the planner team ships v2.3.0 right after"),
    Step("planner", "v2.3.0", "merged", "good; only the rover has a planner"),
)
AFTERNOON = (
    Step("messages", "v1.6.0", "rejected", "sends speeds in cm/s; the controller expects m/s"),
)

# The component repositories are told of rejections and releases: here, by a
# command plugin that appends each such event to notifications/<component>.log.
_NOTIFY = r"""
import json, os, sys
event = json.load(sys.stdin)
data = event.get("data") or {}
component = data.get("component") or "integration"
os.makedirs(sys.argv[1], exist_ok=True)
with open(os.path.join(sys.argv[1], component + ".log"), "a") as out:
    out.write(json.dumps(event, sort_keys=True) + "\n")
"""


def _release_section(workdir: Path) -> str:
    """The demo's releases: the sample's distribution per configuration, a
    CHANGELOG.md, and an SSH key (made here) signing tags and provenance."""
    keys = workdir / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    key = keys / "release"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "convoy demo release key", "-f",
                        str(key)], check=True, stdin=subprocess.DEVNULL)
    public = (keys / "release.pub").read_text(encoding="utf-8").split()
    (keys / "allowed_signers").write_text(f"release@demo {public[0]} {public[1]}\n", encoding="utf-8")
    return (
        "\n# The demo's releases: a distribution per configuration, notes, a changelog, signed provenance.\n"
        "release:\n"
        "  artifacts: [//product:distribution]\n"
        "  changelog: CHANGELOG.md\n"
        "  signing:\n"
        f"    key: {json.dumps(str(key))}\n"
        f"    allowed_signers: {json.dumps(str(keys / 'allowed_signers'))}\n"
        "    principal: release@demo\n"
    )


def _demo_config(workdir: Path, mode: str = modes.DEFAULT) -> str:
    notify = [sys.executable, "-c", _NOTIFY, str(workdir / "notifications")]
    plugin = (
        "\n  # The demo tells the component repositories what happened to their requests.\n"
        "  - name: notify-components\n"
        "    type: command\n"
        "    events: [REQUEST_REJECTED, RELEASE_TAGGED]\n"
        f"    command: {_flow_list(notify)}\n"
        "    timeout: 10\n"
    )
    text = default_config_text()
    if mode != modes.DEFAULT:
        line = f"  mode: {modes.DEFAULT} "
        if text.count(line) != 1:
            raise ConvoyError(f"convoy.config.default_config_text() has no 'mode: {modes.DEFAULT}' line; the demo "
                              f"cannot set mode {mode}")
        text = text.replace(line, f"  mode: {mode} ", 1)
    if "\nplugins:\n" not in text:
        raise ConvoyError("convoy.config.default_config_text() has no plugins: list; the demo cannot add its plugin")
    return text.rstrip("\n") + "\n" + plugin + _release_section(workdir)


def _flow_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def _source_root() -> Path:
    root = convoy.source_checkout()
    if root is None or not (root / "examples" / "components").is_dir():
        raise ConvoyError(f"{root or convoy.__file__} has no examples/components; run convoy demo from a checkout "
                          "of convoy")
    return root


def _say(line: str = "") -> None:
    print(line, flush=True)


def _convoy(repo: Path, *args: str) -> int:
    """Runs `convoy <args> --repo=<repo>` in-process, echoing the command."""
    from convoy.main import main

    _say(f"$ convoy {' '.join(args)}")
    return main(["convoy", *args, f"--repo={repo}"])


def _stop_bazel_servers(workdir: Path) -> None:
    """Shuts down the Bazel servers of a previous demo before its files go."""
    for output_base in sorted(workdir.glob("integration/checkout/.convoy/bazel/*")):
        if (output_base / "server").exists():
            subprocess.run(["bazel", f"--output_base={output_base}", "shutdown"], cwd=workdir,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False)


def _fresh(workdir: Path) -> None:
    if workdir.exists():
        if not (workdir / ".convoy-demo").is_file():
            raise ConvoyError(f"{workdir} exists and was not made by convoy demo; pass another --workdir")
        _stop_bazel_servers(workdir)
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / ".convoy-demo").write_text("made by convoy demo; removed by the next run\n")


def _submit(repo: Path, steps: Sequence[Step]) -> None:
    for step in steps:
        code = _convoy(repo, "submit", f"--component={step.component}", f"--version={step.version}",
                       f"--requested_by=ci@{step.component}")
        if code != 0:
            raise ConvoyError(f"convoy submit of {step.component} {step.version} failed (exit {code})")


def _process(repo: Path) -> None:
    code = _convoy(repo, "process", "--all")
    if code != 0:
        raise ConvoyError(f"convoy process failed (exit {code}); see the lines above")


def _outcomes(repo: Path, steps: Sequence[Step]) -> list[str]:
    """Lines about requests that did not end as the story says."""
    from convoy.commands import common

    with common.store(repo) as store, store.read() as tx:
        requests = sorted(tx.requests(), key=lambda r: r.id)
    wrong = []
    if len(requests) != len(steps):
        wrong.append(f"{len(requests)} requests in the queue, expected {len(steps)}")
    for step, request in zip(steps, requests):
        got = request.state.value
        if (request.component, request.version, got) != (step.component, step.version, step.expected):
            wrong.append(f"request {request.id} ({request.component} {request.version}) ended {got}; "
                         f"expected {step.component} {step.version} {step.expected} ({step.why})")
    return wrong


def _tags(bare: Path) -> list[tuple[str, str]]:
    out = gitutil.run(["tag", "-l", "--sort=creatordate", "--format=%(refname:short)\t%(contents:subject)"],
                      cwd=bare).stdout
    return [tuple(line.split("\t", 1)) for line in out.splitlines() if line.strip()]


def run(opts: argparse.Namespace, args: list[str]) -> int:
    workdir, mode = opts.workdir, opts.mode
    if args:
        raise ConvoyError(f"convoy demo takes no arguments, got: {' '.join(args)}; run: convoy help")
    return demo(Path(workdir) if workdir else None, mode=mode)


def demo(workdir: Optional[Path] = None, *, mode: str = modes.DEFAULT) -> int:
    """The day of the sample in `workdir` (made anew; default: demo-work in
    convoy's checkout), printing as it goes; 0 if every request ended as
    the story says, else 1."""
    started = time.monotonic()
    source = _source_root()
    workdir = workdir.absolute() if workdir else source / "demo-work"

    _say(f"== making the sample distributed monolith in {workdir}")
    _fresh(workdir)
    remotes = {name: path.as_uri() for name, path in
               sample.make_component_repos(source / "examples", workdir / "components").items()}
    integration = sample.make_integration_repo(source, workdir / "integration", remotes,
                                               config_text=_demo_config(workdir, mode))
    repo = integration.checkout
    _say(f"   components: {', '.join(sorted(remotes))} (git repositories with a tag per release)")
    _say(f"   integration repository: {integration.bare} (origin), checkout {repo}")
    _say(f"   queue mode: {mode}")

    try:
        _say("\n== morning: four component teams merge and ask for integration")
        _submit(repo, MORNING)
        _process(repo)
        _say("\n== afternoon: one more")
        _submit(repo, AFTERNOON)
        _process(repo)
    finally:
        _stop_bazel_servers(workdir)

    _say("\n== the queue")
    _convoy(repo, "status")
    _say("\n== releases (tags on origin)")
    tags = _tags(integration.bare)
    for tag, subject in tags:
        _say(f"   {tag}  {subject}")
    verified = 0
    if tags:
        newest = tags[-1][0]
        _say(f"\n== the newest release: convoy release show {newest}")
        _convoy(repo, "release", "show", newest)
        _say(f"\n== convoy verify {newest}")
        verified = _convoy(repo, "verify", newest)

    wrong = _outcomes(repo, MORNING + AFTERNOON)
    if verified:
        wrong.append(f"convoy verify failed on the newest release (exit {verified})")
    elapsed = time.monotonic() - started
    _say("\n== where to look next")
    _say(f"   .venv/bin/convoy show <id> --repo={repo}      # stages, tasks, failing targets, logs")
    _say(f"   .venv/bin/convoy events --repo={repo}         # every event, in order")
    _say(f"   .venv/bin/convoy release list --repo={repo}   # every release; show and verify any of them")
    _say(f"   {repo / '.convoy' / 'releases'}/        # artifacts, SHA256SUMS, NOTES.md, provenance")
    _say(f"   {workdir / 'notifications'}/                  # what each component repository was told")
    _say(f"   {repo / '.convoy' / 'logs'}/                  # Bazel logs of every task")
    if wrong:
        for line in wrong:
            print(f"demo: {line}", file=sys.stderr)
        return 1
    _say(f"\ndemo: every request ended as expected ({len(tags)} releases) in {elapsed:.0f} s")
    return 0
