"""`convoy show N`: one request: its builds, stages, tasks, failing targets, tag and timings.

A test that convoy ran again (convoy.retries) says how many runs it took,
which rigs a hardware test ran on, in order, and why it ran again (another
rig after a rig-side failure; a failure of a test that passed on main) or
does not count (quarantined).

    convoy show 4
    convoy show 4 --json      # the same, for scripts (timings: total, bazel, git and driver seconds)

A group request (several bumps tested, merged and tagged as one) lists
every bump. In the JSON, as in convoy.models.Request, request.bumps holds a
group's bumps beyond its primary one (component, version, ...; empty for a
single bump) and request.all_bumps every bump, the primary one first.
A try's id (`convoy try`) shows the try the same way, request.kind "try"
(a request's is "request").

A task's log is in the clone that ran it: where that file is not on this
machine, `convoy show` names the copy in convoy.yaml's `logs_url` (if
there is one) and prints a failed task's last 20 lines from the store; the
JSON has each task's `log_readable`, `shared_log` and `log_tail`.
"""

from __future__ import annotations

import argparse
import datetime
import json
from typing import Any

from convoy.actions.show import describe, show, timings  # noqa: F401 (the plain functions it calls)
from convoy.commands import common
from convoy.models import UNCHANGED, UNCHANGED_DETAIL, TargetOutcome
from convoy.untrusted import printable as p

TAIL_LINES = 20  # of a failed task's log, when the file is not on this machine


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_json(parser)


def run(opts: argparse.Namespace, args: list[str]) -> int:
    as_json, repo = opts.json, opts.repo
    request_id = common.request_id("show", args)
    data = show(common.checkout(repo), request_id)
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print_text(data)
    return 0


def target_line(target: dict[str, Any]) -> str:
    """One test target of a task: its status, and whether it ran or came from a cache."""
    if target["cached"]:
        how = "cached"
    elif target["duration_ms"] is not None:
        how = f"ran {target['duration_ms'] / 1000:.1f} s"
    else:
        how = "ran"
    return f"{p(target['label'])} {p(target['status'].upper())} ({how}){_retried(target)}"


def _retried(target: dict[str, Any]) -> str:
    """Where a test ran and why it ran again or does not count (convoy.retries): '' for one plain run."""
    parts = []
    if target.get("rigs"):
        parts.append("on " + " then ".join(p(rig) for rig in target["rigs"]))
    if target.get("attempts", 1) > 1:
        parts.append(f"{target['attempts']} runs")
    parts += [p(note) for note in target.get("notes", ())]
    return ("; " + "; ".join(parts)) if parts else ""


def _bump(b: dict[str, Any]) -> str:
    """"messages v1.5.0 in rover @ <commit>" (and its archive)."""
    scope = f" in {p(b['configuration'])}" if b["configuration"] else ""
    return (f"{p(b['component'])} {p(b['version'])}{scope}" + (f" @ {p(b['commit'])}" if b["commit"] else "")
            + (f" from {p(b['archive_url'])}" if b["archive_url"] else ""))


def _when(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _secs(value) -> str:
    return f"{value:.1f} s" if value is not None else "-"


def _log_lines(task: dict[str, Any]) -> None:
    """A task's log: a failed task's path; where its log is not readable here, the shared copy
    (logs_url) if there is one, and a failed task's tail from the store (its last TAIL_LINES lines)."""
    readable = task.get("log_readable", True)
    shared = None if readable else task.get("shared_log")
    if shared:
        print(f"        Bazel log: {p(shared)} (the shared copy; {p(task['log_path'])} is in the clone that ran it)")
    elif task["state"] == "failed" and task["log_path"]:
        print(f"        Bazel log: {p(task['log_path'])}" + ("" if readable else " (not on this machine)"))
    tail = task.get("log_tail")
    if task["state"] == "failed" and not readable and tail:
        lines = tail.removesuffix("\n").split("\n")[-TAIL_LINES:]
        print(f"        the log's last {len(lines)} lines:")
        for line in lines:
            print(f"          {p(line)}")


def print_text(data: dict[str, Any]) -> None:
    """Every value from the state goes through untrusted.printable (`p`): a
    newline or a terminal escape stored in a request cannot forge a line."""
    r = data["request"]
    bumps = r.get("all_bumps") or [r]
    if r.get("kind") == "try":
        print(f"try #{r['id']}: {_bump(r)} (a try: nothing is merged or tagged)")
    elif len(bumps) == 1:
        print(f"request #{r['id']}: {_bump(r)}")
    else:
        print(f"request #{r['id']}: a group of {len(bumps)} bumps, tested, merged and tagged as one:")
        for bump in bumps:
            print(f"  bump {_bump(bump)}")
    print(f"  requested by {p(r['requested_by'])} at {_when(r['created_at'])}")
    state = r["state"] + (f" ({r['phase']})" if r["phase"] and r["state"] == "testing" else "")
    print(f"  state: {p(state)}; attempts: {r['attempts']}")
    if r["detail"]:
        print(f"  {p(r['detail'])}")
    if r["tag"]:
        print(f"  tag: {p(r['tag'])} on {p(r['candidate_commit'])}")
    t = data["timings"]
    print(f"  time: {t['total_seconds']:.1f} s total = {t['bazel_seconds']:.1f} s Bazel + {t['git_seconds']:.1f} s "
          f"git + {t['driver_seconds']:.1f} s convoy")
    for build in data["builds"]:
        print(f"  build {build['number']}: {p(build['state'])} in {_secs(build['duration'])}; candidate "
              f"{p(build['candidate_commit'][:12])} on {p(build['base_commit'][:12])}")
        if build["detail"]:
            print(f"    {p(build['detail'])}")
        for stage in build["stages"]:
            print(f"    stage {p(stage['name'])} ({p(stage['command'])}): {p(stage['state'])} "
                  f"{_secs(stage['duration'])}")
            for task in stage["tasks"]:
                if task["outcome"] == UNCHANGED:
                    print(f"      {p(task['configuration'])}: {p(task['detail'] or UNCHANGED_DETAIL)}")
                    continue
                runs = f", run {task['runs']} times" if task["runs"] > 1 else ""
                tests = task["tests"]
                counts = f"; tests: {tests['ran']} ran, {tests['cached']} cached" if sum(tests.values()) else ""
                print(f"      {p(task['configuration'])}: {p(task['state'])}"
                      + (f" {p(task['outcome'])}" if task["outcome"] else "")
                      + f" {_secs(task['duration'])}" + (f" slot {task['slot']}" if task["slot"] is not None else "")
                      + runs + counts + (f": {p(task['detail'])}" if task["detail"] else ""))
                failing = {t["label"] for t in task["failing_targets"]}
                for target in task["targets"]:
                    if target["label"] not in failing and TargetOutcome.from_dict(target).is_test:
                        print(f"        {target_line(target)}")
                for target in task["failing_targets"]:
                    logs = ", ".join(p(log) for log in target["log_paths"]) or "no test log"
                    print(f"        {p(target['label'])} {p(target['status'].upper())}{_retried(target)}: {logs}")
                _log_lines(task)
    for release in data["releases"]:
        print(f"  release {p(release['tag'])}:")
        for line in release["notes"].removesuffix("\n").split("\n"):  # its lines, indented; a \r escaped
            print(f"    {p(line)}")
