"""convoy.diskcache without Bazel: the flags a task gets (the user's own win,
relative and absolute paths, off, none with remote execution) and the size
policy on real files (least recently used first down to 90%, symlinks,
vanished files, in-progress writes, action results that name a removed blob).
What Bazel itself does with the cache: test_bazel_cache.py."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from convoy import diskcache
from convoy.config import parse_config
from convoy.diskcache import PruneResult, cache_flags, prune, prune_configured, uses_remote_execution

from tests.support import REPO

NOW = time.time()


def config(text: str = "", path: Path = Path("/nowhere/convoy.yaml")):
    return parse_config(text, str(path))


def entry(root: Path, kind: str, size: int, age: float, *, atime_age: float | None = None,
          content: bytes | None = None, name: str | None = None) -> Path:
    """A file under root/<kind>/<2 hex>/<sha256> (or `name` at the top) of
    `size` bytes, last modified `age` seconds ago (read `atime_age` ago)."""
    data = content if content is not None else os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()
    path = root / name if name else root / kind / digest[:2] / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (NOW - (age if atime_age is None else atime_age), NOW - age))
    return path


# -- the flags ----------------------------------------------------------------------------


def test_a_task_gets_its_platform_suffix_and_the_shared_cache_under_the_checkout(tmp_path):
    assert cache_flags(config(), tmp_path, "rover", ("--keep_going",)) == (
        "--platform_suffix=rover", f"--disk_cache={tmp_path / '.convoy/cache/bazel-disk'}")


def test_a_relative_cache_is_under_the_checkout_and_an_absolute_one_stays(tmp_path):
    relative = cache_flags(config("bazel: {disk_cache: cache/here}"), tmp_path, "drone", ())
    absolute = cache_flags(config("bazel: {disk_cache: /var/cache/convoy}"), tmp_path, "drone", ())
    assert relative[1] == f"--disk_cache={tmp_path / 'cache/here'}"
    assert absolute[1] == "--disk_cache=/var/cache/convoy"


def test_the_users_own_flags_win(tmp_path):
    assert cache_flags(config(), tmp_path, "rover", ("--platform_suffix=mine", "--disk_cache=/mine")) == ()
    assert cache_flags(config(), tmp_path, "rover", ("--disk_cache=",)) == ("--platform_suffix=rover",)
    assert cache_flags(config(), tmp_path, "rover", ("--nodisk_cache",)) == ("--platform_suffix=rover",)


def test_disk_cache_false_turns_it_off(tmp_path):
    off = config("bazel: {disk_cache: false}")
    assert off.bazel_disk_cache is None
    assert cache_flags(off, tmp_path, "rover", ()) == ("--platform_suffix=rover",)
    assert prune_configured(off, tmp_path) is None


def test_no_disk_cache_for_a_task_that_executes_remotely(tmp_path):
    # Bazel 4.2.3: "Cannot combine gRPC based remote execution with disk caching" (exit 2).
    (tmp_path / ".bazelrc").write_text(
        "build --keep_going\n"
        "build:hil --remote_executor=grpc://127.0.0.1:50051\n"
        "build:spaced --remote_executor grpc://lab:50051  # the two-word form\n"
        "build:both --config=hil\n"
        "try-import %workspace%/user.bazelrc\n"
    )
    (tmp_path / "user.bazelrc").write_text("test:mine \\\n  --remote_executor=grpcs://lab.example.com\n")
    for flags in [("--config=hil",), ("--config=spaced",), ("--config=both",), ("--config=mine",),
                  ("--remote_executor=grpc://other:1",)]:
        assert uses_remote_execution(tmp_path, flags), flags
        assert cache_flags(config(), tmp_path, "rover", flags) == ("--platform_suffix=rover",), flags
    for flags in [(), ("--config=drone",), ("--config=hil", "--remote_executor="),
                  ("--remote_cache=grpc://cache:1",)]:
        assert not uses_remote_execution(tmp_path, flags), flags
        assert len(cache_flags(config(), tmp_path, "rover", flags)) == 2, flags


def test_an_executor_for_every_command_or_in_a_named_bazelrc_counts(tmp_path):
    (tmp_path / ".bazelrc").write_text("common --remote_executor=grpc://lab:1\n")
    assert uses_remote_execution(tmp_path, ())
    (tmp_path / ".bazelrc").unlink()
    (tmp_path / "extra.bazelrc").write_text("build:x --remote_executor=grpc://lab:1\n")
    with_rc = config(f"bazel: {{startup_flags: [--bazelrc={tmp_path / 'extra.bazelrc'}]}}")
    assert cache_flags(with_rc, tmp_path, "rover", ("--config=x",)) == ("--platform_suffix=rover",)
    assert not uses_remote_execution(tmp_path, ("--config=x",))


def test_this_repositorys_hil_config_executes_remotely():
    assert uses_remote_execution(REPO, ("--config=hil",))
    assert not uses_remote_execution(REPO, ("--config=bazel4",))


# -- the size policy --------------------------------------------------------------------------


def test_nothing_goes_while_the_cache_is_within_its_limit(tmp_path):
    files = [entry(tmp_path, "cas", 1000, age=3600 * i) for i in range(10)]
    result = prune(tmp_path, 10_000)
    assert (result.files_before, result.bytes_before, result.files_removed, result.bytes_removed) == (10, 10_000, 0, 0)
    assert all(f.exists() for f in files)


def test_the_least_recently_used_go_first_until_90_percent_is_left(tmp_path):
    by_age = [entry(tmp_path, "cas" if i % 2 else "ac", 1000, age=3600 * i) for i in range(12)]  # 12,000 bytes
    result = prune(tmp_path, 10_000)  # over: down to 9,000
    assert (result.files_before, result.bytes_before) == (12, 12_000)
    assert (result.files_removed, result.bytes_removed) == (3, 3000)
    assert [f.exists() for f in by_age] == [True] * 9 + [False] * 3
    assert isinstance(result, PruneResult) and result.seconds >= 0
    assert result.line() == "convoy: disk cache over 0.01 MB: removed 3 files (0.003 MB), least recently used first"


def test_a_recent_read_counts_like_a_recent_write(tmp_path):
    read_lately = entry(tmp_path, "cas", 1000, age=10 * 86400, atime_age=60)
    written_lately = entry(tmp_path, "cas", 1000, age=3600)
    older = entry(tmp_path, "cas", 1000, age=2 * 86400)
    prune(tmp_path, 2500)
    assert read_lately.exists() and written_lately.exists() and not older.exists()


def test_the_line_for_a_big_cache():
    result = PruneResult(max_bytes=10 * 10**9, files_before=9, bytes_before=11 * 10**9, files_removed=1234,
                         bytes_removed=2_100_000_000)
    assert result.line() == ("convoy: disk cache over 10 GB: removed 1,234 files (2.1 GB), least recently used "
                             "first")


def test_a_symlink_is_neither_followed_nor_removed(tmp_path):
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    precious = entry(outside, "", 5000, age=30 * 86400, name="precious")
    old_dir = outside / "old"
    entry(old_dir, "", 5000, age=30 * 86400, name="f" * 64)
    link = cache / "cas" / "ab" / ("ab" + "0" * 62)
    link.parent.mkdir(parents=True)
    link.symlink_to(precious)
    (cache / "cas" / "cd").symlink_to(old_dir, target_is_directory=True)
    (cache / "ac").symlink_to(old_dir, target_is_directory=True)
    blob = entry(cache, "cas", 0, age=60, content=b"a blob")  # in cas/55/, beside the symlinks
    result = prune(cache, 1)
    assert result.files_before == 1 and result.files_removed == 1 and not blob.exists()
    assert precious.exists() and (old_dir / ("f" * 64)).exists()
    assert link.is_symlink() and (cache / "cas" / "cd").is_symlink() and (cache / "ac").is_symlink()


def test_only_what_bazel_writes_is_counted_and_removed(tmp_path):
    mine = entry(tmp_path, "", 5000, age=30 * 86400, name="README")
    deeper = entry(tmp_path / "cas" / "ab", "", 5000, age=30 * 86400, name="nested/deeper")
    old = entry(tmp_path, "cas", 1000, age=60)
    result = prune(tmp_path, 100)
    assert (result.files_before, result.files_removed) == (1, 1)
    assert mine.exists() and deeper.exists() and not old.exists()


def test_a_file_that_vanishes_meanwhile_is_skipped(tmp_path, monkeypatch):
    files = [entry(tmp_path, "cas", 1000, age=3600 * (10 - i)) for i in range(10)]  # files[0] is the oldest
    walk = diskcache._files

    def walk_then_someone_removes_the_oldest(root):
        yield from walk(root)
        files[0].unlink()  # another convoy pruned it after this one listed it

    monkeypatch.setattr(diskcache, "_files", walk_then_someone_removes_the_oldest)
    result = prune(tmp_path, 8000)  # 10,000 bytes: down to 7,200, it removes 3 (the vanished one not counted)
    assert (result.files_removed, result.bytes_removed) == (3, 3000)
    assert [f.exists() for f in files] == [False] * 4 + [True] * 6


def test_a_young_write_in_progress_stays_and_an_old_one_goes(tmp_path):
    young = entry(tmp_path, "", 5000, age=60, name="0b5e6d0e-3c1a-4c36-9f0a-5d2c1b7e8a90")
    stale = entry(tmp_path, "", 5000, age=2 * 3600, name="9a1f0c2e-7b3d-4e5f-8a6b-1c2d3e4f5a6b")
    blob = entry(tmp_path, "cas", 1000, age=3600)
    result = prune(tmp_path, 2000)
    assert (result.files_before, result.bytes_before) == (3, 11_000)
    assert young.exists() and not stale.exists() and not blob.exists()
    assert result.files_removed == 2


def test_an_action_result_that_names_a_removed_blob_goes_with_it(tmp_path):
    old_blob = entry(tmp_path, "cas", 3000, age=10 * 86400)
    kept_blob = entry(tmp_path, "cas", 1000, age=60)
    names_old = entry(tmp_path, "ac", 200, age=60, content=b"\x32\x44\x0a\x40" + old_blob.name.encode() + b"\x10\x01")
    names_kept = entry(tmp_path, "ac", 200, age=60, content=b"\x0a\x40" + kept_blob.name.encode() + b"\x10\x02")
    result = prune(tmp_path, 3000)  # 4,138 bytes: the old blob alone brings it under 2,700
    assert not old_blob.exists() and not names_old.exists()
    assert kept_blob.exists() and names_kept.exists()
    assert (result.files_removed, result.bytes_removed) == (2, 3000 + 70)


def test_a_missing_cache_is_nothing_and_a_file_is_an_error(tmp_path):
    configured = config("bazel: {disk_cache: cache, disk_cache_max_gb: 0.000001}")
    assert prune_configured(configured, tmp_path) is None
    (tmp_path / "cache").write_text("not a directory")
    with pytest.raises(NotADirectoryError):
        prune_configured(configured, tmp_path)


def test_prune_configured_applies_convoy_yamls_limit(tmp_path):
    files = [entry(tmp_path / "cache", "cas", 500, age=60 * (5 - i)) for i in range(5)]  # 2,500 bytes
    result = prune_configured(config("bazel: {disk_cache: cache, disk_cache_max_gb: 0.000002}"), tmp_path)
    assert result is not None and result.max_bytes == 2000
    assert (result.files_removed, result.bytes_removed) == (2, 1000)
    assert [f.exists() for f in files] == [False, False, True, True, True]
    assert prune_configured(config("bazel: {disk_cache: cache}"), tmp_path).files_removed == 0
