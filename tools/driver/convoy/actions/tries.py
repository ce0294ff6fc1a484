"""Try runs (`convoy try`, POST /api/tries): `submit` (a commit of a
component, checked as convoy submit checks it, queued as a try), `show`
(its status and report), `try_version`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from convoy import tries
from convoy import untrusted
from convoy.actions import checkout
from convoy.actions import show as show_action
from convoy.actions import submit as submit_action
from convoy.errors import ConvoyError
from convoy.manifest import read_component
from convoy.models import Request, RequestState


def try_version(current: str, commit: str) -> str:
    """The pin's version of a try without --version: the current version
    (its prerelease dropped) with the commit as prerelease: v1.5.0-try.1a2b3c4d5e6f."""
    return f"{re.sub(r'-.*$', '', current)}-try.{commit[:12]}"


def submit(root: Path, component: Optional[str], commit: Optional[str], *, version: Optional[str] = None,
           requested_by: Optional[str] = None) -> tuple[Request, bool]:
    """Checks the try (the component, the commit on its remote, the version)
    and queues it; returns (the try, whether the same one was waiting).
    ConvoyError (one line) if it is refused: then nothing is queued."""
    if not component:
        raise ConvoyError("--component is required: the component to try; for example --component=messages")
    if not commit:
        raise ConvoyError("--commit is required: the component's commit to try (40 hex: git rev-parse HEAD)")
    problem = untrusted.text_problem(commit) or untrusted.text_problem(component)
    if problem:
        raise ConvoyError(f"--component or --commit {problem}; pass them without them")
    if not untrusted.COMMIT_ID.fullmatch(commit):
        raise ConvoyError(f"--commit={untrusted.printable(commit)} is not a commit id (40 lowercase hex digits); "
                          "pass the full id (git rev-parse <ref>)")
    view = read_component(checkout.shown_manifest(root), component)
    if view.component is None:
        raise ConvoyError(f"--component={untrusted.printable(component)}: no such component in "
                          f"{checkout.shown_manifest(root)} (known: {', '.join(sorted(view.component_names))}); "
                          "fix the name")
    if view.component.source != "git":
        raise ConvoyError(f"--component={component}: a try needs a component fetched from git (its source is "
                          f"{view.component.source}); submit a version of it instead")
    if version is None:
        version = try_version(view.component.version, commit)
    args = submit_action.BumpArgs(component=component, version=version, commit=commit, requested_by=requested_by)
    submission = submit_action.validate(root, view, args)
    with checkout.store(root, create=True) as store, store.transaction() as tx:
        return tries.queue(tx, submission)


def show(root: Path, try_id: int) -> dict[str, Any]:
    """Try `try_id`'s status and report: convoy show's description of it,
    with its `summary` and every failing target. ConvoyError if there is no
    such try (a request's id says to use convoy show)."""
    if not checkout.has_store(root):
        raise not_found(try_id)
    with checkout.store(root, readonly=True) as store, store.read() as tx:
        t = tx.request(try_id)
        if t is None:
            raise not_found(try_id)
        if not t.is_try:
            raise ConvoyError(f"#{try_id} is a request, not a try; see it with: convoy show {try_id}")
        return report(tx, t)


def not_found(try_id: int) -> ConvoyError:
    return ConvoyError(f"no try #{try_id} in this checkout; start one with: convoy try --component=<name> "
                       "--commit=<40 hex>")


def report(tx, t: Request) -> dict[str, Any]:
    """What `--show` and GET /api/tries/{id} give."""
    described = show_action.describe(tx, t)
    failing = []
    builds = described["builds"]
    for stage in builds[-1]["stages"] if builds else ():
        for task in stage["tasks"]:
            for target in task["failing_targets"]:
                failing.append({"stage": stage["name"], "configuration": task["configuration"], **target})
    done = t.state.is_final
    return {"id": t.id, "kind": t.kind, "state": t.state.value,
            "passed": (t.state == RequestState.PASSED) if done else None, "summary": t.detail,
            "failing_targets": failing, **described}
