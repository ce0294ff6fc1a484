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

import argparse
import json

from convoy.actions.tries import not_found, report, show, submit, try_version  # noqa: F401 (what it calls)
from convoy.commands import common
from convoy.commands import show as show_command
from convoy.errors import ConvoyError


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_json(parser)
    common.add_bump_flags(parser)
    parser.string("requested_by", None, "Who asks for the try (default: $USER), e.g. ci@messages.", metavar="WHO")
    parser.string("show", None, "convoy try --show=ID: the status and report of try ID.", metavar="ID")


TRY_FIELDS = ("component", "version", "commit", "requested_by")


def run(opts: argparse.Namespace, args: list[str]) -> int:
    shown, as_json, repo = opts.show, opts.json, opts.repo
    common.no_arguments("try", args)
    root = common.checkout(repo)
    if shown is not None:
        given = [f"--{name}" for name in (*TRY_FIELDS, "configuration", "archive_url") if getattr(opts, name)]
        if given:
            raise ConvoyError(f"--show looks at a try and takes no {', '.join(given)}; drop them, or drop --show")
        data = show(root, common.request_id("try --show", [shown]))
        if as_json:
            print(json.dumps(data, indent=2))
        else:
            show_command.print_text(data)
        return 0
    for name in ("configuration", "archive_url", "strip_prefix"):
        if getattr(opts, name) is not None:
            raise ConvoyError(f"--{name}: a try tests one commit of a component in every configuration that has "
                              f"it; drop --{name}")
    t, existing = submit(root, opts.component, opts.commit, version=opts.version,
                         requested_by=opts.requested_by)
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


