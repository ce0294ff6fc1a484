"""Running git: argument lists, a timeout, never a prompt, output kept.

Every call runs `git` with an argument list (no shell), a timeout, stdin
closed and GIT_TERMINAL_PROMPT=0, so a remote that wants a password fails
instead of hanging, and untrusted.GIT_ENV, so only the transports convoy
means are allowed (never `ext::` or `fd::`, which run commands). Callers put
`--` (or `--end-of-options`) before every remote and ref. A failure raises
GitError carrying the full output for the log and a one-line `detail`
(git's first line on stderr) for the user.

`run` counts its time as git time on the meter of the request it runs for
(convoy.timing.current(), when a Meter is active); `_run_git` is the git
call itself, unmeasured.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

from convoy import timing, untrusted

DEFAULT_TIMEOUT = 120.0  # seconds, per git call


@dataclass(frozen=True)
class GitResult:
    """What a git command printed."""

    command: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class GitError(Exception):
    """A git command failed, timed out or could not be started.

    `detail` is one line fit for a user's message; `stdout` and `stderr` keep
    everything git printed, for the log.
    """

    def __init__(self, command: Sequence[str], detail: str, stdout: str = "", stderr: str = "") -> None:
        self.command = tuple(command)
        self.detail = detail
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"{' '.join(self.command)}: {detail}")


def run(
    args: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> GitResult:
    """Runs `git <args>` in `cwd` and returns its output.

    `env` adds to (or overrides) the environment; untrusted.GIT_ENV is
    always added last. Raises GitError if git cannot start, exceeds
    `timeout`, or (with `check`) exits with a non-zero status. The time it
    takes is git time on the current request's meter (timing.current()).
    """
    meter = timing.current()
    if meter is None:
        return _run_git(args, cwd=cwd, timeout=timeout, check=check, env=env)
    with meter.measure("git"):
        return _run_git(args, cwd=cwd, timeout=timeout, check=check, env=env)


def _run_git(
    args: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None,
    timeout: float,
    check: bool,
    env: Mapping[str, str] | None,
) -> GitResult:
    """`run` without the meter: git itself."""
    command = ("git", *args)
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {}), **untrusted.GIT_ENV}
    try:
        proc = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise GitError(command, f"timed out after {timeout:g} s", _text(e.stdout), _text(e.stderr)) from None
    except OSError as e:
        raise GitError(command, f"cannot run git ({e.strerror})") from None
    if check and proc.returncode != 0:
        detail = _first_line(proc.stderr) or f"exit status {proc.returncode}"
        raise GitError(command, detail, proc.stdout, proc.stderr)
    return GitResult(command, proc.returncode, proc.stdout, proc.stderr)


def ls_remote(
    remote: str,
    refs: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, str]:
    """Returns {ref name: object id} for those of the full ref names `refs`
    (e.g. "refs/tags/v1", "refs/tags/v1^{}") that `remote` has.

    A relative path as remote is taken relative to `cwd`.
    """
    result = run(["ls-remote", "--", remote, *refs], cwd=cwd, timeout=timeout)
    wanted = set(refs)
    found = {}
    for line in result.stdout.splitlines():
        sha, _, name = line.partition("\t")
        if name in wanted:  # ls-remote matches patterns by suffix; keep exact names
            found[name] = sha
    return found


@dataclass(frozen=True)
class VersionRefs:
    """What `remote` says of a version name: the commit its tag points at
    (an annotated tag peeled), and the commit it names as a tag or else as a
    branch (a tag wins over a branch of the same name)."""

    tagged: Optional[str]
    found: Optional[str]


def version_refs(
    remote: str,
    version: str,
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> VersionRefs:
    """Resolves `version` on `remote` with one ls-remote. Raises GitError."""
    refs = ls_remote(remote, _version_ref_names(version), cwd=cwd, timeout=timeout)
    return _version_refs_in(refs, version)


def versions_refs(
    remote: str,
    versions: Iterable[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, VersionRefs]:
    """Resolves every one of `versions` on `remote` with ONE ls-remote, of
    all its tags and branches, and the same rules as `version_refs`.

    Listing the tags and branches beats naming the refs: for named refs git
    (2.39) asks the remote for every ref it has anyway, then matches each
    against every name given (3 per version), which grows as refs x names:
    on a remote of 1,000 tags, 0.10 s for 1,000 versions against 0.005 s
    for the listing (benchmarks/lock_remotes.py); and thousands of names
    would meet the argument list's limit. Raises GitError."""
    refs = branches_and_tags(remote, cwd=cwd, timeout=timeout)
    return {version: _version_refs_in(refs, version) for version in versions}


def branches_and_tags(
    remote: str,
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, str]:
    """{ref name: object id} of every branch and tag of `remote` (annotated
    tags also as "refs/tags/<name>^{}": the commit they point at), from one
    `git ls-remote --tags --heads`, which asks the remote for refs/heads/ and
    refs/tags/ only. A relative path as remote is taken relative to `cwd`."""
    result = run(["ls-remote", "--tags", "--heads", "--", remote], cwd=cwd, timeout=timeout)
    found = {}
    for line in result.stdout.splitlines():
        sha, _, name = line.partition("\t")
        if name:
            found[name] = sha
    return found


def _version_ref_names(version: str) -> list[str]:
    """The refs that name `version`: its tag, the tag peeled, its branch."""
    return [f"refs/tags/{version}", f"refs/tags/{version}^{{}}", f"refs/heads/{version}"]


def _version_refs_in(refs: Mapping[str, str], version: str) -> VersionRefs:
    """What `refs` ({full ref name: object id}, as ls-remote lists them) say
    of `version`: an annotated tag is peeled, and a tag wins over a branch."""
    tag, peeled, branch = _version_ref_names(version)
    tagged = refs.get(peeled) or refs.get(tag)
    return VersionRefs(tagged=tagged, found=tagged or refs.get(branch))


def fetch_branches_and_tags(
    git_dir: str | os.PathLike[str],
    remote: str,
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Mirrors the branches and tags of `remote` into the bare repository
    `git_dir` (created if missing); refs the remote no longer has are pruned.
    """
    if not os.path.isdir(git_dir):
        run(["init", "--bare", "--quiet", "--", os.fspath(git_dir)], cwd=cwd, timeout=timeout)
    run(
        [
            f"--git-dir={os.fspath(git_dir)}",
            "fetch", "--quiet", "--prune", "--no-tags", "--",
            remote, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
        ],
        cwd=cwd,
        timeout=timeout,
    )


def is_reachable_commit(
    git_dir: str | os.PathLike[str],
    sha: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> bool:
    """Whether commit `sha` exists in `git_dir` and some branch or tag there
    contains it (an object left over from a pruned ref does not count)."""
    git = f"--git-dir={os.fspath(git_dir)}"
    if run([git, "cat-file", "-e", "--end-of-options", f"{sha}^{{commit}}"], timeout=timeout,
           check=False).returncode != 0:
        return False
    refs = run([git, "for-each-ref", "--count=1", f"--contains={sha}", "refs/heads", "refs/tags"], timeout=timeout)
    return bool(refs.stdout.strip())


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", "replace")
    return output or ""
