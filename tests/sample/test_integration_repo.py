"""sample.make_integration_repo: a bare origin and a checkout of a git-sourced integration repository."""

from __future__ import annotations

import subprocess

import pytest

from convoy import sample
from convoy.config import default_config_text
from convoy.errors import ConvoyError
from convoy.main import main as convoy_main

from tests.support import REPO


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_makes_origin_and_a_checkout_that_tracks_it(component_repos, tmp_path):
    remotes = {name: path.as_uri() for name, path in component_repos.items()}
    repo = sample.make_integration_repo(REPO, tmp_path / "work", remotes)
    assert (repo.bare, repo.checkout) == (tmp_path / "work" / "origin.git", tmp_path / "work" / "checkout")
    assert git(repo.bare, "rev-parse", "--is-bare-repository") == "true"
    assert git(repo.checkout, "rev-parse", "main") == git(repo.bare, "rev-parse", "main")
    assert git(repo.checkout, "rev-parse", "--abbrev-ref", "main@{upstream}") == "origin/main"
    assert git(repo.checkout, "status", "--porcelain") == ""
    tracked = set(git(repo.checkout, "ls-files").splitlines())
    assert {"convoy.yaml", ".gitignore", "manifests/manifest.yaml", "manifests/manifest.lock.json",
            "manifests/BUILD.bazel", "WORKSPACE.bazel", "integration/BUILD.bazel", "rules/defs.bzl"} <= tracked
    assert ".bazelrc.local" not in tracked and not any(".convoy/" in f for f in tracked)
    if (REPO / ".bazelrc.local").is_file():  # machine-local: copied, not committed
        assert (repo.checkout / ".bazelrc.local").read_text() == (REPO / ".bazelrc.local").read_text()
    assert (repo.checkout / "convoy.yaml").read_text() == default_config_text()
    manifest = (repo.checkout / "manifests" / "manifest.yaml").read_text()
    assert "source: local" not in manifest and f"remote: {remotes['messages']}" in manifest
    assert convoy_main(["convoy", "lock", "--check", f"--manifest={repo.checkout / 'manifests' / 'manifest.yaml'}"]) == 0
    # made already: kept as it is
    assert sample.make_integration_repo(REPO, tmp_path / "work", remotes) == repo


def test_refuses_a_destination_that_holds_something_else(component_repos, tmp_path):
    (tmp_path / "work" / "checkout").mkdir(parents=True)
    remotes = {name: path.as_uri() for name, path in component_repos.items()}
    with pytest.raises(ConvoyError) as error:
        sample.make_integration_repo(REPO, tmp_path / "work", remotes)
    assert str(error.value) == (f"{tmp_path / 'work'} holds a half-made or foreign integration repository; "
                                "remove it, or choose another destination")
