"""Local components must mean the same directory in the checkout and in the candidate.

A `local` component's path is inside the integration repository (the lock
refuses anything else). `convoy process` builds each candidate in a git
worktree (.convoy/worktrees/candidate), which holds exactly what is
committed: a directory that git does not track (new, or git-ignored) is
there in the checkout and missing in the candidate. `convoy lock` warns
about such paths, so that the queue never tests something else than what
`bazel test` in the checkout did.
"""

from __future__ import annotations

from pathlib import Path

from convoy import gitutil
from convoy.lock import Lock


def untracked_local_paths(root: Path, lock: Lock) -> list[tuple[str, str]]:
    """(component, path) of every local pin with no file tracked by git.

    Empty when `root` is not in a git work tree (nothing to compare with).
    """
    paths = sorted({(component, pin["path"])
                    for pins in lock.configurations.values()
                    for component, pin in pins.items() if pin.get("source") == "local"})
    if not paths:
        return []
    try:
        inside = gitutil.run(["rev-parse", "--is-inside-work-tree"], cwd=root, check=False)
    except gitutil.GitError:
        return []
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return []
    untracked = []
    for component, path in paths:
        try:
            tracked = gitutil.run(["ls-files", "--", path], cwd=root, check=False, env={"GIT_LITERAL_PATHSPECS": "1"})
        except gitutil.GitError:
            continue
        if tracked.returncode == 0 and not tracked.stdout.strip():
            untracked.append((component, path))
    return untracked


def warnings(root: Path, lock: Lock) -> list[str]:
    """One line per local path that a candidate worktree would not have."""
    return [
        f"component '{component}': {path} is not committed to git, so convoy's candidate worktree "
        "(convoy process) will not have it; commit it before submitting requests"
        for component, path in untracked_local_paths(root, lock)
    ]
