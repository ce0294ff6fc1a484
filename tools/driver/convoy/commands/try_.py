"""`convoy try`: would commit C of a component pass integration? (Cocoon's presubmit)

    convoy try --component=messages --commit=<40 hex>                   # queued; convoy process runs it
    convoy try --component=messages --commit=<40 hex> --version=v1.6.0 --requested_by=ci@messages --json
    convoy try --show=7            # its status and report: stages, tasks, failing targets
    convoy try --show=7 --json     # {"id": 7, "state": "failed", "summary": ..., "failing_targets": [...], ...}

A try is tested exactly as a request would be (the branch's current tip,
plus the bump to commit C, the lock re-resolved, the configured stages with
the real Bazel), but nothing is merged or tagged: the branch, its manifest,
its lock and the tags never change. `convoy process` runs tries only when no
request is queued or in flight, and a request that arrives stops a running
try, which waits to run again (convoy.queue.tries): tries never delay the
merge queue.

The version is optional: without --version the pin's version is the
component's current one in the manifest with the commit as a prerelease
(v1.5.0 and commit 1a2b3c... give v1.5.0-try.1a2b3c4d5e6f), which is never
a tag, so any commit of the component's remote can be tried. With
--version, a version that is a tag must be at --commit, as with convoy
submit. The commit is checked before anything is queued, each mistake a
one-line error: 40 hex, on a branch or tag of the component's remote.

A try's state: queued, testing, passed, failed (its `summary` names the
stage, the configurations and the failing targets), cancelled (convoy
cancel ID) or error. The same try already waiting: its id is printed,
nothing is added.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

from absl import flags

from convoy import tries
from convoy import untrusted
from convoy.commands import common
from convoy.commands import show as show_command
from convoy.commands import submit as submit_command
from convoy.errors import ConvoyError
from convoy.manifest import read_component
from convoy.models import Request, RequestState

FLAGS = flags.FLAGS
flags.DEFINE_string("show", None, "convoy try --show=ID: the status and report of try ID.")

TRY_FIELDS = ("component", "version", "commit", "requested_by")


def run(args: list[str]) -> int:
    shown, as_json, repo = FLAGS.show, FLAGS.json, FLAGS.repo
    common.no_arguments("try", args)
    root = common.checkout(repo)
    if shown is not None:
        given = [f"--{name}" for name in (*TRY_FIELDS, "configuration", "archive_url") if getattr(FLAGS, name)]
        if given:
            raise ConvoyError(f"--show looks at a try and takes no {', '.join(given)}; drop them, or drop --show")
        data = show(root, common.request_id("try --show", [shown]))
        if as_json:
            print(json.dumps(data, indent=2))
        else:
            show_command.print_text(data)
        return 0
    for name in ("configuration", "archive_url", "strip_prefix"):
        if getattr(FLAGS, name) is not None:
            raise ConvoyError(f"--{name}: a try tests one commit of a component in every configuration that has "
                              f"it; drop --{name}")
    t, existing = submit(root, FLAGS.component, FLAGS.commit, version=FLAGS.version,
                         requested_by=FLAGS.requested_by)
    if as_json:
        print(json.dumps({"id": t.id, "state": t.state.value, "existing": existing}))
    elif existing:
        print(f"try #{t.id} already tries {t.component} at {(t.commit or '-')[:12]}; nothing added")
        print(t.id)
    else:
        print(f"queued try #{t.id}: {t.title} at {(t.commit or '-')[:12]} (by {t.requested_by}); nothing will be "
              f"merged. Run: convoy process; then: convoy try --show={t.id}")
        print(t.id)
    return 0


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
    view = read_component(common.shown_manifest(root), component)
    if view.component is None:
        raise ConvoyError(f"--component={untrusted.printable(component)}: no such component in "
                          f"{common.shown_manifest(root)} (known: {', '.join(sorted(view.component_names))}); "
                          "fix the name")
    if view.component.source != "git":
        raise ConvoyError(f"--component={component}: a try needs a component fetched from git (its source is "
                          f"{view.component.source}); submit a version of it instead")
    if version is None:
        version = try_version(view.component.version, commit)
    args = submit_command.BumpArgs(component=component, version=version, commit=commit, requested_by=requested_by)
    submission = submit_command.validate(root, view, args)
    with common.store(root, create=True) as store, store.transaction() as tx:
        return tries.queue(tx, submission)


def show(root: Path, try_id: int) -> dict[str, Any]:
    """Try `try_id`'s status and report: convoy show's description of it,
    with its `summary` and every failing target. ConvoyError if there is no
    such try (a request's id says to use convoy show)."""
    if not common.has_store(root):
        raise not_found(try_id)
    with common.store(root, readonly=True) as store, store.read() as tx:
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
    described = show_command.describe(tx, t)
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

