"""`convoy submit`: ask for a component bump; it joins the queue.

    convoy submit --component=messages --version=v1.5.0                      # commit from the tag
    convoy submit --component=messages --version=v1.5.0 --commit=<40 hex> --requested_by=ci@messages
    convoy submit --component=firmware --version=v3.1.0 --configuration=rover
    convoy submit --component=planner --version=v2.2.0 --archive_url=https://.../planner-2.2.0.tar.gz \\
        --strip_prefix=planner-2.2.0
    convoy submit ... --json     # {"id": 3, "state": "queued", "existing": false, "superseded": [2]}
    convoy submit ... --priority=high    # goes first (the default: normal); later: convoy promote N

Several bumps as ONE request (a group: tested, merged and tagged as one;
rejected as a whole if any of them breaks the build):

    convoy submit --bump=messages=v2.0.0 --bump=planner=v3.0.0             # COMPONENT=VERSION
    convoy submit --component=messages --version=v2.0.0 --bump=planner=v3.0.0@<40 hex>   # ...@COMMIT

A group gathered over time (say, by each component's CI): each bump is
checked now and held in the open group NAME; --close queues them all as one
request (each checked again; the group is then gone):

    convoy submit --component=messages --version=v2.0.0 --group=release-7    # held until closed
    convoy submit --bump=planner=v3.0.0 --group=release-7
    convoy submit --group=release-7 --close                                   # one queued request

Checked before anything is queued, each a one-line error: the component is
in the manifest, the version looks like v1.2.3, the configuration exists and
has the component, the commit is 40 hex and is on a branch or tag of the
component's remote (without --commit, the version is resolved on the
remote), an archive can be downloaded and has the strip prefix.

The manifest is read as far as these checks need (convoy.manifest's
read_component: the component's entry, the names of the others, the
configurations' members and pins, each checked as `convoy lock` checks
them); a mistake elsewhere in it is reported by `convoy lock`, and by the
queue when it makes the candidate from the branch tip's manifest.

Each bump of a group is checked exactly as a single one, and a request
(or group) bumps each component once.

The same bumps at the same commits (same scopes and archives) already
queued: its id is printed, nothing is added. A newer request supersedes the
older *queued* requests of every component it bumps: a group supersedes a
queued single bump of one of its components, and a single bump a queued
group that has its component.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

from convoy import models
from convoy.actions.groups import add_to_group, check_name, close_group
from convoy.actions.submit import (BumpArgs, MAX_TEXT, bump_args, check_bump_args, check_once, checked,  # noqa: F401
                                   combine, enqueue, parse_bump, priority_of, submit, validate)
from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.models import Request, bumps_title


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_json(parser)
    common.add_bump_flags(parser)
    parser.string("requested_by", None, "Who asks for the bump (default: $USER), e.g. ci@messages.")
    parser.multi_string("bump", None, "convoy submit: another bump of the same request, COMPONENT=VERSION or "
                        "COMPONENT=VERSION@COMMIT (repeat it); all the request's bumps are tested, merged and "
                        "tagged as one.")
    parser.string("group", None, "convoy submit: add the bump(s) to the open group NAME, held until it is "
                  "closed; with --close: queue the group's bumps as one request.")
    parser.boolean("close", False, "convoy submit --group=NAME --close: queue the open group as one request.")
    parser.string("priority", "normal", "convoy submit: high or normal; the queue takes the highest priority "
                  "first, then the oldest.")


def run(opts: argparse.Namespace, args: list[str]) -> int:
    bump, as_json, repo = BumpArgs.from_flags(opts), opts.json, opts.repo
    extra, group, close = list(opts.bump or ()), opts.group, opts.close
    priority = priority_of(opts.priority)
    common.no_arguments("submit", args)
    if group is not None or close:
        if priority != models.PRIORITY_NORMAL:
            raise ConvoyError("--priority does not apply to --group; after --close, put the group's request "
                              "first with: convoy promote N")
        return submit_group(common.checkout(repo), bump, extra, group, close=close, as_json=as_json)
    request, existing, superseded = submit(common.checkout(repo), bump, extra, priority=priority)
    print_queued(request, existing, superseded, as_json=as_json)
    return 0


def submit_group(root: Path, bump: BumpArgs, extra: Sequence[str], group: Optional[str], *, close: bool,
                 as_json: bool) -> int:
    """`convoy submit` with --group (and --close)."""
    if group is None:
        raise ConvoyError("--close needs --group=NAME, the open group to queue; for example: "
                          "convoy submit --group=release-7 --close")
    check_name(group)
    given = [f"--{name}" for name in ("component", "version", "commit", "configuration", "archive_url",
                                      "strip_prefix") if getattr(bump, name) is not None] + (["--bump"] if extra else [])
    if close:
        if given:
            raise ConvoyError(f"--close queues group '{group}' as it is and takes no bump ({', '.join(given)}); add "
                              f"the bump first (convoy submit ... --group={group}), then close the group")
        request, existing, superseded = close_group(root, group, requested_by=bump.requested_by)
        print_queued(request, existing, superseded, as_json=as_json, group=group)
        return 0
    if not given:
        raise ConvoyError(f"--group={group} adds a bump to the group: give --component and --version (or --bump="
                          f"COMPONENT=VERSION), or pass --close to queue the group")
    held, added = add_to_group(root, group, bump, extra)
    if as_json:
        print(json.dumps({"group": group, "state": "open", "bumps": [b.to_dict() for b in held.bumps]}))
    else:
        print(f"added {bumps_title(added)} to group '{group}', now {bumps_title(held.bumps)}; held until it is "
              f"closed: convoy submit --group={group} --close")
    return 0


def print_queued(request: Request, existing: bool, superseded: list[int], *, as_json: bool,
                 **extra_json: object) -> None:
    """What `convoy submit` prints for a queued (or already queued) request."""
    if as_json:
        print(json.dumps({"id": request.id, "state": request.state.value, "existing": existing,
                          "superseded": superseded, **extra_json}))
    elif existing:
        what = (f"{request.component} {request.version} at {(request.commit or '-')[:12]}" if not request.bumps
                else _at(request))
        print(f"request #{request.id} already queues {what}; nothing added")
        print(request.id)
    else:
        for old in superseded:
            print(f"request #{old} superseded by #{request.id}")
        high = ", high priority" if request.priority >= models.PRIORITY_HIGH else ""
        print(f"queued request #{request.id}: {_at(request)} (by {request.requested_by}{high}); run: convoy process")
        print(request.id)


def _at(request: Request) -> str:
    """"messages v1.5.0 at 1a2b3c4d5e6f" (+ a group's other bumps, each at its commit)."""
    return " + ".join(f"{b.title} at {(b.commit or '-')[:12]}" for b in request.all_bumps)


