"""The sample components as real git repositories, and a manifest that points at them.

examples/components/<name>/<version>/ holds every released version of the
sample system's components. The demo and the end-to-end tests need them as
the real thing: one git repository per component, one commit per version,
tagged with the version.

    repos = make_component_repos(Path("examples"), work / "remotes")
    text = git_sourced_manifest(
        Path("manifests/manifest.yaml").read_text(),
        {name: path.as_uri() for name, path in repos.items()},
    )

The repositories are deterministic (fixed identity and dates): the same
examples make the same commits on every machine.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from convoy import gitutil
from convoy.errors import ConvoyError

IDENTITY = ("Convoy Sample", "sample@convoy.invalid")
# The first version's commit date (2024-01-02T09:00:00Z); each later version
# is committed one day after the one before.
FIRST_COMMIT = 1704186000
DAY = 86400
GIT_TIMEOUT = 60.0  # seconds, per git call
# Never part of a version's tree: bytecode and Bazel's convenience symlinks.
IGNORED = ("__pycache__/", "*.pyc", "/bazel-*")

_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)")
_FIX = "remove it, or choose another destination"

Version = Tuple[str, Path]  # ("v1.4.0", examples/components/messages/v1.4.0)


def make_component_repos(examples_dir: Path, dest: Path) -> Dict[str, Path]:
    """Makes dest/<name>, a git repository per component of examples_dir/components.

    Each repository has one commit per version directory, oldest version
    first, whose tree is exactly that directory; each commit has an annotated
    tag named after the version; the branch is `main`. A repository already
    made from the same directories is kept as it is.

    Args:
        examples_dir: the directory holding components/<name>/<version>/.
        dest: where the repositories go (created if missing).

    Returns:
        Component name -> path of its repository.

    Raises:
        ConvoyError: a directory is not a version, dest/<name> exists but is
            not that component's sample repository, or git fails.
    """
    components = examples_dir / "components"
    if not components.is_dir():
        raise ConvoyError(f"{components} not found: expected components/<name>/<version>/ under {examples_dir}")
    dest.mkdir(parents=True, exist_ok=True)
    repos = {}
    for source in sorted(p for p in components.iterdir() if p.is_dir()):
        repos[source.name] = _component_repo(source, dest / source.name)
    return repos


def git_sourced_manifest(manifest_text: str, remotes: Mapping[str, str]) -> str:
    """Returns `manifest_text` with every `source: local` component fetched from git instead.

    Such a component gets `source: git` and `remote: <url>` in place of its
    `path`; everything else (comments, quoting, key order) stays as written.

    Args:
        manifest_text: the text of a manifest.yaml.
        remotes: component name -> git remote URL.

    Raises:
        ConvoyError: a local component has no remote in `remotes`.
    """
    yaml = _round_trip_yaml()
    document = yaml.load(manifest_text)
    local = {name: spec for name, spec in document["components"].items() if spec.get("source") == "local"}
    missing = sorted(set(local) - set(remotes))
    if missing:
        raise ConvoyError(f"no git remote for local component(s) {', '.join(missing)}; pass one for each")
    for name, spec in local.items():
        _point_at_git(spec, remotes[name])
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


# What an integration repository needs from convoy's own checkout (besides
# manifests/, which make_integration_repo writes).
INTEGRATION_FILES = (
    ".bazelignore",
    ".bazelrc",
    "BUILD.bazel",
    "MODULE.bazel",
    "WORKSPACE.bazel",
    "product",
    "examples/rig",
    "integration",
    "manifests/BUILD.bazel",
    "rules",
    "third_party",
)
# Machine-local Bazel settings (scripts/setup writes .bazelrc.local): copied, never committed.
LOCAL_FILES = (".bazelrc.local", "user.bazelrc")
INTEGRATION_GITIGNORE = "/.convoy/\n/bazel-*\n/.bazelrc.local\n/user.bazelrc\n__pycache__/\n*.pyc\n"


@dataclass(frozen=True)
class IntegrationRepo:
    """A sample integration repository: `bare` is its "origin" (a bare
    repository, branch main), `checkout` a clone of it where convoy runs."""

    bare: Path
    checkout: Path


def copy_integration_files(src_root: Path, dest: Path) -> None:
    """Copies what an integration repository needs from convoy's checkout
    `src_root` into `dest`: INTEGRATION_FILES, and the machine-local
    LOCAL_FILES where they exist (git-ignored in the copy too)."""
    for name in INTEGRATION_FILES + LOCAL_FILES:
        source = src_root / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "bazel-*"))
        elif source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def make_integration_repo(
    src_root: Path,
    dest: Path,
    remotes: Mapping[str, str],
    *,
    config_text: Optional[str] = None,
) -> IntegrationRepo:
    """Makes dest/origin.git (bare) and dest/checkout, an integration repository
    whose manifest fetches every component from git.

    The checkout holds INTEGRATION_FILES copied from `src_root` (convoy's own
    checkout), the manifest of `src_root` with every local component turned
    into a git one (`remotes`: component -> URL), its lock (`convoy lock`),
    convoy.yaml (`config_text`, default: convoy.config.default_config_text())
    and a .gitignore; one commit on `main`, pushed to origin, which it
    tracks. The machine-local `.bazelrc.local` (and `user.bazelrc`) of
    `src_root` are copied in, untracked. A destination already made is kept
    as it is.

    Raises:
        ConvoyError: dest holds something else, a remote is missing, the lock
            cannot be resolved, or git fails.
    """
    from convoy.config import default_config_text
    from convoy.lock import lock_manifest, write_lock
    from convoy.manifest import load_manifest

    src_root, dest = Path(src_root).absolute(), Path(dest).absolute()
    bare, checkout = dest / "origin.git", dest / "checkout"
    if bare.exists() or checkout.exists():
        if (bare / "HEAD").is_file() and (checkout / ".git").is_dir() and (checkout / "convoy.yaml").is_file():
            return IntegrationRepo(bare, checkout)
        raise ConvoyError(f"{dest} holds a half-made or foreign integration repository; {_FIX}")
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".integration-", dir=dest))
    try:
        work = staging / "checkout"
        work.mkdir()
        copy_integration_files(src_root, work)
        manifest_text = (src_root / "manifests" / "manifest.yaml").read_text(encoding="utf-8")
        (work / "manifests" / "manifest.yaml").write_text(git_sourced_manifest(manifest_text, remotes))
        (work / "convoy.yaml").write_text(config_text if config_text is not None else default_config_text())
        (work / ".gitignore").write_text(INTEGRATION_GITIGNORE)
        manifest = load_manifest(work / "manifests" / "manifest.yaml")
        write_lock(work / "manifests" / "manifest.lock.json",
                   lock_manifest(manifest, work, "manifests/manifest.yaml"))
        _git(["init", "-q", "--initial-branch=main", str(work)], cwd=staging)
        _git(["add", "-A", "."], cwd=work)
        _git(["commit", "-q", "-m", "Integration repository of the sample system"], cwd=work,
             env=_identity_env(FIRST_COMMIT))
        _git(["init", "-q", "--bare", "--initial-branch=main", str(staging / "origin.git")], cwd=staging)
        os.replace(staging / "origin.git", bare)
        os.replace(work, checkout)
        _git(["remote", "add", "origin", str(bare)], cwd=checkout)
        _git(["push", "-q", "-u", "origin", "main"], cwd=checkout)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return IntegrationRepo(bare, checkout)


def _round_trip_yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a person's long lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _point_at_git(spec: CommentedMap, remote: str) -> None:
    """Turns one component's mapping from `source: local` + `path` into `source: git` + `remote`."""
    keys = list(spec)
    position = keys.index("path") if "path" in spec else keys.index("source") + 1
    comment = spec.ca.items.pop("path", None)
    spec.pop("path", None)
    spec["source"] = "git"
    spec.insert(position, "remote", remote)
    if comment is not None:
        spec.ca.items["remote"] = comment


def _versions(source: Path) -> List[Version]:
    """The version directories of one component, oldest first (v1.10.0 after v1.9.0)."""
    versions = []
    for directory in source.iterdir():
        match = _VERSION.fullmatch(directory.name)
        if not directory.is_dir() or not match:
            raise ConvoyError(f"{directory} is not a version directory; expected vMAJOR.MINOR.PATCH/ only")
        versions.append((tuple(int(part) for part in match.groups()), directory.name, directory))
    if not versions:
        raise ConvoyError(f"{source} has no version directories; expected vMAJOR.MINOR.PATCH/")
    return [(name, directory) for _, name, directory in sorted(versions)]


def _component_repo(source: Path, repo: Path) -> Path:
    """Makes the repository of the component in `source` at `repo`, or checks the one there."""
    versions = _versions(source)
    if repo.exists() or repo.is_symlink():
        _check_made(source, versions, repo)
        return repo
    # Made aside and moved into place: an interrupted run leaves no half-made repository.
    staging = Path(tempfile.mkdtemp(prefix=f".{repo.name}-", dir=repo.parent))
    try:
        _git(["init", "-q", "--initial-branch=main", str(staging)], cwd=repo.parent)
        _configure(staging)
        for index, (version, directory) in enumerate(versions):
            _commit_version(staging, source.name, version, directory, index)
        _git(["reset", "-q", "--hard", "main"], cwd=staging)
        os.replace(staging, repo)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return repo


def _configure(repo: Path) -> None:
    """Ignores what is never part of a version, and lets clients fetch any tagged commit by hash."""
    (repo / ".git" / "info" / "exclude").write_text("".join(f"{pattern}\n" for pattern in IGNORED))
    _git(["config", "uploadpack.allowReachableSHA1InWant", "true"], cwd=repo)


def _commit_version(repo: Path, name: str, version: str, directory: Path, index: int) -> None:
    """Commits the content of `directory` as the whole tree, and tags it `version`."""
    _git(_work_tree(repo, directory) + ["add", "-A", "."], cwd=directory)
    if not _git(["diff", "--cached", "--name-only"], cwd=repo):
        raise ConvoyError(f"{directory} has the same content as the version before it (or none); remove it")
    env = _identity_env(FIRST_COMMIT + index * DAY)
    _git(["commit", "-q", "-m", f"{name} {version}"], cwd=repo, env=env)
    _git(["tag", "-a", version, "-m", f"{name} {version}"], cwd=repo, env=env)


def _check_made(source: Path, versions: Sequence[Version], repo: Path) -> None:
    """Raises ConvoyError unless `repo` has a tag per version whose tree is that version's directory."""
    toplevel = repo.is_dir() and _git(["rev-parse", "--show-toplevel"], cwd=repo, check=False)
    if not toplevel or Path(toplevel).resolve() != repo.resolve():
        raise ConvoyError(f"{repo} exists and is not a git repository; {_FIX}")
    for version, directory in versions:
        tagged = _git(["rev-parse", "-q", "--verify", f"refs/tags/{version}^{{tree}}"], cwd=repo, check=False)
        if tagged != _tree_of(repo, directory):
            what = "has no tag" if not tagged else "has another tree at tag"
            raise ConvoyError(
                f"{repo} exists but is not the sample repository of {source}: it {what} {version}; {_FIX}"
            )


def _tree_of(repo: Path, directory: Path) -> str:
    """The tree hash `directory` would have as a commit of `repo` (its ignore rules apply)."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
        _git(_work_tree(repo, directory) + ["add", "-A", "."], cwd=directory, env=env)
        return _git(_work_tree(repo, directory) + ["write-tree"], cwd=directory, env=env)


def _work_tree(repo: Path, directory: Path) -> List[str]:
    """git options that use `repo`'s history with `directory` as the work tree."""
    return [f"--git-dir={repo.resolve() / '.git'}", f"--work-tree={directory.resolve()}"]


def _identity_env(timestamp: int) -> Dict[str, str]:
    name, email = IDENTITY
    date = f"{timestamp} +0000"
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
        "GIT_COMMITTER_DATE": date,
    }


def _git(args: List[str], cwd: Path, env: Optional[Mapping[str, str]] = None, check: bool = True) -> str:
    """Runs git with `args` in `cwd`, isolated from the user's git config; returns its stripped stdout.

    Raises ConvoyError with git's message if it fails (unless `check` is off)
    or runs longer than GIT_TIMEOUT.
    """
    isolated = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", **(env or {})}
    command = ["-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *args]
    try:
        result = gitutil.run(command, cwd=cwd, env=isolated, timeout=GIT_TIMEOUT, check=check)
    except gitutil.GitError as e:
        raise ConvoyError(f"{e} (in {cwd})") from None
    return result.stdout.strip()
