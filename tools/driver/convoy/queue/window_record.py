"""The window's chain in the store: saved with the request states it goes with, loaded by the next process
(a part of WindowQueue).

    record = ChainRecord(window)     # window.record
    record.save(tx)                  # in the transaction of every change of the chain
    record.load()                    # once, in a new process: the chain as the store has it

The chain (each item's requests, its splits and, for a failing item, its
failure) is the meta key `queue.chain`, rewritten in the transaction of
every change of the chain. `load` rebuilds the chain from it and from the
requests in `testing`: a request past its build (merging, pushed) is left
to the merge step, which asks the remote; a build under way resumes in a
new job; a failed item keeps its failure; anything else is built again. The
window itself starts at queue.window again in every new process.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Optional

from convoy import gitutil
from convoy import requests
from convoy.errors import ConvoyError, InfraError
from convoy.models import BuildState, Phase, RequestState
from convoy.queue import chain
from convoy.spares import REF
from convoy.store import Transaction

if TYPE_CHECKING:
    from convoy.queue.base import QueueManager  # the WindowQueue (not imported: no cycle)

CHAIN_KEY = "queue.chain"
PAST_BUILD = (Phase.MERGING, Phase.PUSHED, Phase.TAGGED)


class ChainRecord:
    """The chain of `window` (a WindowQueue) in the store (see the module docstring)."""

    def __init__(self, window: "QueueManager") -> None:
        self.w = window

    def save(self, tx: Transaction) -> None:
        data = []
        for item in self.w.scheduler.chain:
            entry = item.to_json()
            if id(item) in self.w.failures:
                entry["failure"] = self.w.failures[id(item)]
            data.append(entry)
        tx.set_meta(CHAIN_KEY, json.dumps({"mode": self.w.policy.mode, "window": self.w.scheduler.window,
                                           "items": data}))

    def load(self) -> None:
        """The chain as the store has it; requests past their build are merged first."""
        self.w.loaded = True
        with self.w.ctx.store.read() as tx:
            testing = {r.id: r for r in tx.requests([RequestState.TESTING])}
            saved = json.loads(tx.meta(CHAIN_KEY) or "{}")
        try:
            self.w.fetch_tip()
        except (InfraError, gitutil.GitError, ConvoyError):
            if any(r.phase in PAST_BUILD for r in testing.values()):
                raise  # its merge step needs the remote: convoy process stops, to resume at the next start
            self.w.tip = None  # the window's loop asks again; what it was to build on it goes back to the queue
        items, seen = [], set()
        for entry in saved.get("items", []):
            item = chain.Item.from_json(entry)
            item.requests = tuple(r for r in item.requests if r in testing)
            if not item.requests:
                continue
            seen.update(item.requests)
            items.append((item, entry.get("failure")))
        for rid in sorted(set(testing) - seen):
            items.append((chain.Item((rid,), splittable=False), None))
        for item, failure in items:
            self.w.scheduler.chain.append(item)
        with self.w.ctx.store.read() as tx:
            builds = {item.requests[0]: tx.builds(item.requests[0]) for item, _ in items}
        for item, failure in items:
            self._resume(item, failure, builds[item.requests[0]])
        with self.w.ctx.store.transaction() as tx, self.w.cond:
            self.save(tx)

    def _resume(self, item: chain.Item, failure: Optional[dict], builds) -> None:
        lead, _ = self.w.requests_of(item)
        build = builds[-1] if builds else None
        if build is not None and lead.phase in (Phase.BUILDING, Phase.MERGING) \
                and build.state != BuildState.FAILED and not self._here(build.candidate_commit):
            self._made_elsewhere(item, build)  # another worker's clone made it, and never pushed it
            return
        if lead.phase in PAST_BUILD and build is not None:
            item.made(build.base_commit, build.candidate_commit)
            item.passed_stages = len(self.w.scheduler.stages)
            # Steps.merge decides from the remote (pushed already, push now, or build again on a
            # branch that moved elsewhere), and after a push only the tag is left: not the plan's
            # base check, which would see a pushed candidate as built on a stale base.
            item.base = self.w.tip
            return
        if build is None or lead.phase != Phase.BUILDING:
            return  # made again
        if build.state == BuildState.BUILDING:
            with self.w.ctx.store.read() as tx:
                stages = tx.stages(build.id)
            item.made(build.base_commit, build.candidate_commit)
            item.passed_stages = sum(1 for s in stages if s.state.value == "succeeded")
            self.w.build(item, build.base_commit, resume=build)
        elif build.state == BuildState.FAILED and failure and failure.get("build_id") == build.id:
            item.made(build.base_commit, build.candidate_commit)
            self.w.failures[id(item)] = failure
            item.failed(chain.Failure(int(failure.get("stage_index", 0)),
                                      suspects=tuple(failure["suspects"]) if failure.get("suspects") else None,
                                      how=failure.get("how") or ""))

    def _here(self, commit: Optional[str]) -> bool:
        """Whether this clone has `commit`, or can fetch it from the candidates spare workers were
        given (convoy.spares: refs/convoy/candidates); a worker that took the queue over may not
        (see _made_elsewhere)."""
        if not commit:
            return False
        checkout = self.w.ctx.checkout
        if self._has(commit):
            return True
        ref = REF.format(commit=commit)
        gitutil.run(["fetch", "--quiet", "--", self.w.ctx.config.remote, f"+{ref}:{ref}"], cwd=checkout, check=False)
        return self._has(commit)

    def _has(self, commit: str) -> bool:
        return gitutil.run(["cat-file", "-e", "--end-of-options", f"{commit}^{{commit}}"], cwd=self.w.ctx.checkout,
                           check=False).returncode == 0

    def _made_elsewhere(self, item: chain.Item, build) -> None:
        """The item's candidate exists only in the clone of the worker that made
        it (which died holding the queue): its build ends, and it is made again."""
        reason = (f"its candidate {build.candidate_commit[:10]} was made by another worker and is not in this "
                  "clone (that worker stopped before pushing it); made again here")
        self.w.out(f"convoy: #{item.requests[0]} {reason}")
        with self.w.ctx.store.transaction() as tx:
            for rid in item.requests:
                request = tx.request(rid)
                requests.end_running_builds(tx, request, reason=reason)
                requests.remake_candidate(tx, request)
