"""Resolving one component version to an immutable pin: git (a commit, with
one `git ls-remote` per remote for all the versions it serves), archive
(the sha256 of its bytes), local (an existing directory).

`Resolver` is convoy.lock's worker: `lock_manifest` lists the remotes once
(`list_remotes`), then asks `pin(component)` of every component version it
does not keep from the previous lock. `declared(component)` is the part of
a pin the manifest itself determines. `remote_has_commit` answers `convoy
submit --commit` from a bare mirror of a remote's branches and tags.
"""

from __future__ import annotations

import contextvars
import hashlib
import posixpath
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Optional

from convoy import fetch
from convoy import gitutil
from convoy.errors import ConvoyError
from convoy.manifest import Component, Manifest

CACHE_DIR = ".convoy/cache/git"  # under the integration repo root
REMOTE_THREADS = 8  # git remotes listed at a time by lock_manifest


def declared(component: Component) -> dict[str, str]:
    """The fields of a component's pin that the manifest itself determines."""
    pin = {"source": component.source, "version": component.version}
    if component.source == "git":
        pin["remote"] = component.remote
        if component.commit is not None:
            pin["commit"] = component.commit
    elif component.source == "archive":
        pin["url"] = component.url
        if component.strip_prefix is not None:
            pin["strip_prefix"] = component.strip_prefix
        if component.sha256 is not None:
            pin["sha256"] = component.sha256
    else:
        pin["path"] = posixpath.normpath(component.path)
    return pin


class Resolver:
    """Resolves one component version at a time; each failure is a
    ConvoyError of one line that names the component.

    `list_remotes` first lists the branches and tags of every git remote
    the components use, one `git ls-remote` per remote; `git_commit` then
    reads a version there. A version of a remote not listed (a component
    `list_remotes` was not given) costs an ls-remote of its own."""

    def __init__(self, manifest: Manifest, root: Path, timeout: float, cache_root: Optional[Path] = None) -> None:
        self.manifest = manifest
        self.root = root
        self.cache_root = cache_root or root
        self.timeout = timeout
        self.mirrored: set[str] = set()  # remotes fetched into the cache in this run
        # remote -> {version: VersionRefs}, or the GitError of its ls-remote
        self.listed: dict[str, dict[str, gitutil.VersionRefs] | gitutil.GitError] = {}

    def at(self, component: Component, key: str) -> str:
        return f"{self.manifest.path}:{component.line_of(key)}"

    def list_remotes(self, components: Iterable[Component]) -> None:
        """Resolves the versions of the git `components` with one ls-remote
        per distinct remote, REMOTE_THREADS remotes at a time. Failures are
        kept, for `git_commit` to report per component."""
        versions: dict[str, set[str]] = {}
        for c in components:
            versions.setdefault(c.remote, set()).add(c.version)
        if not versions:
            return

        def list_one(remote: str) -> dict[str, gitutil.VersionRefs] | gitutil.GitError:
            try:
                return gitutil.versions_refs(remote, versions[remote], cwd=self.root, timeout=self.timeout)
            except gitutil.GitError as e:
                return e

        if len(versions) == 1:
            (remote,) = versions
            self.listed[remote] = list_one(remote)
            return
        # Each task runs in a copy of this context: its git time goes on the
        # request's meter (convoy.timing), overlapping calls counted once.
        with ThreadPoolExecutor(max_workers=min(REMOTE_THREADS, len(versions)),
                                thread_name_prefix="convoy-ls-remote") as pool:
            futures = {remote: pool.submit(contextvars.copy_context().run, list_one, remote) for remote in versions}
        for remote, future in futures.items():
            self.listed[remote] = future.result()

    def pin(self, component: Component) -> dict[str, str]:
        pin = declared(component)
        if component.source == "git":
            pin["commit"] = self.git_commit(component)
        elif component.source == "archive":
            pin["sha256"] = self.archive_sha256(component)
        elif not (self.root / pin["path"]).is_dir():
            raise ConvoyError(
                f"component '{component.name}': directory {pin['path']} does not exist; create it, or fix the "
                f"path at {self.at(component, 'path')} or the version at {self.at(component, 'version')}"
            )
        elif not (self.root / pin["path"]).resolve().is_relative_to(self.root.resolve()):
            raise ConvoyError(
                f"component '{component.name}': directory {pin['path']} is a link to "
                f"{(self.root / pin['path']).resolve()}, outside the integration repository; fix the path at "
                f"{self.at(component, 'path')}"
            )
        return pin

    def version_refs(self, c: Component) -> gitutil.VersionRefs:
        """What c.remote says of c.version: from `list_remotes`, else from an
        ls-remote of its own. Raises GitError."""
        listed = self.listed.get(c.remote)
        if isinstance(listed, gitutil.GitError):
            raise listed.with_traceback(None)  # the same error for each of its components
        if listed is not None and c.version in listed:
            return listed[c.version]
        return gitutil.version_refs(c.remote, c.version, cwd=self.root, timeout=self.timeout)

    def git_commit(self, c: Component) -> str:
        try:
            refs = self.version_refs(c)
        except gitutil.GitError as e:
            raise self.unreachable(c, e) from None
        tagged, found = refs.tagged, refs.found
        if c.commit is None:
            if found is None:
                raise ConvoyError(
                    f"component '{c.name}': version {c.version} is neither a tag nor a branch of {c.remote}; "
                    f"push the tag or fix the version at {self.at(c, 'version')}"
                )
            return found
        if tagged is not None and tagged != c.commit:
            raise ConvoyError(
                f"component '{c.name}': tag {c.version} of {c.remote} is commit {tagged}, but the manifest pins "
                f"commit {c.commit}; fix the commit at {self.at(c, 'commit')} or the version at {self.at(c, 'version')}"
            )
        if c.commit != found and not self.remote_has_commit(c):
            raise ConvoyError(
                f"component '{c.name}': commit {c.commit} does not exist in {c.remote} (on none of its branches "
                f"or tags); push it or fix the commit at {self.at(c, 'commit')}"
            )
        return c.commit

    def remote_has_commit(self, c: Component) -> bool:
        """Mirrors the remote's branches and tags into a bare cache repository
        (once per run) and looks for the commit there."""
        try:
            return remote_has_commit(c.remote, c.commit, root=self.root, cache_root=self.cache_root,
                                     timeout=self.timeout, mirror=c.remote not in self.mirrored)
        except gitutil.GitError as e:
            raise self.unreachable(c, e) from None
        finally:
            self.mirrored.add(c.remote)

    def unreachable(self, c: Component, error: gitutil.GitError) -> ConvoyError:
        return ConvoyError(
            f"component '{c.name}': cannot reach remote {c.remote} (git: {error.detail}); "
            f"check the remote in {self.at(c, 'remote')} or your network"
        )

    def archive_sha256(self, c: Component) -> str:
        with tempfile.TemporaryDirectory(prefix="convoy-lock-") as tmp:
            try:
                download = fetch.download(c.url, tmp, timeout=self.timeout)
            except fetch.FetchError as e:
                raise ConvoyError(
                    f"component '{c.name}': cannot download {c.url} ({e}); "
                    f"check the url in {self.at(c, 'url')} or your network"
                ) from None
            if c.sha256 is not None and download.sha256 != c.sha256:
                raise ConvoyError(
                    f"component '{c.name}': {c.url} has sha256 {download.sha256}, but the manifest says {c.sha256}; "
                    f"if this archive is the right one, update the sha256 at {self.at(c, 'sha256')}"
                )
            if c.strip_prefix is not None:
                self.check_strip_prefix(c, download.path)
        return download.sha256

    def check_strip_prefix(self, c: Component, archive: Path) -> None:
        try:
            names = fetch.archive_names(archive)
        except fetch.FetchError as e:
            raise ConvoyError(
                f"component '{c.name}': {c.url}: {e}, so strip_prefix cannot apply; fix the url at "
                f"{self.at(c, 'url')} or remove the strip_prefix at {self.at(c, 'strip_prefix')}"
            ) from None
        if not fetch.has_entries_under(names, c.strip_prefix):
            top = sorted({name.split("/", 1)[0] for name in names if name})
            shown = ", ".join(top[:5]) + (", ..." if len(top) > 5 else "") or "none, it is empty"
            raise ConvoyError(
                f"component '{c.name}': {c.url} has nothing under strip_prefix '{c.strip_prefix}' (its top-level "
                f"entries: {shown}); fix the strip_prefix at {self.at(c, 'strip_prefix')}"
            )


def remote_has_commit(
    remote: str,
    commit: str,
    *,
    root: Path,
    cache_root: Optional[Path] = None,
    timeout: float = gitutil.DEFAULT_TIMEOUT,
    mirror: bool = True,
) -> bool:
    """Whether `commit` is on a branch or tag of `remote`, looked up in a
    bare mirror of the remote's branches and tags under
    `<cache_root or root>/.convoy/cache/git/` (refreshed when `mirror`).
    `remote` is a URL or an absolute path (see untrusted.remote_problem).
    Raises gitutil.GitError if the remote cannot be fetched."""
    git_dir = (cache_root or root) / CACHE_DIR / f"{hashlib.sha256(remote.encode()).hexdigest()[:16]}.git"
    if mirror or not git_dir.is_dir():
        git_dir.parent.mkdir(parents=True, exist_ok=True)
        gitutil.fetch_branches_and_tags(git_dir, remote, cwd=root, timeout=timeout)
    return gitutil.is_reachable_commit(git_dir, commit, timeout=timeout)
