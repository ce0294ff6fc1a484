"""Incremental re-locking: with the previous lock, only what the manifest edit
touched is resolved (the driver re-locks every candidate this way)."""

from __future__ import annotations

import shutil

import pytest

from convoy.errors import ConvoyError
from convoy.lock import lock_manifest
from convoy.manifest import load_manifest

MANIFEST = """\
default_configuration: rover
components:
  messages:
    source: git
    remote: {messages}
    version: v1.4.0
  planner:
    source: git
    remote: {planner}
    version: {planner_version}
configurations:
  rover:
    components: [messages, planner]
  drone:
    components: [messages]
    pins:
      messages: v1.5.0
"""


@pytest.fixture
def world(tmp_path, git_repo):
    messages = git_repo("messages", {"m.txt": "1.4"})
    messages.tag("v1.4.0")
    messages.commit({"m.txt": "1.5"})
    messages.tag("v1.5.0")
    planner = git_repo("planner", {"p.txt": "2.1"})
    planner.tag("v2.1.0")
    planner.commit({"p.txt": "2.2"})
    planner.tag("v2.2.0")
    root = tmp_path / "integration"
    (root / "manifests").mkdir(parents=True)

    def write(planner_version):
        path = root / "manifests" / "manifest.yaml"
        path.write_text(MANIFEST.format(messages=messages.url, planner=planner.url, planner_version=planner_version))
        return load_manifest(path)

    return root, messages, planner, write


def test_only_the_changed_component_is_resolved(world):
    root, messages, planner, write = world
    first = lock_manifest(write("v2.1.0"), root, "manifests/manifest.yaml")
    # messages becomes unreachable: a full re-lock fails, an incremental one does not ask it.
    shutil.move(messages.path, messages.path.with_name("gone"))
    bumped = write("v2.2.0")
    with pytest.raises(ConvoyError, match="component 'messages': cannot reach remote"):
        lock_manifest(bumped, root, "manifests/manifest.yaml")
    second = lock_manifest(bumped, root, "manifests/manifest.yaml", previous=first)
    assert second.configurations["rover"]["planner"]["commit"] == planner.rev_parse("v2.2.0")
    assert second.configurations["rover"]["planner"]["version"] == "v2.2.0"
    assert second.configurations["rover"]["messages"] == first.configurations["rover"]["messages"]
    assert second.configurations["drone"] == first.configurations["drone"]
    assert second.manifest_sha256 == bumped.sha256 != first.manifest_sha256


def test_a_changed_remote_or_version_is_resolved_again(world, git_repo):
    root, messages, planner, write = world
    first = lock_manifest(write("v2.1.0"), root, "manifests/manifest.yaml")
    again = lock_manifest(write("v2.1.0"), root, "manifests/manifest.yaml", previous=first)
    assert again == first
    # a pin that no earlier pin matches (another remote) is resolved, and fails here
    path = root / "manifests" / "manifest.yaml"
    path.write_text(path.read_text().replace(planner.url, planner.url + "-moved"))
    with pytest.raises(ConvoyError, match="component 'planner': cannot reach remote"):
        lock_manifest(load_manifest(path), root, "manifests/manifest.yaml", previous=first)
