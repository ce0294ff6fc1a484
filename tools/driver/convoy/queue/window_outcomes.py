"""What the scheduler's reshaping decisions do to the requests: merge, reject, split (a part of WindowQueue).

    outcomes = Outcomes(window)          # window.outcomes
    outcomes.merge(item)                 # chain.Merge: push exactly the tested candidate, tag it
    outcomes.reject(item)                # chain.Reject: every request of an item known to fail on the tip
    outcomes.split(action)               # chain.Split: a failed batch becomes its parts

A merge goes through `Steps.merge` and `Steps.tag` (convoy.queue.phases):
if the branch moved during the build, the candidate is made again on the
new tip before anything is pushed; a branch that moved during each of
MAX_BUILDS builds re-queues the item's requests (`Requeue`: nothing was
pushed). A merge step that keeps failing otherwise (the remote) is retried
in place, then stops `convoy process` with the request at its phase
(StuckError), to resume at the next start.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Optional

from convoy import gitutil
from convoy import requests
from convoy.errors import ConvoyError, InfraError, StoreUnavailable
from convoy.models import Phase, RequestState
from convoy.queue import chain
from convoy.queue.lock import LeaseLost
from convoy.queue.phases import Requeue, StuckError
from convoy.queue.window_reports import _ids

if TYPE_CHECKING:
    from convoy.queue.base import QueueManager  # the WindowQueue (not imported: no cycle)

PUSH_RETRY_SECONDS = 2.0  # the longest wait before a failed merge step is tried again (times the failures)


class Outcomes:
    """Merges, rejections and splits of `window`'s chain (see the module docstring)."""

    def __init__(self, window: "QueueManager") -> None:
        self.w = window
        self._merge_failures = 0

    def merge(self, item: chain.Item) -> Optional[int]:
        """Pushes and tags the item's candidate; its lead request's id once merged, else None (made again)."""
        w = self.w
        lead, members = w.requests_of(item)
        try:
            if lead.phase == Phase.MERGING:
                w.steps.merge(lead, members=members)
            lead, members = w.requests_of(item)
            if lead.phase == Phase.PUSHED:
                w.steps.tag(lead, members=members)
        except Requeue as e:
            self._merge_failures = 0
            return w.reports.infrastructure(item, " ".join(str(e).split()))
        except StoreUnavailable:
            raise  # this worker goes back to standby; the one that takes the queue resumes the merge
        except LeaseLost as e:  # another worker holds the queue now: it resumes the request at its phase
            w.out(f"convoy: #{lead.id} {e}")
            w.stop.set()
            return None
        except (InfraError, gitutil.GitError, ConvoyError) as e:
            self._merge_failures += 1
            reason = " ".join(str(e).split()) or type(e).__name__
            if self._merge_failures > w.ctx.config.infra_retries:
                raise StuckError(f"request #{lead.id} passed its build but its merge keeps failing ({reason}); it "
                                 "stays at that step: fix the remote, then run: convoy process") from None
            w.out(f"convoy: #{lead.id} merge failed ({reason}); retrying")
            w.stop.wait(min(w.ctx.config.poll_interval, PUSH_RETRY_SECONDS) * self._merge_failures)
            return None
        self._merge_failures = 0
        lead, _ = w.requests_of(item)
        if lead.state == RequestState.MERGED:
            with w.ctx.store.transaction() as tx, w.cond:
                w.scheduler.merged(item)
                w.tip = lead.candidate_commit
                w.record.save(tx)
            return lead.id
        with w.cond:  # the branch moved under it: everything is built again on the new tip
            w.fetch_tip()
            item.unmade()
        return None

    def reject(self, item: chain.Item) -> int:
        """Rejects every request of the item (its failure on the tip as the reason); the lead's id."""
        w = self.w
        failure = w.failures.get(id(item), {})
        how = item.how
        summary = failure.get("summary") or "its candidate failed"
        if how:
            summary += f" (found by {how})"
        with w.ctx.store.transaction() as tx:
            build = tx.build(failure["build_id"]) if failure.get("build_id") else None
            for rid in item.requests:
                request = tx.request(rid)
                if request.state != RequestState.TESTING:
                    continue
                requests.reject(tx, request, stage=failure.get("stage"), build=build,
                                failures=failure.get("failures", ()), summary=summary, logs=w.ctx.logs(request))
            with w.cond:
                w.scheduler.rejected(item)
                w.failures.pop(id(item), None)
                w.record.save(tx)
        return item.requests[0]

    def split(self, action: chain.Split) -> None:
        """Puts the parts of a failed batch in its place."""
        w = self.w
        with w._print_lock:
            w.out(f"{time.strftime('%H:%M:%S')} batch {_ids(action.item.requests)} failed on the tip; split: "
                  f"{action.how}")
        with w.ctx.store.transaction() as tx, w.cond:
            w.failures.pop(id(action.item), None)
            w.scheduler.split(action.item, action.parts)
            w.record.save(tx)
