"""The candidate: the integration repository's branch tip plus one bump, re-locked and committed.

The candidate is made, tested and merged as one commit: what passed is
exactly what the branch gets. It is made on the base commit the queue mode
gives (the serial mode: the branch tip), in a worktree of the integration
checkout of its own lane: `<checkout>/.convoy/worktrees/candidate` for lane
0, `candidate-<k>` for lane k, so that several candidates can exist at once.
A lane's worktree is reused for each candidate it holds (reset and cleaned
each time; a half-made one left by a crash is removed and made again), so
Bazel's output bases always see the same workspace path:

    tip = fetch_branch(checkout, "origin", "main")
    candidate = make_candidate(checkout, request, tip)     # commit "Bump messages to v1.5.0 (request 3)"
    ...                                                   # test candidate.worktree
    worktree = prepare_worktree(checkout, candidate.commit)   # after a restart: the same tree again

Each candidate commit is also kept under `refs/convoy/requests/<id>`, so
that git never prunes a commit the driver may resume or merge.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from convoy import fsutil
from convoy import gitutil
from convoy.errors import ConvoyError
from convoy.lock import LOCK_NAME, Lock, lock_manifest, read_lock, write_lock
from convoy.manifest import Manifest
from convoy.models import Request

WORKTREE = Path(".convoy") / "worktrees" / "candidate"
MANIFEST = "manifests/manifest.yaml"
LOCK = f"manifests/{LOCK_NAME}"
# Machine-local Bazel settings a checkout keeps out of git; copied into the worktree.
LOCAL_FILES = (".bazelrc.local", "user.bazelrc")
DEFAULT_IDENTITY = ("convoy", "convoy@localhost")
REQUEST_REF = "refs/convoy/requests/{id}"


class CandidateRejected(Exception):
    """The request cannot become a candidate (its bump does not apply, or
    changes nothing): a rejection, not an infrastructure error."""


@dataclass(frozen=True)
class Candidate:
    worktree: Path
    base_commit: str
    commit: str
    lock: Lock
    manifest: Manifest  # the bumped manifest, as loaded
    previous_lock: Optional[Lock] = None  # the base's lock (None: unreadable)


def git(args: list[str], cwd: Path, **kwargs) -> str:
    """Runs git; returns stripped stdout; raises gitutil.GitError."""
    return gitutil.run(args, cwd=cwd, **kwargs).stdout.strip()


def fetch_branch(checkout: Path, remote: str, branch: str) -> str:
    """Fetches `branch` of `remote` into refs/remotes/<remote>/<branch>; returns its commit."""
    refspec = f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}"
    git(["fetch", "--quiet", "--no-tags", "--", remote, refspec], checkout)
    return git(["rev-parse", "--verify", "--end-of-options", f"refs/remotes/{remote}/{branch}^{{commit}}"], checkout)


def remote_branch(checkout: Path, remote: str, branch: str) -> Optional[str]:
    """The commit `branch` is at on `remote` right now (None if it has no such branch)."""
    ref = f"refs/heads/{branch}"
    return gitutil.ls_remote(remote, [ref], cwd=checkout).get(ref)


def remote_tags(checkout: Path, remote: str) -> dict[str, str]:
    """Tag name -> the commit it points at (annotated tags peeled), on `remote`."""
    out = git(["ls-remote", "--tags", "--", remote], checkout)
    tags: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if not ref.startswith("refs/tags/"):
            continue
        name = ref[len("refs/tags/"):]
        if name.endswith("^{}"):
            tags[name[:-3]] = sha
        else:
            tags.setdefault(name, sha)
    return tags


def identity_args(checkout: Path) -> list[str]:
    """`-c user.name=... -c user.email=...` unless the checkout's git has an identity."""
    configured = gitutil.run(["config", "user.email"], cwd=checkout, check=False).stdout.strip()
    if configured or os.environ.get("GIT_COMMITTER_EMAIL"):
        return []
    name, email = DEFAULT_IDENTITY
    return ["-c", f"user.name={name}", "-c", f"user.email={email}"]


def worktree_path(checkout: Path, lane: int = 0) -> Path:
    """The candidate worktree of `lane`."""
    return checkout / (WORKTREE if lane == 0 else WORKTREE.with_name(f"{WORKTREE.name}-{lane}"))


def prepare_worktree(checkout: Path, commit: str, *, lane: int = 0) -> Path:
    """The candidate worktree of `lane`, detached at `commit`, clean, with
    the checkout's machine-local Bazel files copied in."""
    path = worktree_path(checkout, lane)
    if not _reset_existing(path, commit):
        _remove(checkout, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        git(["worktree", "add", "--quiet", "--detach", "--force", "--", str(path), commit], checkout)
    for name in LOCAL_FILES:
        source = checkout / name
        if source.is_file():
            shutil.copy2(source, path / name)
    return path


def _reset_existing(path: Path, commit: str) -> bool:
    """Resets a healthy worktree at `path` to `commit`; False if there is none."""
    if not (path / ".git").is_file():
        return False
    try:
        top = git(["rev-parse", "--show-toplevel"], path)
        if Path(top).resolve() != path.resolve():
            return False
        _remove_stale_locks(path)
        git(["checkout", "--quiet", "--detach", "--force", commit, "--"], path)  # `--` after: a revision
        git(["reset", "--quiet", "--hard", commit, "--"], path)
        git(["clean", "-ffdxq"], path)
    except gitutil.GitError:
        return False
    return True


def _remove_stale_locks(path: Path) -> None:
    """Removes an index.lock a killed git left in the worktree's admin dir
    (only `convoy process`, which holds the process lock, uses it)."""
    try:
        gitdir = (path / ".git").read_text().strip().removeprefix("gitdir:").strip()
    except OSError:
        return
    lock = Path(gitdir if os.path.isabs(gitdir) else path / gitdir) / "index.lock"
    lock.unlink(missing_ok=True)


def _remove(checkout: Path, path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    git(["worktree", "prune"], checkout)


def bump_of(request: Request):
    from convoy.manifest_edit import Bump

    return Bump(
        component=request.component,
        version=request.version,
        commit=request.commit if request.commit_given else None,
        configuration=request.configuration,
        archive_url=request.archive_url,
        strip_prefix=request.strip_prefix,
    )


def make_candidate(checkout: Path, request: Request, base_commit: str, *, lane: int = 0) -> Candidate:
    """Makes the candidate of `request` on `base_commit`: the worktree of `lane` at
    the base, the bump applied to the manifest, the lock re-resolved (only
    the bumped component asks the network), one commit.

    Raises CandidateRejected if the bump does not apply or changes nothing;
    ConvoyError (re-locking: a remote unreachable, ...) or GitError otherwise.
    """
    from convoy.manifest_edit import bump_manifest

    worktree = prepare_worktree(checkout, base_commit, lane=lane)
    manifest_path = worktree / MANIFEST
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except OSError as e:
        raise CandidateRejected(f"{MANIFEST} cannot be read at {base_commit[:10]} ({e})") from None
    try:
        edited, manifest = bump_manifest(text, bump_of(request), shown=MANIFEST)
    except ConvoyError as e:
        raise CandidateRejected(f"the bump does not apply to {MANIFEST}: {e}") from None
    if edited == text:
        raise CandidateRejected(
            f"nothing to change: {MANIFEST} at {base_commit[:10]} already pins {request.title}"
        )
    fsutil.atomic_write(manifest_path, edited)
    try:
        previous: Optional[Lock] = read_lock(worktree / LOCK)
    except ConvoyError:
        previous = None
    lock = lock_manifest(manifest, worktree, MANIFEST, previous=previous, cache_root=checkout)
    write_lock(worktree / LOCK, lock)
    git(["add", "--", MANIFEST, LOCK], worktree)
    message = f"Bump {request.component} to {request.version} (request {request.id})"
    body = [f"Requested by: {request.requested_by}"]
    if request.commit:
        body.append(f"Commit: {request.commit}")
    if request.configuration:
        body.append(f"Configuration: {request.configuration}")
    if request.archive_url:
        body.append(f"Archive: {request.archive_url}")
    git([*identity_args(checkout), "commit", "--quiet", "--no-verify", "-m", message, "-m", "\n".join(body)],
        worktree)
    commit = git(["rev-parse", "HEAD"], worktree)
    git(["update-ref", "--", REQUEST_REF.format(id=request.id), commit], checkout)
    return Candidate(worktree=worktree, base_commit=base_commit, commit=commit, lock=lock, manifest=manifest,
                     previous_lock=previous)


def has_commit(checkout: Path, commit: str) -> bool:
    exists = gitutil.run(["cat-file", "-e", "--end-of-options", f"{commit}^{{commit}}"], cwd=checkout, check=False)
    return exists.returncode == 0


def lock_at(checkout: Path, commit: str) -> Optional[dict]:
    """The lock file at `commit`, as a dict (None if it has none or it is not JSON)."""
    import json

    result = gitutil.run(["show", "--end-of-options", f"{commit}:{LOCK}"], cwd=checkout, check=False)
    if result.returncode != 0:
        return None
    try:
        return json.loads(result.stdout)
    except ValueError:
        return None
