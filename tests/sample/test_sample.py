"""Tests of convoy.sample: the sample components as git repositories, and the git-sourced manifest."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from convoy.errors import ConvoyError
from convoy.sample import git_sourced_manifest, make_component_repos


class TestMakeComponentRepos:
    def test_one_commit_per_version_in_version_order(self, widget_examples, tmp_path, git):
        repo = make_component_repos(widget_examples, tmp_path / "remotes")["widget"]
        subjects = git(repo, "log", "--format=%s", "main").splitlines()
        assert subjects == ["widget v1.10.0", "widget v1.9.0", "widget v1.2.0"]

    def test_every_version_is_an_annotated_tag_on_its_commit(self, widget_examples, tmp_path, git, widget_versions):
        repo = make_component_repos(widget_examples, tmp_path / "remotes")["widget"]
        assert git(repo, "tag", "--list").splitlines() == ["v1.10.0", "v1.2.0", "v1.9.0"]
        assert {git(repo, "cat-file", "-t", tag) for tag in widget_versions} == {"tag"}
        assert git(repo, "rev-parse", "v1.10.0^{commit}") == git(repo, "rev-parse", "main")
        assert git(repo, "rev-parse", "v1.10.0^^{commit}") == git(repo, "rev-parse", "v1.9.0^{commit}")
        assert git(repo, "rev-parse", "v1.9.0^^{commit}") == git(repo, "rev-parse", "v1.2.0^{commit}")

    def test_tree_at_each_tag_is_exactly_the_version_directory(
        self, widget_examples, tmp_path, tree_at, read_tree, widget_versions
    ):
        (widget_examples / "components" / "widget" / "v1.9.0" / "widget" / "__pycache__").mkdir()
        (widget_examples / "components" / "widget" / "v1.9.0" / "widget" / "__pycache__" / "x.pyc").write_bytes(b"\0")
        repo = make_component_repos(widget_examples, tmp_path / "remotes")["widget"]
        for version in widget_versions:
            assert tree_at(repo, version) == read_tree(widget_examples / "components" / "widget" / version), version

    def test_branch_main_is_checked_out_at_the_newest_version(self, widget_examples, tmp_path, git, read_tree):
        repo = make_component_repos(widget_examples, tmp_path / "remotes")["widget"]
        assert git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
        assert git(repo, "status", "--porcelain") == ""
        assert read_tree(repo / "widget") == {"__init__.py": b"VERSION = '1.10.0'\n", "new.py": b"X = 1\n"}

    def test_identity_and_dates_are_fixed(self, widget_examples, tmp_path, git):
        first = make_component_repos(widget_examples, tmp_path / "one")["widget"]
        second = make_component_repos(widget_examples, tmp_path / "two")["widget"]
        assert git(first, "rev-parse", "main") == git(second, "rev-parse", "main")
        assert git(first, "log", "--format=%an <%ae> %aI | %cn %cI", "main").splitlines() == [
            "Convoy Sample <sample@convoy.invalid> 2024-01-04T09:00:00+00:00 | Convoy Sample 2024-01-04T09:00:00+00:00",
            "Convoy Sample <sample@convoy.invalid> 2024-01-03T09:00:00+00:00 | Convoy Sample 2024-01-03T09:00:00+00:00",
            "Convoy Sample <sample@convoy.invalid> 2024-01-02T09:00:00+00:00 | Convoy Sample 2024-01-02T09:00:00+00:00",
        ]

    def test_a_client_can_fetch_a_tagged_commit_by_hash(self, widget_examples, tmp_path, git):
        repo = make_component_repos(widget_examples, tmp_path / "remotes")["widget"]
        commit = git(repo, "rev-parse", "v1.9.0^{commit}")
        client = tmp_path / "client"
        client.mkdir()
        git(client, "init", "-q")
        git(client, "fetch", "-q", "--depth=1", repo.as_uri(), commit)
        assert git(client, "rev-parse", "FETCH_HEAD") == commit

    def test_second_run_keeps_the_repositories(self, widget_examples, tmp_path, git):
        dest = tmp_path / "remotes"
        repo = make_component_repos(widget_examples, dest)["widget"]
        head = git(repo, "rev-parse", "main")
        (repo / "scratch.txt").write_text("a user's file\n")
        assert make_component_repos(widget_examples, dest) == {"widget": repo}
        assert git(repo, "rev-parse", "main") == head
        assert (repo / "scratch.txt").read_text() == "a user's file\n"
        assert sorted(p.name for p in dest.iterdir()) == ["widget"]

    def test_refuses_a_directory_that_is_not_a_repository(self, widget_examples, tmp_path):
        (tmp_path / "remotes" / "widget").mkdir(parents=True)
        with pytest.raises(ConvoyError) as error:
            make_component_repos(widget_examples, tmp_path / "remotes")
        assert str(error.value) == (
            f"{tmp_path / 'remotes' / 'widget'} exists and is not a git repository; "
            "remove it, or choose another destination"
        )

    def test_refuses_a_file(self, widget_examples, tmp_path):
        (tmp_path / "remotes").mkdir()
        (tmp_path / "remotes" / "widget").write_text("not a repository\n")
        with pytest.raises(ConvoyError, match="widget exists and is not a git repository"):
            make_component_repos(widget_examples, tmp_path / "remotes")

    def test_refuses_another_repository(self, widget_examples, tmp_path, git):
        other = tmp_path / "remotes" / "widget"
        other.mkdir(parents=True)
        git(other, "init", "-q")
        with pytest.raises(ConvoyError) as error:
            make_component_repos(widget_examples, tmp_path / "remotes")
        assert str(error.value) == (
            f"{other} exists but is not the sample repository of {widget_examples / 'components' / 'widget'}: "
            "it has no tag v1.2.0; remove it, or choose another destination"
        )

    def test_refuses_a_repository_of_other_versions(self, widget_examples, tmp_path):
        dest = tmp_path / "remotes"
        make_component_repos(widget_examples, dest)
        (widget_examples / "components" / "widget" / "v1.9.0" / "old.txt").write_text("edited\n")
        with pytest.raises(ConvoyError, match="it has another tree at tag v1.9.0; remove it"):
            make_component_repos(widget_examples, dest)

    def test_refuses_a_directory_that_is_not_a_version(self, widget_examples, tmp_path):
        (widget_examples / "components" / "widget" / "latest").mkdir()
        with pytest.raises(ConvoyError) as error:
            make_component_repos(widget_examples, tmp_path / "remotes")
        assert str(error.value) == (
            f"{widget_examples / 'components' / 'widget' / 'latest'} is not a version directory; "
            "expected vMAJOR.MINOR.PATCH/ only"
        )
        assert not (tmp_path / "remotes" / "widget").exists()

    def test_refuses_a_version_without_changes_and_leaves_nothing(self, widget_examples, tmp_path):
        widget = widget_examples / "components" / "widget"
        shutil.copytree(widget / "v1.10.0", widget / "v1.11.0")
        with pytest.raises(ConvoyError) as error:
            make_component_repos(widget_examples, tmp_path / "remotes")
        assert str(error.value) == f"{widget / 'v1.11.0'} has the same content as the version before it (or none); remove it"
        assert list((tmp_path / "remotes").iterdir()) == []

    def test_refuses_examples_without_components(self, tmp_path):
        with pytest.raises(ConvoyError, match="components not found: expected components/<name>/<version>/"):
            make_component_repos(tmp_path, tmp_path / "remotes")

    def test_the_sample_system(self, real_examples, tmp_path, tree_at, git, read_tree):
        components = real_examples / "components"
        repos = make_component_repos(real_examples, tmp_path / "remotes")
        assert sorted(repos) == ["controller", "firmware", "messages", "planner"]
        for name, repo in repos.items():
            versions = sorted(p.name for p in (components / name).iterdir())
            assert sorted(git(repo, "tag", "--list").splitlines()) == versions
            for version in versions:
                assert tree_at(repo, version) == read_tree(components / name / version), f"{name} {version}"


MANIFEST = textwrap.dedent(
    """\
    # The product.
    schema_version: 1
    components:
      messages:          # wire format
        source: local
        path: examples/components/messages/{version}   # one directory per version
        version: "v1.4.0"
      # The planner is fetched already.
      planner:
        source: git
        remote: https://git.example.com/planner.git
        version: v2.1.0
      firmware:
        version: v3.0.1
        source: local
        path: examples/components/firmware/{version}
    configurations:
      rover:
        components: [messages, planner, firmware]   # all of them
    """
)


class TestGitSourcedManifest:
    def test_local_components_become_git_ones_and_the_rest_stays(self):
        remotes = {"messages": "file:///r/messages", "firmware": "file:///r/firmware", "unused": "file:///r/unused"}
        assert git_sourced_manifest(MANIFEST, remotes) == textwrap.dedent(
            """\
            # The product.
            schema_version: 1
            components:
              messages:          # wire format
                source: git
                remote: file:///r/messages                     # one directory per version
                version: "v1.4.0"
              # The planner is fetched already.
              planner:
                source: git
                remote: https://git.example.com/planner.git
                version: v2.1.0
              firmware:
                version: v3.0.1
                source: git
                remote: file:///r/firmware
            configurations:
              rover:
                components: [messages, planner, firmware]   # all of them
            """
        )

    def test_every_local_component_needs_a_remote(self):
        with pytest.raises(ConvoyError) as error:
            git_sourced_manifest(MANIFEST, {"planner": "file:///r/planner"})
        assert str(error.value) == "no git remote for local component(s) firmware, messages; pass one for each"

    def test_the_sample_manifest(self, real_examples):
        text = (real_examples.parent / "manifests" / "manifest.yaml").read_text()
        names = ("messages", "planner", "controller", "firmware")
        result = git_sourced_manifest(text, {name: f"file:///remotes/{name}" for name in names})
        assert "source: local" not in result and "path:" not in result
        for name in names:
            assert f"    source: git\n    remote: file:///remotes/{name}\n    version: " in result
        kept = [line for line in text.splitlines() if "source:" not in line and "path:" not in line]
        assert kept == [line for line in result.splitlines() if "source:" not in line and "remote:" not in line]
