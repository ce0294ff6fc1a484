"""`convoy submit --group=NAME`: bumps gathered in an open group, queued as one request when it is closed.

    convoy submit --component=messages --version=v2.0.0 --group=release-7    # checked now, held
    convoy submit --bump=planner=v3.0.0 --group=release-7                    # another one
    convoy submit --group=release-7 --close                                  # one queued request

Each bump is checked when it is added, exactly as `convoy submit` checks a
single one (its version resolved to a commit the same way), and again when
the group is closed (the manifest may have changed meanwhile). An open
group is kept in the store (table open_groups) until it is closed; it
supersedes nothing and is not processed before that. Closing queues its
bumps, in the order they were added, as one request (requests.queue: the
queued requests of each of its components are superseded), and ends the
open group in the same transaction.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, Optional, Sequence

from convoy import requests
from convoy.commands import common
from convoy.commands.submit import BumpArgs, bump_args, check_once, checked, combine, print_queued, validate
from convoy.errors import ConvoyError
from convoy.manifest import read_component
from convoy.models import OpenGroup, Request, RequestBump, bumps_title
from convoy.untrusted import printable

GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def run(root: Path, bump: BumpArgs, extra: Sequence[str], group: Optional[str], *, close: bool,
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


def check_name(name: str) -> None:
    if not GROUP_NAME.fullmatch(name):
        raise ConvoyError(f"--group={printable(name)} is not a group name (1 to 64 letters, digits, '.', '_' or "
                          "'-', starting with a letter or digit); for example --group=release-7")


def add_to_group(root: Path, name: str, bump: BumpArgs, extra: Sequence[str] = ()) -> tuple[OpenGroup,
                                                                                          tuple[RequestBump, ...]]:
    """Checks the bumps (as `convoy submit` does) and adds them to the open
    group `name`, made if there is none. Returns (the group, the bumps
    added); ConvoyError (one line) if a bump is refused or the group has
    its component already (then nothing is added)."""
    check_name(name)
    added = tuple(RequestBump.of(s) for s in checked(root, bump, extra))
    with common.store(root, create=True) as store, store.transaction() as tx:
        group = tx.open_group(name)
        for new in added:
            old = next((b for b in group.bumps if b.component == new.component), None) if group else None
            if old is not None:
                raise ConvoyError(f"group '{name}' already has {old.title}; a group bumps each component once: "
                                  f"leave {new.title} out, or gather it in another group")
        requested_by = group.requested_by if group else (bump.requested_by or os.environ.get("USER") or "unknown")
        return tx.put_open_group(name, [*(group.bumps if group else ()), *added], requested_by), added


def close_group(root: Path, name: str, *, requested_by: Optional[str] = None,
                check: Optional[Callable[[OpenGroup], None]] = None) -> tuple[Request, bool, list[int]]:
    """Queues the open group `name` as one request (its bumps checked again)
    and ends the group. Returns what `submit` returns; ConvoyError (one
    line) for an unknown or empty group, two bumps of one component, or a
    bump that is refused now (then the group stays open). `check` (convoy
    serve: may this token close it?) sees the group first and may raise;
    the group queued is the one it saw, or nothing is queued."""
    check_name(name)
    if not common.has_store(root):
        raise _unknown(name, [])
    with common.store(root, create=True) as store:
        with store.read() as tx:
            group, known = tx.open_group(name), [g.name for g in tx.open_groups()]
        if group is None:
            raise _unknown(name, known)
        if check is not None:
            check(group)
        if not group.bumps:
            raise ConvoyError(f"group '{name}' has no bumps; add one (convoy submit --component=<name> "
                              f"--version=<version> --group={name}), then close it")
        check_once([(b.component, b.version) for b in group.bumps], f"group '{name}'")
        who = requested_by or group.requested_by
        submissions = []
        for bump in group.bumps:
            args = bump_args(bump, who)
            try:
                submissions.append(validate(root, read_component(common.shown_manifest(root), bump.component), args))
            except ConvoyError as e:
                raise ConvoyError(f"group '{name}', bump {printable(bump.title)}: {e}") from None
        with store.transaction() as tx:
            if tx.open_group(name) != group:
                raise ConvoyError(f"group '{name}' changed while it was being closed (a bump was added, or it was "
                                  "closed); run the command again")
            queued = requests.queue(tx, combine(submissions))
            tx.delete_open_group(name)
            return queued


def _unknown(name: str, known: list[str]) -> ConvoyError:
    return ConvoyError(f"no open group '{name}' (open: {', '.join(known) or 'none'}); start it by adding a bump: "
                       f"convoy submit --component=<name> --version=<version> --group={name}")
