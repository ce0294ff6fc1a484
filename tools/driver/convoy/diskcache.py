"""The Bazel disk cache every slot shares, and the flags that let a test's result be reused.

    flags += cache_flags(config, checkout, "rover", flags)
    # ("--platform_suffix=rover", "--disk_cache=<checkout>/.convoy/cache/bazel-disk")

Two things keep a test from running again when its inputs did not change:

- `--platform_suffix=<configuration>`: each configuration's outputs get a
  directory of their own in an output base (bazel-out/k8-fastbuild-rover/).
  An output base's action cache keeps one result per output path, so
  without it a drone run evicts rover's cached test results (measured on
  Bazel 4.2.3: drone, rover, drone again in one output base ran every test
  three times; with the suffix the second drone run is all cached). This
  also covers tests tagged `exclusive` (local hardware tests), which Bazel
  4.2 never takes from a disk or remote cache.
- `--disk_cache` (convoy.yaml `bazel.disk_cache`, default
  .convoy/cache/bazel-disk): one cache for every slot and every lane, so a
  configuration that runs on another slot still finds its results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from convoy.config import Config


def cache_path(config: Config, checkout: Path) -> Path | None:
    """The disk cache's directory (None: convoy.yaml turned it off)."""
    if config.bazel_disk_cache is None:
        return None
    return checkout / config.bazel_disk_cache  # an absolute path stays as it is


def cache_flags(config: Config, checkout: Path, configuration: str, flags: Sequence[str]) -> tuple[str, ...]:
    """The flags a task of `configuration` adds to `flags` (its own): the
    platform suffix and the disk cache, each unless `flags` already set it."""
    added = []
    if not any(f.startswith("--platform_suffix") for f in flags):
        added.append(f"--platform_suffix={configuration}")
    path = cache_path(config, checkout)
    if path is not None and not any(f.startswith(("--disk_cache", "--nodisk_cache")) for f in flags):
        added.append(f"--disk_cache={path}")
    return tuple(added)
