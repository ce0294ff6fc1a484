"""`convoy tag`: tag the current tip of the branch by hand.

Fetches the branch (convoy.yaml's git.remote and git.branch) and tags its
tip with the next release tag, whose notes are the release notes, and pushes
the tag, and publishes the release (convoy.publish: the release stage's
artifacts if that build kept them, notes, provenance). Refuses a tip that was never the candidate of a build that passed
(it was never tested). A tip that already has a release tag is left alone.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from convoy import candidate as cand
from convoy import release
from convoy import requests
from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.models import BuildState
from convoy.publish import Publisher


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)


def run(opts: argparse.Namespace, args: list[str]) -> int:
    repo = opts.repo
    common.no_arguments("tag", args)
    print(tag(common.checkout(repo), today=datetime.date.today()))
    return 0


def tag(root: Path, *, today: datetime.date) -> str:
    """Tags the tested tip of the checkout's branch; returns what happened, in one line."""
    config = common.config(root)
    tip = cand.fetch_branch(root, config.remote, config.branch)
    with common.store(root, create=True) as store:
        with store.read() as tx:
            passed = [b for b in tx.builds_of_commit(tip) if b.state == BuildState.SUCCEEDED]
            request = tx.request(passed[-1].request_id) if passed else None
        if not passed:
            raise ConvoyError(
                f"{config.remote}/{config.branch} is at {tip[:12]}, which was never tested (no build that passed "
                "had it as its candidate); convoy tags only tested commits: submit a request instead"
            )
        tags = cand.remote_tags(root, config.remote)
        fmt = release.tag_format_of(root, config)
        existing = sorted(n for n, c in tags.items() if c == tip and release.parse_tag(fmt, n) is not None)
        if existing:
            return f"{tip[:12]} is already released as {existing[0]}; nothing to do"
        with store.transaction():  # the state must take the record before the tag goes out (locked, read-only)
            pass
        publisher = Publisher(root, config, store, passed[-1], [request] if request is not None else [])
        name, notes = release.push_release_tag(root, config, store, tip, request=request, today=today,
                                               prepare=publisher.prepare, sign_args=publisher.sign_args())
        where = publisher.publish(name)
        with store.transaction() as tx:
            requests.record_release(tx, request, passed[-1], tag=name, commit=tip, notes=notes, by_hand=True)
    return f"tagged {tip[:12]} as {name}, pushed it to {config.remote} and published it to {where}"
