"""Where releases are kept: a directory, or any URL scheme a plugin provides.

    store = open_artifact_store(config.release.store, checkout)   # ".convoy/releases", "/srv/releases", "file:///srv/releases"
    store.publish("v2026.12.1", staged)      # staged: a directory holding the release's files (convoy.release_layout)
    store.open("v2026.12.1")                 # a local directory with them (a plugin may download a copy)
    store.tags()                             # every release it holds, sorted by name
    store.remove("v2026.12.1", ["rover/product.tar"])   # `convoy release prune`

A plugin is a class registered under the entry point group
`convoy.artifact_stores`, named by its URL scheme (for example `s3 =
mypkg.stores:S3Store`), constructed with the store URL and the checkout,
with the methods of ArtifactStore. `publish` must be idempotent and leave
either the whole release or nothing under its tag.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Iterable, Protocol
from urllib.parse import unquote, urlparse

from convoy.errors import ConvoyError, InfraError

ENTRY_POINT_GROUP = "convoy.artifact_stores"


class ArtifactStore(Protocol):
    url: str

    def publish(self, tag: str, staged: Path) -> None: ...

    def open(self, tag: str) -> Path: ...

    def tags(self) -> list[str]: ...

    def remove(self, tag: str, names: Iterable[str]) -> None: ...


class DirectoryStore:
    """Releases under a local directory: <root>/<tag>/... (the default store)."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url

    def publish(self, tag: str, staged: Path) -> None:
        """Copies `staged` to <root>/<tag> through a temporary directory renamed
        into place: a release is there whole or not at all. A release already
        there is left as it is (a resumed driver publishes once)."""
        _check_tag(tag)
        final = self.root / tag
        if final.is_dir():
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(prefix=f".{tag}.partial-", dir=self.root))
            try:
                shutil.copytree(staged, partial, dirs_exist_ok=True)
                os.replace(partial, final)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
        except OSError as e:
            if final.is_dir():  # another driver published it meanwhile
                return
            raise InfraError(f"cannot publish release {tag} to {self.root}: {e.strerror or e}; "
                             "check that the release store is writable (release.store in convoy.yaml)") from None

    def open(self, tag: str) -> Path:
        _check_tag(tag)
        path = self.root / tag
        if not path.is_dir():
            raise ConvoyError(f"release {tag} is not in the release store {self.root}; "
                              "run convoy release list to see the releases it holds")
        return path

    def tags(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def remove(self, tag: str, names: Iterable[str]) -> None:
        base = self.open(tag)
        for name in names:
            path = (base / name)
            if base.resolve() not in path.resolve().parents:
                raise ConvoyError(f"{name} is not a file of release {tag}")
            path.unlink(missing_ok=True)
            parent = path.parent
            while parent != base and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


def open_artifact_store(url: str, checkout: Path) -> ArtifactStore:
    """The store `url` names (release.store): a path (relative to `checkout`),
    a file:// URL, or a URL whose scheme a plugin registered."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # a path (C: would be a drive letter)
        path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(os.path.expanduser(url))
        return DirectoryStore(path if path.is_absolute() else checkout / path, url)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == parsed.scheme:
            try:
                factory = entry.load()
                return factory(url, checkout)
            except Exception as e:
                raise ConvoyError(f"the release store plugin for {parsed.scheme}:// ({entry.value}) failed to "
                                  f"load: {e}; fix or reinstall it") from None
    raise ConvoyError(f"release.store {url}: no plugin provides {parsed.scheme}:// URLs; use a directory, file:// "
                      f"or install a plugin registering '{parsed.scheme}' under {ENTRY_POINT_GROUP}")


def _check_tag(tag: str) -> None:
    if not tag or tag.startswith(".") or "/" in tag or "\\" in tag or not tag.isprintable():
        raise ConvoyError(f"'{tag}' is not a release tag name")
