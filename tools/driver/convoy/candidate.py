"""The candidate: the integration repository's branch tip plus the bumps of its requests, re-locked and committed.

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
    candidate = make_candidate(checkout, [r3, r4], tip)    # a batch: "Bump messages to v1.5.0, planner to
                                                          # v2.2.0 (requests 3, 4)", one body line per bump
    ...                                                   # test candidate.worktree
    worktree = prepare_worktree(checkout, candidate.commit)   # after a restart: the same tree again

A candidate holds one request (a single bump, or a group's bumps) or, in
batch mode, several: every bump of every request is applied to the
manifest in order, the lock re-resolved once, one commit. Each candidate
commit is also kept under `refs/convoy/requests/<id>` of each of its
requests, so that git never prunes a commit the driver may resume or merge.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from convoy import fsutil
from convoy import gitutil
from convoy import untrusted
from convoy.errors import ConvoyError
from convoy.lock import LOCK_NAME, Lock, lock_manifest, read_lock, write_lock
from convoy.manifest import Manifest
from convoy.models import Request, RequestBump, bumps_title

WORKTREE = Path(".convoy") / "worktrees" / "candidate"
MANIFEST = "manifests/manifest.yaml"
LOCK = f"manifests/{LOCK_NAME}"
# Machine-local Bazel settings a checkout keeps out of git; copied into the worktree.
LOCAL_FILES = (".bazelrc.local", "user.bazelrc")
DEFAULT_IDENTITY = ("convoy", "convoy@localhost")
REQUEST_REF = "refs/convoy/requests/{id}"


class CandidateRejected(Exception):
    """The request cannot become a candidate (a bump does not apply, or the
    bumps change nothing): a rejection, not an infrastructure error."""


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


def bump_of(request: Union[Request, RequestBump]):
    """The manifest edit of a request's primary bump (or of one bump)."""
    from convoy.manifest_edit import Bump

    bump = RequestBump.of(request)
    return Bump(
        component=bump.component,
        version=bump.version,
        commit=bump.commit if bump.commit_given else None,
        configuration=bump.configuration,
        archive_url=bump.archive_url,
        strip_prefix=bump.strip_prefix,
    )


def as_requests(requests: Union[Request, Sequence[Request]]) -> tuple[Request, ...]:
    """One request, or a sequence of them (a batch), as a tuple."""
    return (requests,) if isinstance(requests, Request) else tuple(requests)


def make_candidate(checkout: Path, request: Union[Request, Sequence[Request]], base_commit: str, *,
                   lane: int = 0, changelog: Optional[str] = None) -> Candidate:
    """Makes the candidate of `request` (one request, or a sequence of them:
    a batch) on `base_commit`: the worktree of `lane` at the base, every
    bump of every request applied to the manifest in order, the lock
    re-resolved once (only the bumped components ask the network), one commit.
    `changelog` (release.changelog: a path in the repository) gets an entry
    naming the requests and each moved component's own commits
    (convoy.changes), in the same commit: the one that is tested.

    Raises CandidateRejected if a bump does not apply or the bumps together
    change nothing; ConvoyError (re-locking: a remote unreachable, ...) or
    GitError otherwise.
    """
    from convoy.manifest_edit import bump_manifest

    held = as_requests(request)
    if not held:
        raise ValueError("a candidate needs at least one request")
    bumps = [(r, b) for r in held for b in r.all_bumps]
    worktree = prepare_worktree(checkout, base_commit, lane=lane)
    manifest_path = worktree / MANIFEST
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except OSError as e:
        raise CandidateRejected(f"{MANIFEST} cannot be read at {base_commit[:10]} ({e})") from None
    edited, manifest = text, None
    for owner, bump in bumps:
        try:
            edited, manifest = bump_manifest(edited, bump_of(bump), shown=MANIFEST)
        except ConvoyError as e:
            which = "" if len(bumps) == 1 else f" of {bump.title} (request {owner.id})"
            raise CandidateRejected(f"the bump{which} does not apply to {MANIFEST}: {e}") from None
    if edited == text:
        raise CandidateRejected(
            f"nothing to change: {MANIFEST} at {base_commit[:10]} already pins "
            f"{bumps_title([b for _, b in bumps])}"
        )
    fsutil.atomic_write(manifest_path, edited)
    try:
        previous: Optional[Lock] = read_lock(worktree / LOCK)
    except ConvoyError:
        previous = None
    lock = lock_manifest(manifest, worktree, MANIFEST, previous=previous, cache_root=checkout)
    write_lock(worktree / LOCK, lock)
    git(["add", "--", MANIFEST, LOCK], worktree)
    message, body = commit_message(held)
    if changelog:
        _append_changelog(checkout, worktree, changelog, message, previous, lock)
    git([*identity_args(checkout), "commit", "--quiet", "--no-verify", "-m", message, "-m", "\n".join(body)],
        worktree)
    commit = git(["rev-parse", "HEAD"], worktree)
    for owner in held:
        git(["update-ref", "--", REQUEST_REF.format(id=owner.id), commit], checkout)
    return Candidate(worktree=worktree, base_commit=base_commit, commit=commit, lock=lock, manifest=manifest,
                     previous_lock=previous)


def _append_changelog(checkout: Path, worktree: Path, changelog: str, subject: str, previous: Optional[Lock],
                      lock: Lock) -> None:
    """Appends the candidate's entry to `changelog` in the worktree and stages it."""
    import datetime

    from convoy import changes
    from convoy.pins import COMPONENT_CACHE, pin_changes

    path = worktree / changelog
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ConvoyError(f"release.changelog {changelog} is not a regular file in the integration repository; "
                          "fix release.changelog in convoy.yaml")
    moved = changes.changes_for(pin_changes(previous, lock), lock, previous, cache_dir=checkout / COMPONENT_CACHE)
    entry = changes.changelog_entry(f"{datetime.date.today().isoformat()}: {subject}", moved)
    path.parent.mkdir(parents=True, exist_ok=True)
    changes.append_changelog(path, entry)
    git(["add", "--", changelog], worktree)


def commit_message(requests: Sequence[Request]) -> tuple[str, list[str]]:
    """The candidate commit's subject and body lines. One request of one
    bump: "Bump messages to v1.5.0 (request 3)", then who asked and the
    commit, scope and archive; otherwise "Bump messages to v2.0.0, planner
    to v3.0.0 (request 7)" (or "(requests 3, 4)"), then one line per bump."""
    if len(requests) == 1 and not requests[0].bumps:
        request = requests[0]
        body = [f"Requested by: {request.requested_by}"]
        if request.commit:
            body.append(f"Commit: {request.commit}")
        if request.configuration:
            body.append(f"Configuration: {request.configuration}")
        if request.archive_url:
            body.append(f"Archive: {request.archive_url}")
        return f"Bump {request.component} to {request.version} (request {request.id})", body
    bumps = [(r, b) for r in requests for b in r.all_bumps]
    ids = ", ".join(str(r.id) for r in requests)
    subject = (f"Bump {', '.join(f'{b.component} to {b.version}' for _, b in bumps)} "
               f"(request{'s' if len(requests) > 1 else ''} {ids})")
    body = [f"{b.component} {b.version}" + (f" in {b.configuration}" if b.configuration else "")
            + (f" at {b.commit}" if b.commit else "")
            + (f" from {untrusted.redact_userinfo(b.archive_url)}" if b.archive_url else "")
            + f" (request {r.id}, by {r.requested_by})" for r, b in bumps]
    return subject, body


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
