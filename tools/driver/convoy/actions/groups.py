"""Open groups (`convoy submit --group=NAME`): bumps checked when they are
added (`add_to_group`) and queued as one request when the group is closed
(`close_group`), checked again then. The group is kept in the store (table
open_groups) until it is closed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Optional, Sequence

from convoy import requests
from convoy.actions import checkout
from convoy.actions.submit import BumpArgs, bump_args, check_once, checked, combine, validate
from convoy.errors import ConvoyError
from convoy.manifest import read_component
from convoy.models import OpenGroup, Request, RequestBump
from convoy.untrusted import printable


GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


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
    with checkout.store(root, create=True) as store, store.transaction() as tx:
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
    if not checkout.has_store(root):
        raise _unknown(name, [])
    with checkout.store(root, create=True) as store:
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
                submissions.append(validate(root, read_component(checkout.shown_manifest(root), bump.component), args))
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
