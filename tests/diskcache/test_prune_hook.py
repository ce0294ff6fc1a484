"""The prune after each build (convoy.queue.phases' Steps.build): a request
goes through the real queue (candidate, build, push, tag) in a real
integration repository, with a stand-in for Bazel; the disk cache is real.
A cache over its limit loses its least recently used entries and the queue
says so in one line; a prune that fails (the configured cache is a file) is
a warning, never the build's failure."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import pytest

from convoy.bazel import BazelResult, Outcome
from convoy.config import load_config
from convoy.queue import QueueContext, open_queue
from convoy.store import checkout_store

from tests.support.integration import config_text
from tests.support.queue import assert_merged_once, submit_rover

ONE_STAGE = "stages:\n  - {name: build, command: build, timeout: 300}\n"


def passing_bazel(workspace, command, targets, *, log_path, bep_path, flags, startup_flags, output_base, repo_env,
                  timeout, cancel, on_start, secret_env=(), pass_env=()):
    """run_bazel's stand-in: every task passes."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    Path(log_path).write_text("passed\n")
    return BazelResult(outcome=Outcome.PASSED, exit_code=0, duration=0.0, log_path=Path(log_path),
                       bep_path=Path(bep_path), targets=(), detail="passed")


@pytest.fixture(scope="module")
def it(make_integration):
    return make_integration("diskcache-hook", config_text(stages=ONE_STAGE))


def process(it, **cache) -> tuple[int, list[str]]:
    """Submits a rover bump and processes it with convoy.yaml's settings
    plus `cache` (Config fields); returns its id and the queue's lines."""
    config = dataclasses.replace(load_config(it.checkout / "convoy.yaml"), **cache)
    request_id = submit_rover(it)
    lines: list[str] = []
    with checkout_store(it.checkout) as store:
        manager = open_queue(QueueContext(it.checkout, config, store, out=lines.append, pool_check=None,
                                          run_bazel=passing_bazel))
        manager.start()
        try:
            assert manager.step() == request_id
        finally:
            manager.finish()
    assert_merged_once(it, request_id)
    return request_id, lines


def test_a_cache_over_its_limit_loses_its_least_recently_used_entries_after_the_build(it):
    cache = it.checkout / ".convoy" / "cache" / "bazel-disk"
    blobs = []
    for age in range(20, 0, -1):  # oldest first: 20,000 bytes
        data = os.urandom(1000)
        blob = cache / "cas" / f"{age:02x}" / f"{age:02x}{'0' * 62}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        os.utime(blob, (time.time() - 3600 * age,) * 2)
        blobs.append(blob)
    _, lines = process(it, bazel_disk_cache_max_gb=0.000015)  # 15,000 bytes: down to 13,500
    assert "convoy: disk cache over 0.015 MB: removed 7 files (0.007 MB), least recently used first" in lines, lines
    assert [b.exists() for b in blobs] == [False] * 7 + [True] * 13


def test_a_prune_that_fails_is_a_warning_and_the_build_goes_on(it, caplog):
    not_a_directory = it.checkout / ".convoy" / "cache" / "a-file"
    not_a_directory.parent.mkdir(parents=True, exist_ok=True)
    not_a_directory.write_text("the configured disk cache is a file\n")
    with caplog.at_level(logging.WARNING, logger="convoy.queue.phases"):
        _, lines = process(it, bazel_disk_cache=".convoy/cache/a-file")
    warnings = [r.getMessage() for r in caplog.records if r.name == "convoy.queue.phases"]
    assert len(warnings) == 1 and warnings[0].startswith("could not prune the Bazel disk cache ("), warnings
    assert "Not a directory" in warnings[0] and warnings[0].endswith("; the build goes on")
    assert not any("disk cache over" in line for line in lines), lines
    assert not_a_directory.read_text() == "the configured disk cache is a file\n"
