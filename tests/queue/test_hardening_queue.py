"""No release is lost to a badly timed crash, and no request blocks the queue.

- Kill `convoy process` at every failpoint, push someone else's commit to
  origin's main before the restart, and the request still merges and is
  tagged exactly once (before the fix, a kill after the push followed by a
  moving main rebuilt the request, rejected it as "nothing to change" and
  never tagged it).
- A request that makes the driver raise an unexpected exception (a bug, or
  a request from an older convoy that no check foresaw) ends in `error` with
  a crash log; the next request still merges.
- `convoy submit` refuses control characters and malformed URLs before
  anything is queued.

`convoy process` runs as a real process with the real Bazel; CONVOY_FAILPOINT
makes it SIGKILL itself, or raise (convoy.failpoints). The integration
repository is the `hard` fixture of tests/queue/conftest.py.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from convoy import models
from convoy.models import Phase, RequestState
from convoy.store import checkout_store

from tests.support.queue import PHASE_AFTER_KILL, assert_merged_once, submit_rover

@pytest.mark.bazel
@pytest.mark.slow
@pytest.mark.parametrize("failpoint", list(PHASE_AFTER_KILL))
def test_a_kill_then_main_moving_still_merges_and_tags_once(hard, failpoint):
    it, mover = hard
    request_id = submit_rover(it)
    killed = it.process("--once", failpoint=failpoint)
    assert killed.code == -signal.SIGKILL, killed
    assert it.request(request_id).phase == PHASE_AFTER_KILL[failpoint]
    moved = mover.push()  # main moves while no driver runs
    resumed = it.process("--all")
    assert resumed.code == 0, resumed
    request = assert_merged_once(it, request_id)
    assert request.state == RequestState.MERGED and "rejected" not in resumed.out
    main_log = it.origin("rev-list", "main")
    assert moved in main_log.split() and request.candidate_commit in main_log.split()
    if failpoint in ("after_push", "after_tag", "after_tag_push"):
        # It had landed: recorded as merged and tagged on the tested commit, never rebuilt.
        assert len(it.show(request_id)["builds"]) == 1
        assert it.origin("rev-parse", f"{moved}~1") == request.candidate_commit


@pytest.mark.bazel
@pytest.mark.slow
def test_a_request_that_raises_ends_in_error_and_the_queue_goes_on(hard):
    it, _ = hard
    first = submit_rover(it)
    component = it.request(first).component
    second = submit_rover(it, skip=(component,))
    run = it.process("--once", failpoint="raise:after_candidate")
    assert run.code == 0, run
    assert "Traceback" not in run.err + run.out
    request = it.request(first)
    assert (request.state, request.phase) == (RequestState.ERROR, None)
    assert request.detail.startswith("internal error (FailpointError: failpoint after_candidate raised); a bug in "
                                     "convoy, details in ")
    assert "\n" not in request.detail
    log = Path(request.detail.rsplit("details in ", 1)[1])
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "command line:" in text and "python:" in text
    assert log.stat().st_mode & 0o077 == 0
    assert "1 request(s) ended in error because of a bug in convoy" in run.out
    [error] = [e for e in it.events(first) if e.type == models.REQUEST_ERROR]
    assert error.data["internal"] is True and error.data["log"] == str(log)
    [build] = it.show(first)["builds"]
    assert build["state"] == "failed"
    assert it.request(second).state == RequestState.QUEUED
    resumed = it.process("--all")
    assert resumed.code == 0, resumed
    assert_merged_once(it, second)


@pytest.mark.bazel
@pytest.mark.slow
def test_a_poisoned_request_in_the_store_does_not_block_the_queue(hard):
    """A request queued by an older convoy with a newline in its archive URL
    (the submit check is new): before the fix every `convoy process` crashed
    on it with a RuntimeError until someone cancelled it."""
    it, _ = hard
    good = submit_rover(it, skip=("planner",))
    with checkout_store(it.checkout) as store, store.transaction() as tx:
        poisoned = tx.insert_request(
            component="planner", version="v2.2.0", commit=None, commit_given=False,
            archive_url="file:///tmp/planner.tar.gz\nrelease:\n  tag_format: x{n}", strip_prefix=None,
            configuration=None, requested_by="old-convoy").id
    for _ in range(3):  # as a supervisor restarts `convoy process`
        run = it.process("--all")
        assert run.code == 0, run
        assert "Traceback" not in run.err + run.out
    assert it.request(poisoned).state == RequestState.ERROR
    assert "\n" not in it.request(poisoned).detail
    assert_merged_once(it, good)


@pytest.mark.parametrize("flag, value, message", [
    ("--archive_url", "file:///tmp/x.tar.gz\nrelease: {}", "--archive_url=file:///tmp/x.tar.gz\\nrelease: {} contains "
     "control characters (\\n); pass it without them"),
    ("--archive_url", "ftp://example.com/x.tar.gz", "must start with https://, http://, file://"),
    ("--archive_url", "https://exa mple.com/x.tar.gz", "contains white space"),
    ("--requested_by", "ci\x1b[2K\rconvoy: error: forged", "--requested_by=ci\\x1b[2K\\rconvoy: error: forged "
     "contains control characters (\\r, \\x1b)"),
    ("--requested_by", "x" * 201, "--requested_by must be 1 to 200 characters (got 201)"),
    ("--version", "v1.5.0\n", "contains control characters (\\n)"),
    ("--strip_prefix", "../../etc", "--strip_prefix=../../etc must be a directory inside the archive"),
])
def test_submit_refuses_control_characters_and_bad_urls(hard, flag, value, message):
    it, _ = hard
    with checkout_store(it.checkout) as store, store.read() as tx:
        before = [(r.id, r.state) for r in tx.requests()]
    extra = ("--archive_url=https://example.com/x.tar.gz",) if flag == "--strip_prefix" else ()
    run = it.convoy("submit", "--component=planner", "--version=v2.2.0", "--configuration=rover", *extra,
                    f"{flag}={value}")
    assert run.code == 2, run
    assert len(run.err.splitlines()) == 1 and message in run.err, run.err
    with checkout_store(it.checkout) as store, store.read() as tx:
        assert [(r.id, r.state) for r in tx.requests()] == before


def test_a_process_lock_that_is_a_directory_is_one_line(hard):
    it, _ = hard
    lock = it.checkout / ".convoy" / "process.lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()
    try:
        run = it.process("--all")
    finally:
        lock.rmdir()
    assert run.code == 2, run
    assert run.err.count("\n") == 1 and "cannot open convoy's process lock" in run.err and "Traceback" not in run.err
