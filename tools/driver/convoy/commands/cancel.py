"""`convoy cancel N`: take a request out of the queue.

A queued request is cancelled at once. A request being tested is cancelled
cooperatively: the running `convoy process` stops its Bazel commands within
seconds and ends it as cancelled (if no process runs, the next one does).
Once a request's build has passed (it is being merged or tagged) it can no
longer be cancelled. REQUEST_CANCELLED names who (--by; default the user
running convoy).
"""

from __future__ import annotations

import argparse

from convoy.actions.change import cancel  # noqa: F401 (the plain functions it calls)
from convoy.commands import common


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_by(parser)


def run(opts: argparse.Namespace, args: list[str]) -> int:
    repo, by = opts.repo, opts.by
    request_id = common.request_id("cancel", args)
    print(cancel(common.checkout(repo), request_id, by=by))
    return 0


