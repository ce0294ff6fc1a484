"""The Bazel disk cache every slot shares, the flags that let a test's result be reused, and its size.

    flags += cache_flags(config, checkout, "rover", flags)
    # ("--platform_suffix=rover", "--disk_cache=<checkout>/.convoy/cache/bazel-disk")
    pruned = prune_configured(config, checkout)   # after each build: None or a PruneResult

- `--platform_suffix=<configuration>`: each configuration's outputs get a
  directory of their own in an output base (bazel-out/k8-fastbuild-rover/).
  An output base keeps one result per output path, so without it a drone
  run evicts rover's cached test results (measured on Bazel 4.2.3: drone,
  rover, drone in one output base ran every test three times; with the
  suffix the second drone run is all cached, the local hardware test too).
  A local hardware test is tagged `cpu:1024` and `no-remote-exec` (one at a
  time, rules/private/stage.bzl), not `exclusive`: Bazel 4.2 never takes an
  `exclusive` test from a disk or remote cache.
- `--disk_cache` (convoy.yaml `bazel.disk_cache`): one cache for every slot
  and lane. Not for a task that executes remotely (`uses_remote_execution`):
  measured with `convoy lab up`, `bazel test --config=hil --remote_executor=
  grpc://127.0.0.1:<port> --disk_cache=<dir> //integration/...` exits 2 at
  once: "Cannot combine gRPC based remote execution with disk caching or
  HTTP-based caching". The lab's own cache does the job: flash_and_drive_test
  ran on rover-rigs-1 from output base A; the same command from output base
  B: "4 remote cache hit", every test cached, no new action on a worker (the
  drone: the same, on drone-rigs-1). `--remote_cache` with `--disk_cache` is
  accepted.

Bazel 4.2 never removes anything from a disk cache: `prune` does, after each
build, once it holds more than `bazel.disk_cache_max_gb` (GB: 10^9 bytes),
least recently used first (the later of atime and mtime: Bazel 4.2.3 does
not touch what it reads, the kernel's relatime moves an atime at most daily)
down to PRUNE_TO of the limit. Bazel 4.2.3 writes `ac/<2 hex>/<sha256>`
(action results), `cas/<2 hex>/<sha256>` (blobs), and a write in progress
as `<uuid>` at the top, renamed when complete (its DiskCacheClient); one
younger than TEMP_GRACE stays. An action result whose blob is gone is a
miss, and Bazel never replaces an action result, so for a test (its stderr
differs each run) the miss is for good (measured): an `ac/` entry naming a
blob the prune removed goes too. Symlinks are neither followed nor removed;
a removal opens each directory on its way without following a symlink. A
file that vanishes meanwhile (another Bazel or convoy) or cannot be read or
removed is skipped.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

from convoy.config import Config

PRUNE_TO = 0.9  # of the limit, once over it
TEMP_GRACE = 3600.0  # seconds: a younger in-progress write is left alone
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DIGEST = re.compile(rb"[0-9a-f]{64}")  # a digest's hash in a serialized ActionResult


def cache_path(config: Config, checkout: Path) -> Path | None:
    """The disk cache's directory (None: convoy.yaml turned it off)."""
    if config.bazel_disk_cache is None:
        return None
    return checkout / config.bazel_disk_cache  # an absolute path stays as it is


def cache_flags(config: Config, checkout: Path, configuration: str, flags: Sequence[str]) -> tuple[str, ...]:
    """The flags a task of `configuration` adds to `flags` (its own): the
    platform suffix and the disk cache, each unless `flags` already set it;
    no disk cache for a task that executes remotely."""
    added = []
    if not any(f.startswith("--platform_suffix") for f in flags):
        added.append(f"--platform_suffix={configuration}")
    path = cache_path(config, checkout)
    if path is not None and not any(f.startswith(("--disk_cache", "--nodisk_cache")) for f in flags) \
            and not uses_remote_execution(checkout, flags, config.bazel_startup_flags):
        added.append(f"--disk_cache={path}")
    return tuple(added)


def uses_remote_execution(checkout: Path, flags: Sequence[str], startup_flags: Sequence[str] = ()) -> bool:
    """Whether Bazel in `checkout` with `flags` gets a non-empty --remote_executor:
    the last of the unconditional lines of the bazelrc files (system, the
    checkout's, home, --bazelrc=; their imports), then of `flags` with each
    --config=<name> replaced by its lines (build, test, common)."""
    rcs = [Path("/etc/bazel.bazelrc"), checkout / ".bazelrc", Path.home() / ".bazelrc"]
    rcs += [Path(f.partition("=")[2]) for f in startup_flags if f.startswith("--bazelrc=")]
    configs: dict[str, list[str]] = {}
    for words in (words for rc in rcs for words in _rc_lines(rc, checkout, set())):
        command, _, name = words[0].partition(":")
        if command in ("common", "always", "build", "test"):
            configs.setdefault(name, []).extend(words[1:])
    executors = [f.partition("=")[2] for f in _expand([*configs.get("", ()), *flags], configs, 0)
                 if f.startswith("--remote_executor=")]
    return bool(executors and executors[-1])


def _rc_lines(path: Path, workspace: Path, seen: set[Path]) -> Iterator[list[str]]:
    """The words of each option line of bazelrc `path` and of what it imports."""
    if path in seen:
        return
    seen.add(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return
    for line in text.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if len(words) == 2 and words[0] in ("import", "try-import"):
            yield from _rc_lines(Path(words[1].replace("%workspace%", str(workspace))), workspace, seen)
        elif words:
            yield words


def _expand(flags: Sequence[str], configs: dict[str, list[str]], depth: int) -> Iterator[str]:
    """`flags` with --config=<name> replaced by its lines; `--flag value` as `--flag=value`."""
    words = list(flags)
    for i, flag in enumerate(words):
        if flag in ("--config", "--remote_executor") and i + 1 < len(words):
            words[i], words[i + 1] = f"{flag}={words[i + 1]}", ""
    for flag in words:
        if flag.startswith("--config=") and depth < 10:
            yield from _expand(configs.get(flag.partition("=")[2], ()), configs, depth + 1)
        elif flag:
            yield flag


@dataclass(frozen=True)
class PruneResult:
    """What one `prune` found and removed (bytes: file sizes)."""

    max_bytes: int
    files_before: int
    bytes_before: int
    files_removed: int = 0
    bytes_removed: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        """One line for the queue's output."""
        return (f"convoy: disk cache over {_size(self.max_bytes)}: removed {self.files_removed:,} files "
                f"({_size(self.bytes_removed)}), least recently used first")


def _size(count: int) -> str:
    return f"{count / 1e9:.3g} GB" if count >= 1e8 else f"{count / 1e6:.3g} MB"


def prune(path: Path, max_bytes: int) -> PruneResult:
    """Removes the least recently used entries of the disk cache at `path`
    until it holds at most PRUNE_TO of `max_bytes`, if it holds more (see
    the module docstring). Raises OSError only when `path` itself cannot be
    listed (missing, not a directory)."""
    started, now = time.monotonic(), time.time()
    entries = []  # (recency, size, parts under path)
    total = count = 0
    for parts, st in _files(path):
        total, count = total + st.st_size, count + 1
        recency = max(st.st_atime, st.st_mtime)
        if not (_UUID.fullmatch(parts[-1]) and now - recency < TEMP_GRACE):
            entries.append((recency, st.st_size, parts))
    removed_files = removed_bytes = 0
    if total > max_bytes:
        entries.sort(key=lambda e: e[0])
        blobs, kept = set(), len(entries)
        for index, (_, size, parts) in enumerate(entries):
            if total - removed_bytes <= max_bytes * PRUNE_TO:
                kept = index
                break
            if _unlink(path, parts):
                removed_files, removed_bytes = removed_files + 1, removed_bytes + size
                if parts[0] == "cas":
                    blobs.add(parts[-1].encode())
        for _, size, parts in entries[kept:] if blobs else ():
            if parts[0] == "ac" and _names_any(path.joinpath(*parts), blobs) and _unlink(path, parts):
                removed_files, removed_bytes = removed_files + 1, removed_bytes + size
    return PruneResult(max_bytes=max_bytes, files_before=count, bytes_before=total, files_removed=removed_files,
                       bytes_removed=removed_bytes, seconds=time.monotonic() - started)


def prune_configured(config: Config, checkout: Path) -> Optional[PruneResult]:
    """`prune` with convoy.yaml's cache and limit; None when the cache is off or not there yet."""
    path = cache_path(config, checkout)
    if path is None or not os.path.lexists(path):
        return None
    return prune(path, int(config.bazel_disk_cache_max_gb * 1e9))


def _files(root: Path) -> Iterator[tuple[tuple[str, ...], os.stat_result]]:
    """(parts under root, lstat) of each regular file Bazel writes there: ac/*/*, cas/*/* and <uuid>."""
    with os.scandir(root) as it:  # the one OSError that prune lets through
        top = list(it)
    for entry in top:
        if entry.name in ("ac", "cas") or _UUID.fullmatch(entry.name):
            yield from _tree(entry, (entry.name,), 2 if entry.name in ("ac", "cas") else 0)


def _tree(entry: os.DirEntry, parts: tuple[str, ...], depth: int) -> Iterator[tuple[tuple[str, ...], os.stat_result]]:
    """The regular files `depth` directories below `entry`, never through a symlink."""
    try:
        if depth == 0:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                yield parts, st
        elif entry.is_dir(follow_symlinks=False):
            with os.scandir(entry.path) as it:
                children = list(it)
            for child in children:
                yield from _tree(child, (*parts, child.name), depth - 1)
    except OSError:  # vanished meanwhile (another Bazel or convoy), or unreadable
        return


def _names_any(path: Path, blobs: set[bytes]) -> bool:
    """Whether the action result at `path` names one of `blobs`."""
    try:
        return any(digest in blobs for digest in _DIGEST.findall(path.read_bytes()))
    except OSError:
        return False


def _unlink(root: Path, parts: tuple[str, ...]) -> bool:
    """Removes root/<parts>, opening each directory on the way without following a symlink; False if it failed."""
    fds: list[int] = []
    try:
        fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY))
        for part in parts[:-1]:
            fds.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fds[-1]))
        os.unlink(parts[-1], dir_fd=fds[-1])
        return True
    except OSError:
        return False
    finally:
        for fd in fds:
            os.close(fd)
