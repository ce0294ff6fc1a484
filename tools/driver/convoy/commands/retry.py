"""`convoy retry N`: put a rejected or errored request back into the queue.

Its attempt count starts again from zero. Refused when a newer request for
the same component is queued (that one would supersede it anyway). Its
REQUEST_QUEUED event names who (--by; default the user running convoy).
"""

from __future__ import annotations

import argparse

from convoy.actions.change import retry  # noqa: F401 (the plain functions it calls)
from convoy.commands import common


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_by(parser)


def run(opts: argparse.Namespace, args: list[str]) -> int:
    repo, by = opts.repo, opts.by
    request_id = common.request_id("retry", args)
    print(retry(common.checkout(repo), request_id, by=by))
    return 0


