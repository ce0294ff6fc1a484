"""What the queue's end-to-end tests share (tests/queue, tests/lab): bumps
that pass every stage in rover, and checking that a request merged and was
tagged exactly once."""

from __future__ import annotations

import subprocess

from pathlib import Path

from convoy import models
from convoy.models import Phase, RequestState

from tests.support.integration import Integration

GOOD_BUMPS = [  # (component, version) that pass every stage in rover
    ("messages", "v1.5.0"), ("planner", "v2.2.0"), ("planner", "v2.3.0"), ("controller", "v1.3.0"),
    ("messages", "v1.4.0"), ("planner", "v2.1.0"), ("controller", "v1.2.0"),
]

# Where a SIGKILL at each failpoint leaves the request being processed.
PHASE_AFTER_KILL = {
    "after_candidate": Phase.BUILDING,
    "task_running": Phase.BUILDING,
    "after_build": Phase.MERGING,
    "before_push": Phase.MERGING,
    "after_push": Phase.MERGING,
    "after_tag": Phase.PUSHED,
    "after_tag_push": Phase.PUSHED,
}


def next_good_bump(it: Integration, skip: tuple[str, ...] = ()) -> tuple[str, str]:
    for component, version in GOOD_BUMPS:
        if component not in skip and it.origin_pin("rover", component) != version:
            return component, version
    raise AssertionError("no good bump left")


def submit_rover(it: Integration, skip: tuple[str, ...] = ()) -> int:
    component, version = next_good_bump(it, skip)
    return it.submit(f"--component={component}", f"--version={version}", "--configuration=rover",
                     "--requested_by=ops-test")


def assert_merged_once(it: Integration, request_id: int) -> models.Request:
    request = it.request(request_id)
    assert (request.state, request.phase) == (RequestState.MERGED, Phase.TAGGED), request
    subjects = it.origin("log", "--format=%s", "main").splitlines()
    assert sum(f"(request {request_id})" in s for s in subjects) == 1, subjects
    assert it.origin("rev-parse", "main") == request.candidate_commit or it.origin(
        "merge-base", "--is-ancestor", request.candidate_commit, "main") == ""
    tags = [name for name, commit in it.origin_tags().items() if commit == request.candidate_commit]
    assert tags == [request.tag]
    types = [e.type for e in it.events(request_id)]
    assert types.count(models.MANIFEST_UPDATED) == 1 and types.count(models.RELEASE_TAGGED) == 1, types
    with_request = [r for r in it.show(request_id)["releases"]]
    assert [r["tag"] for r in with_request] == [request.tag]
    return request


class Mover:
    """Pushes an unrelated commit to origin's main from another clone."""

    def __init__(self, it: Integration, clone: Path) -> None:
        self.it, self.clone, self.count = it, clone, 0

    def push(self) -> str:
        """Pushes one more unrelated commit on origin's main. A driver running
        meanwhile may push first (the push is then rejected as not a fast
        forward): like a person, it fetches and makes its commit again."""
        self.count += 1
        git = lambda *args: self.it.git(*args, cwd=self.clone)  # noqa: E731
        for _ in range(5):
            git("fetch", "-q", "origin")
            git("reset", "-q", "--hard", "origin/main")
            (self.clone / "NOTES.md").open("a").write(f"Someone else's change {self.count}.\n")
            git("add", "NOTES.md")
            git("commit", "-q", "-m", f"Unrelated change {self.count}")
            pushed = subprocess.run(["git", "push", "-q", "origin", "HEAD:main"], cwd=self.clone,
                                    capture_output=True, text=True, timeout=60)
            if pushed.returncode == 0:
                return git("rev-parse", "HEAD")
            assert "[rejected]" in pushed.stderr, pushed.stderr  # only a lost race is tried again
        raise AssertionError(f"origin's main moved under each of 5 pushes: {pushed.stderr}")
