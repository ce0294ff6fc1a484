"""convoy.yaml's `logs_url:` (where each task's log is copied for every worker, convoy.task_logs):
a directory, absolute or relative to the checkout, or file:///<absolute path>; anything else is
one line that says how to write it. And the places convoy.task_logs names from it, on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from convoy import task_logs
from convoy.config import parse_config
from convoy.errors import ConvoyError
from convoy.models import Task, TaskState


@pytest.mark.parametrize("url", ["/srv/convoy/logs", "shared/logs", "file:///srv/convoy/logs"])
def test_a_logs_url_is_kept(url):
    assert parse_config(f"logs_url: {url}\n", "convoy.yaml").logs_url == url


def test_without_it_the_logs_stay_in_the_checkout(tmp_path):
    config = parse_config("", "convoy.yaml")
    assert config.logs_url is None and task_logs.logs_dir(config, tmp_path) is None


@pytest.mark.parametrize("text, wanted", [
    ("logs_url: s3://bucket/logs\n", "convoy.yaml:1: logs_url: 's3://bucket/logs' is not a directory; write it like "
                                     "logs_url: /srv/convoy/logs (a shared directory), or logs_url: "
                                     "file:///<absolute path>"),
    ("logs_url: file://relative/logs\n", "is not a directory"),
    ("logs_url: 7\n", "convoy.yaml:1: logs_url: must be a string, not a number"),
    ("logs_url:\n", "convoy.yaml:1: logs_url: has no value"),
])
def test_a_wrong_logs_url_is_one_line(text, wanted):
    with pytest.raises(ConvoyError) as error:
        parse_config(text, "convoy.yaml")
    assert wanted in str(error.value) and "\n" not in str(error.value)


def _task(log_path):
    return Task(id=1, stage_id=1, build_id=1, configuration="rover", state=TaskState.FAILED, slot=0, pid=None,
                outcome="BUILD_FAILURE", exit_code=1, log_path=log_path, bep_path=None, targets=(), detail=None,
                runs=1, started_at=1.0, finished_at=2.0)


def test_the_shared_copy_is_named_and_written_whole(tmp_path):
    root = tmp_path / "clone"
    local = root / ".convoy" / "logs" / "request-3" / "build-2" / "build-rover.log"
    local.parent.mkdir(parents=True)
    local.write_bytes(b"line\n" * 5000 + b"caf\xc3\xa9 \xff\x00\n")  # 25 KiB, a bad byte and a NUL at the end
    for url, base in (("shared", root / "shared"), (f"file://{tmp_path}/nfs", tmp_path / "nfs")):
        config = parse_config(f"logs_url: {url}\n", "convoy.yaml")
        assert task_logs.share(config, root, local) is None
        copy = task_logs.shared_log(config, root, _task(str(local)))
        assert copy == base / "request-3" / "build-2" / "build-rover.log"
        assert copy.read_bytes() == local.read_bytes() and not copy.with_name(copy.name + ".partial").exists()
        assert task_logs.shared_log(config, root, _task("/etc/passwd")) is None  # not a log of convoy's
        assert task_logs.shared_log(config, root, _task(None)) is None
    tail = task_logs.read_tail(local)
    assert len(tail) <= task_logs.TAIL_BYTES and tail.startswith("line\n")  # from a line's start
    assert tail.endswith("caf\u00e9 \ufffd\ufffd\n")
    assert task_logs.read_tail(tmp_path / "none.log") is None


def test_a_copy_that_fails_is_one_line(tmp_path):
    root = tmp_path / "clone"
    local = root / ".convoy" / "logs" / "request-1" / "build-1" / "build-rover.log"
    local.parent.mkdir(parents=True)
    local.write_text("log\n")
    (tmp_path / "blocked").write_text("a file, not a directory")
    config = parse_config(f"logs_url: {tmp_path / 'blocked'}\n", "convoy.yaml")
    problem = task_logs.share(config, root, local)
    assert problem.startswith("convoy: could not copy the log build-rover.log to logs_url ") and "\n" not in problem
    assert problem.endswith("make logs_url a directory this worker can write")
    assert not Path(str(tmp_path / "blocked") + ".partial").exists()
