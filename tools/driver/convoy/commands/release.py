"""`convoy release`: what the releases hold, and the retention of their artifacts.

    convoy release list                 # every release in the store, newest first
    convoy release show v2026.12.2      # its commit, requests, notes, artifacts, provenance, stages, rigs
    convoy release show v2026.12.2 --json
    convoy release prune --keep=5       # artifacts of all but the newest 5 releases removed (default: release.keep)

`convoy verify TAG` checks a release; this command only shows it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from convoy import releases
from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.untrusted import printable as p


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_json(parser)
    parser.integer("keep", None, "release prune: how many of the newest releases keep their artifacts "
                   "(default: release.keep in convoy.yaml).")


USAGE = "convoy release list | show TAG | prune --keep=N"


def run(opts: argparse.Namespace, args: list[str]) -> int:
    if not args:
        raise ConvoyError(f"convoy release needs a subcommand: {USAGE}")
    what, rest = args[0], args[1:]
    root = common.checkout(opts.repo)
    config = common.config(root)
    if what == "list":
        common.no_arguments("release list", rest)
        data = releases.listing(root, config)
        if opts.json:
            print(json.dumps(data, indent=2))
        for item in [] if opts.json else data:
            state = "artifacts pruned" if item["pruned"] else f"{item['artifacts']} artifact(s)"
            print(f"{p(item['tag'])}  {state}{', signed' if item['signed'] else ''}")
        if not data and not opts.json:
            print("no releases in the release store yet")
        return 0
    if what == "show":
        if len(rest) != 1:
            raise ConvoyError(f"convoy release show takes one tag, e.g. convoy release show v2026.12.1; {USAGE}")
        data = releases.describe(root, config, rest[0])
        if opts.json:
            print(json.dumps(data, indent=2))
        else:
            print_text(data)
        return 0
    if what == "prune":
        common.no_arguments("release prune", rest)
        keep = opts.keep if opts.keep is not None else config.release.keep
        if not keep and opts.keep is None:
            raise ConvoyError("convoy release prune needs --keep=N (or release.keep in convoy.yaml): how many of the "
                              "newest releases keep their artifacts")
        lines = releases.prune(root, config, keep)
        for line in lines:
            print(line)
        print(f"pruned {len(lines)} release(s); the newest {keep} keep their artifacts")
        return 0
    raise ConvoyError(f"unknown subcommand '{p(what)}' of convoy release; {USAGE}")


def print_text(data: dict[str, Any]) -> None:
    commit = data["commit"][:12] if data["commit"] else "not on the remote"
    print(f"release {p(data['tag'])}  commit {commit}  built {p(str(data['built_on'] or '?'))}")
    signed = "signed" if data["tag_signed"] else "not signed"
    statement = "signed" if data["statement_signed"] else "not signed"
    print(f"  tag: {signed}; provenance statement sha256 {data['statement_sha256'] or '(missing)'} ({statement})")
    print(f"  stored at {p(data['store'])}")
    for request in data["requests"]:
        bumps = ", ".join(f"{p(str(b.get('component')))} {p(str(b.get('version')))}" for b in request.get("bumps") or ())
        print(f"  request {request.get('id')} by {p(str(request.get('requested_by')))}: {bumps}")
    print("artifacts:" if data["artifacts"] else "artifacts: none (release.artifacts is not set)")
    for item in data["artifacts"]:
        where = f"{item['size']} bytes" if item["present"] else "pruned"
        print(f"  {p(item['name'])}  {where}  sha256 {item['sha256']}")
    if data["pruned"]:
        print(f"  pruned: {data['pruned']}")
    print("stages:")
    for stage in data["stages"]:
        outcome = stage["outcome"] or stage["state"]
        print(f"  {p(str(stage['stage']))} / {p(str(stage['configuration']))}: {p(str(outcome)).lower()}"
              + (f" ({stage['tests']} tests)" if stage["tests"] else ""))
    if data["hardware"]:
        print("hardware:")
    for run in data["hardware"]:
        if run.get("executor"):
            print(f"  {p(str(run['configuration']))}: hardware tests ran {p(run['executor'])}ly (no lab)")
        else:
            print(f"  {p(str(run.get('target')))} ({p(str(run['configuration']))}) on rig {p(str(run.get('rig')))} "
                  f"of pool {p(str(run.get('pool')))}")
    if data["notes"]:
        print("notes:")
        for line in data["notes"].rstrip("\n").splitlines():
            print(f"  {p(line)}")
