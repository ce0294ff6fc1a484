"""Failpoints: places where a test makes `convoy process` die, to prove recovery.

    CONVOY_FAILPOINT=after_push convoy process --once    # dies right after the push

When the environment variable CONVOY_FAILPOINT names a failpoint, the process
sends itself SIGKILL on reaching it: no cleanup, no `finally`, no flushed
buffers, exactly like a machine that loses power. Unset (always, outside
tests), `hit()` is one dictionary lookup. Several names may be given,
separated by commas. `raise:<name>` raises FailpointError there instead
(an unexpected exception: a bug, as far as the driver can tell).

The failpoints, in the order a request meets them:

| name | where the process dies |
| --- | --- |
| `after_candidate` | the candidate commit exists and is recorded; its build has not started |
| `task_running` | a task's Bazel client has started (its pid is recorded) |
| `window_full` | (speculative, batch) the window is full: every item in it has a candidate and a stage running |
| `after_build` | the build succeeded and is recorded; the branch has not moved |
| `before_push` | right before `git push` of the candidate to the branch (the merge) |
| `after_push` | the branch is at the candidate on the remote; not recorded, no tag |
| `after_tag` | the release tag exists locally; not pushed |
| `after_tag_push` | the tag is on the remote; the release not published, not recorded |
| `after_publish` | the release is in the artifact store; not recorded |
"""

from __future__ import annotations

import os
import signal
import sys

ENV = "CONVOY_FAILPOINT"
NAMES = ("after_candidate", "task_running", "window_full", "after_build", "before_push", "after_push", "after_tag", "after_tag_push",
         "after_publish")


class FailpointError(RuntimeError):
    """Raised at a failpoint named `raise:<name>`: stands for a bug in convoy."""


def hit(name: str) -> None:
    """Dies with SIGKILL if CONVOY_FAILPOINT names `name`; raises
    FailpointError if it names `raise:<name>` (an unexpected exception, to
    prove that a bug ends one request and not the queue)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    names = wanted.split(",")
    if name in names:
        assert name in NAMES, name
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if f"raise:{name}" in names:
        raise FailpointError(f"failpoint {name} raised")
