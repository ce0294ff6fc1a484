"""`convoy lock` asks each git remote once: one `git ls-remote` per distinct
remote, however many components and versions it serves (issue 10), with the
resolution, the errors and the incremental path of one ls-remote per version.

git processes are counted by a `git` script first on PATH that writes its
arguments to a log and runs the real git: what convoy runs, counted, nothing
mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from convoy import gitutil, timing
from convoy.errors import ConvoyError
from convoy.lock import _lock_manifest_per_version, lock_manifest, read_lock
from convoy.manifest import load_manifest

LOCK = "manifests/manifest.lock.json"
MANIFEST = "manifests/manifest.yaml"
SHARED_TAGS = 40  # v1.0.0 ... v1.39.0 on the shared remote: even annotated, odd lightweight
ON_SHARED = 26  # comp00 ... comp25; comp25 follows the branch release/2.x


class GitLog:
    """The git processes started since the last `clear`, one argument list each."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def clear(self) -> None:
        self.path.write_text("")

    def calls(self) -> list[list[str]]:
        text = self.path.read_text() if self.path.exists() else ""
        return [line.rstrip("\t").split("\t") for line in text.splitlines()]

    def ls_remotes(self) -> list[str]:
        """The remote of every `git ls-remote`, in the order they started."""
        remotes = []
        for args in self.calls():
            if args[0] == "ls-remote":
                assert "--" in args, args  # the remote is never read as an option
                remotes.append(args[args.index("--") + 1])
        return remotes


@pytest.fixture
def git_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitLog:
    """Puts a logging `git` first on PATH; real git runs underneath."""
    real = shutil.which("git")
    assert real is not None
    bin_dir = tmp_path / "logging-git"
    bin_dir.mkdir()
    log = GitLog(tmp_path / "git.log")
    script = bin_dir / "git"
    # One write per call: remotes are listed from several threads at once.
    script.write_text(
        "#!/bin/sh\n"
        "line=$(printf '%s\\t' \"$@\")\n"
        f"printf '%s\\n' \"$line\" >> '{log.path}'\n"
        f"exec '{real}' \"$@\"\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    log.clear()
    return log


@dataclass
class World:
    """An integration repo (the current directory) whose manifest takes 26
    components from one remote of 40 tags, one from a second remote, one
    from a third (a branch), and one local directory."""

    root: Path
    shared: object  # GitRepo: tags v1.0.0..v1.39.0, branch release/2.x, branch v1.3.0 (the tag wins)
    other: object  # GitRepo: annotated tag v2.0.0
    third: object  # GitRepo: branch main only
    versions: dict = field(default_factory=dict)  # component -> version in configuration alpha

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def remotes(self) -> list:
        return [self.shared, self.other, self.third]

    def edit(self, old: str, new: str) -> None:
        text = self.manifest.read_text()
        assert text.count(old) == 1, old
        self.manifest.write_text(text.replace(old, new))

    def remote_line(self, component: str) -> int:
        """The line of `component`'s remote: key in the manifest."""
        lines = self.manifest.read_text().splitlines()
        start = lines.index(f"  {component}:")
        return next(i for i, line in enumerate(lines[start:], start + 1) if line.startswith("    remote: "))

    def line_of(self, needle: str) -> int:
        lines = [i for i, line in enumerate(self.manifest.read_text().splitlines(), 1) if needle in line]
        assert len(lines) == 1, (needle, lines)
        return lines[0]

    def load(self):
        return load_manifest(MANIFEST)  # relative to the current directory, the root: as `convoy lock` shows it


def shared_version(i: int) -> str:
    return f"v1.{i}.0"


@pytest.fixture
def world(tmp_path: Path, git_repo, monkeypatch: pytest.MonkeyPatch) -> World:
    shared = git_repo("shared", {"VERSION": "first\n"})
    for i in range(SHARED_TAGS):
        shared.commit({"VERSION": f"{shared_version(i)}\n"})
        shared.tag(shared_version(i), annotated=i % 2 == 0)
    shared.branch("release/2.x")
    shared.branch("v1.3.0", "HEAD~1")  # a branch of the same name as a tag: the tag must win
    other = git_repo("other", {"VERSION": "2.0.0\n"})
    other.tag("v2.0.0")
    third = git_repo("third", {"VERSION": "trunk\n"})

    root = tmp_path / "integration"
    (root / "manifests").mkdir(parents=True)
    (root / "components" / "firmware" / "v3.0.1").mkdir(parents=True)
    world = World(root, shared, other, third)
    lines = ["default_configuration: alpha", "components:"]
    for i in range(ON_SHARED):
        name = f"comp{i:02d}"
        version = "release/2.x" if i == ON_SHARED - 1 else shared_version(i)
        world.versions[name] = version
        lines += [f"  {name}:", "    source: git", f"    remote: {shared.url}", f"    version: {version}"]
    world.versions.update(lone="v2.0.0", trunk="main")
    lines += ["  lone:", "    source: git", f"    remote: {other.url}", "    version: v2.0.0"]
    lines += ["  trunk:", "    source: git", f"    remote: {third.url}", "    version: main"]
    lines += ["  firmware:", "    source: local", "    path: components/firmware/{version}", "    version: v3.0.1"]
    everything = sorted(world.versions) + ["firmware"]
    lines += ["configurations:", "  alpha:", f"    components: [{', '.join(everything)}]"]
    # beta pins two components to other versions of the shared remote: still one ls-remote for it
    lines += ["  beta:", "    components: [comp01, comp02, comp03, lone]", "    pins:",
              f"      comp01: {shared_version(30)}", f"      comp02: {shared_version(31)}"]
    world.manifest.write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(root)
    return world


def expected_commit(world: World, component: str, version: str) -> str:
    repo = {"lone": world.other, "trunk": world.third}.get(component, world.shared)
    kind = "heads" if version in ("release/2.x", "main") else "tags"
    return repo.rev_parse(f"refs/{kind}/{version}")


def test_one_ls_remote_per_remote(world, convoy, git_log, capsys):
    git_log.clear()
    assert convoy("lock") == 0

    assert sorted(git_log.ls_remotes()) == sorted(r.url for r in world.remotes)
    assert not [args for args in git_log.calls() if args[0] in ("fetch", "clone")]
    data = json.loads(world.lock.read_text())
    alpha = data["configurations"]["alpha"]["components"]
    for name, version in world.versions.items():
        assert alpha[name]["version"] == version
        assert alpha[name]["commit"] == expected_commit(world, name, version), name
    assert alpha["firmware"] == {"path": "components/firmware/v3.0.1", "source": "local", "version": "v3.0.1"}
    beta = data["configurations"]["beta"]["components"]
    assert beta["comp01"]["commit"] == world.shared.rev_parse(f"refs/tags/{shared_version(30)}")
    assert beta["comp02"]["commit"] == world.shared.rev_parse(f"refs/tags/{shared_version(31)}")
    assert beta["comp03"] == alpha["comp03"] and beta["lone"] == alpha["lone"]
    # An annotated tag is peeled to its commit; a tag wins over a branch of the same name.
    assert alpha["comp02"]["commit"] != world.shared.git("rev-parse", f"refs/tags/{shared_version(2)}")
    assert alpha["comp03"]["commit"] != world.shared.rev_parse("refs/heads/v1.3.0")
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {LOCK}"


def test_the_same_lock_as_one_ls_remote_per_version(world, git_log):
    git_log.clear()
    new = lock_manifest(world.load(), world.root, MANIFEST)
    assert len(git_log.ls_remotes()) == 3

    git_log.clear()
    old = _lock_manifest_per_version(world.load(), world.root, MANIFEST)
    assert len(git_log.ls_remotes()) == len(world.versions) + 2  # + beta's two pins
    assert new == old
    assert new.to_json() == old.to_json()


def test_unknown_versions_on_a_shared_remote(world, convoy, git_log, capsys):
    assert convoy("lock") == 0
    locked = world.lock.read_bytes()
    world.edit(f"version: {shared_version(4)}\n", "version: v9.9.9\n")
    world.edit(f"comp02: {shared_version(31)}", "comp02: v9.9.8")
    capsys.readouterr()
    git_log.clear()

    assert convoy("lock") == 2

    assert capsys.readouterr().err == (
        f"convoy: error: component 'comp02': version v9.9.8 is neither a tag nor a branch of {world.shared.url}; "
        f"push the tag or fix the version at manifests/manifest.yaml:{world.line_of('comp02: v9.9.8')}\n"
        f"convoy: error: component 'comp04': version v9.9.9 is neither a tag nor a branch of {world.shared.url}; "
        f"push the tag or fix the version at manifests/manifest.yaml:{world.line_of('v9.9.9')}\n"
    )
    assert sorted(git_log.ls_remotes()) == sorted(r.url for r in world.remotes)
    assert world.lock.read_bytes() == locked


def test_an_unreachable_remote_fails_every_component_on_it(world, convoy, git_log, capsys, tmp_path):
    assert convoy("lock") == 0
    locked = world.lock.read_bytes()
    gone = tmp_path / "gone"
    shutil.move(world.shared.path, gone)
    path = world.shared.path
    capsys.readouterr()
    git_log.clear()

    assert convoy("lock") == 2

    def unreachable(component: str) -> str:
        return (
            f"convoy: error: component '{component}': cannot reach remote {world.shared.url} (git: fatal: '{path}' "
            f"does not appear to be a git repository); check the remote in "
            f"manifests/manifest.yaml:{world.remote_line(component)} or your network"
        )

    # one line per component version, as with one ls-remote per version (comp01 and comp02 twice: beta pins them)
    keys = sorted([(f"comp{i:02d}", world.versions[f"comp{i:02d}"]) for i in range(ON_SHARED)]
                  + [("comp01", shared_version(30)), ("comp02", shared_version(31))])
    assert capsys.readouterr().err.splitlines() == [unreachable(name) for name, _ in keys]
    assert sorted(git_log.ls_remotes()) == sorted(r.url for r in world.remotes)
    assert world.lock.read_bytes() == locked

    with pytest.raises(ConvoyError) as new:
        lock_manifest(world.load(), world.root, MANIFEST)
    with pytest.raises(ConvoyError) as old:
        _lock_manifest_per_version(world.load(), world.root, MANIFEST)
    assert new.value.problems == old.value.problems


def test_explicit_commits(world, git_log):
    tagged = world.shared.rev_parse(f"refs/tags/{shared_version(5)}")
    behind = world.shared.rev_parse("release/2.x")
    world.shared.commit({"VERSION": "later\n"})
    world.shared.branch("release/2.x")
    world.edit(f"version: {shared_version(5)}\n", f"version: {shared_version(5)}\n    commit: {tagged}\n")
    world.edit("version: release/2.x\n", f"version: release/2.x\n    commit: {behind}\n")
    git_log.clear()

    lock = lock_manifest(world.load(), world.root, MANIFEST)

    assert lock.configurations["alpha"]["comp05"]["commit"] == tagged
    assert lock.configurations["alpha"]["comp25"]["commit"] == behind
    assert sorted(git_log.ls_remotes()) == sorted(r.url for r in world.remotes)
    fetches = [args for args in git_log.calls() if "fetch" in args]
    assert len(fetches) == 1 and world.shared.url in fetches[0]  # the cache: once, for the commit behind a branch

    wrong = world.shared.rev_parse(f"refs/tags/{shared_version(6)}")
    world.edit(f"    commit: {tagged}\n", f"    commit: {wrong}\n")
    with pytest.raises(ConvoyError) as raised:
        lock_manifest(world.load(), world.root, MANIFEST)
    assert str(raised.value) == (
        f"component 'comp05': tag {shared_version(5)} of {world.shared.url} is commit {tagged}, but the manifest "
        f"pins commit {wrong}; fix the commit at manifests/manifest.yaml:{world.line_of(wrong)} or the version at "
        f"manifests/manifest.yaml:{world.line_of(f'version: {shared_version(5)}')}"
    )


def test_incremental_lists_only_the_remotes_of_what_changed(world, git_log, tmp_path):
    first = lock_manifest(world.load(), world.root, MANIFEST)
    shutil.move(world.other.path, tmp_path / "other-gone")
    shutil.move(world.third.path, tmp_path / "third-gone")
    git_log.clear()

    assert lock_manifest(world.load(), world.root, MANIFEST, previous=first) == first
    assert git_log.calls() == []

    world.edit(f"version: {shared_version(3)}\n", f"version: {shared_version(35)}\n")
    world.edit(f"version: {shared_version(7)}\n", f"version: {shared_version(36)}\n")
    second = lock_manifest(world.load(), world.root, MANIFEST, previous=first)

    assert git_log.ls_remotes() == [world.shared.url]
    assert second.configurations["alpha"]["comp03"]["commit"] == world.shared.rev_parse(shared_version(35))
    assert second.configurations["alpha"]["comp07"]["commit"] == world.shared.rev_parse(shared_version(36))
    assert second.configurations["alpha"]["lone"] == first.configurations["alpha"]["lone"]


def test_check_runs_no_git(world, convoy, git_log, capsys, tmp_path):
    assert convoy("lock") == 0
    for repo in world.remotes:
        shutil.move(repo.path, tmp_path / f"{repo.path.name}-gone")
    capsys.readouterr()
    git_log.clear()

    assert convoy("lock", "--check") == 0

    assert capsys.readouterr().out == f"{LOCK} is up to date\n"
    assert git_log.calls() == []
    read_lock(world.lock)  # still a whole lock


def test_git_time_of_parallel_ls_remotes_is_on_the_meter(world):
    meter = timing.Meter()
    with meter.active():
        lock_manifest(world.load(), world.root, MANIFEST)
    assert 0 < meter.seconds("git") <= meter.elapsed()


def test_listing_a_remote_keeps_gits_guards(tmp_path, git_repo):
    """The one ls-remote per remote runs as every git call does: `--` before
    the remote, and only the transports convoy means, whatever the config says."""
    (Path.home() / ".gitconfig").write_text("[protocol]\n\tallow = always\n")
    marker = tmp_path / "marker"
    with pytest.raises(gitutil.GitError) as raised:
        gitutil.versions_refs(f"ext::sh -c touch% {marker}", ["v1.0.0"])
    assert raised.value.detail == "fatal: transport 'ext' not allowed"
    # Read as an option, this would run `touch` as the upload-pack of the checkout's origin.
    checkout = git_repo("checkout")
    checkout.git("remote", "add", "origin", git_repo("origin").url)
    with pytest.raises(gitutil.GitError):
        gitutil.versions_refs(f"--upload-pack=touch {marker}", ["v1.0.0"], cwd=checkout.path)
    assert not marker.exists()
