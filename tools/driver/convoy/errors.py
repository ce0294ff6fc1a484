"""The driver's two error types: a user's mistakes and the world's refusals
(ConvoyError), and a build's trouble that is not the candidate's fault
(InfraError).

A ConvoyError is shown as one line per problem (no traceback) and exits with
status 2. Anything else that escapes a command is a bug: main keeps its
traceback. An InfraError is the queue's to catch (convoy.queue): it
re-queues the request (once `retries: infrastructure` is used up, it ends
it in `error`).
"""

from __future__ import annotations

from typing import Iterable


class ConvoyError(Exception):
    """Something the user can fix: bad input, an unreachable remote, a stale lock.

    The message says what is wrong and what to do. Several problems found in
    one pass (a manifest with three mistakes) travel together in `problems`,
    one line each.
    """

    def __init__(self, *problems: str) -> None:
        if not problems:
            raise ValueError("ConvoyError needs at least one problem")
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))

    @classmethod
    def of(cls, problems: Iterable[str]) -> "ConvoyError":
        return cls(*problems)


class InfraError(Exception):
    """Not the candidate's fault: Bazel crashed or timed out, git or a pool
    is unreachable. The request goes back to the queue."""


class StoreUnavailable(ConvoyError):
    """The store cannot be reached now (its server stopped, the network between
    is cut): nothing of the interrupted transaction was kept. `convoy process
    --forever` goes back to standby and waits for it (convoy.queue.lock)."""
