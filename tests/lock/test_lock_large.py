"""A large manifest (2,000 components, three configurations): the lock the
driver writes after a bump (the edited manifest derived from the base's,
re-locked with the previous lock, written by the fast writer, read back
from the cache) is byte for byte what a full `convoy lock` writes of the
same manifest; and the caches of parsed manifests and locks see a file
edited between two reads."""

from __future__ import annotations

import json

import pytest

from convoy import lock as lock_module
from convoy import manifest as manifest_module
from convoy.lock import Lock, lock_manifest, read_lock, write_lock
from convoy.manifest import load_manifest
from convoy.manifest_edit import Bump, bump_manifest

COMPONENTS = 2000
SHOWN = "manifests/manifest.yaml"


def manifest_text(remote: str, names: list[str]) -> str:
    lines = ["default_configuration: alpha", "components:"]
    for name in names:
        lines += [f"  {name}:   # a component", "    source: git", f"    remote: {remote}", "    version: v1.0.0"]
    lines += ["configurations:", "  alpha:", "    components:"] + [f"      - {n}" for n in names]
    lines += ["  beta:", "    components:"] + [f"      - {n}" for i, n in enumerate(names) if i % 7 != 6]
    pins = [f"      {n}: v0.9.0" for i, n in enumerate(names) if i % 10 == 5 and i % 7 != 6]
    lines += ["    pins:"] + pins if pins else []
    lines += ["  gamma:", "    components: [" + ", ".join(names[::3]) + "]"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def world(tmp_path, git_repo):
    shared = git_repo("shared", {"v.txt": "0.9"})
    shared.tag("v0.9.0")
    for version in ("v1.0.0", "v1.1.0", "v1.2.0"):
        shared.commit({"v.txt": version})
        shared.tag(version)
    root = tmp_path / "integration"
    (root / "manifests").mkdir(parents=True)
    manifest_module.clear_cache()
    lock_module.clear_cache()
    yield root, shared.url
    manifest_module.clear_cache()
    lock_module.clear_cache()


def full_lock(root, text: str) -> str:
    """What `convoy lock` writes of `text`: parsed afresh, every pin resolved, json.dumps."""
    manifest_module.clear_cache()
    path = root / "manifests" / "full.yaml"
    path.write_text(text)
    lock = lock_manifest(load_manifest(path), root, SHOWN)
    assert lock.to_json() == lock._to_json_dumps()
    return lock._to_json_dumps()


def test_the_incremental_lock_is_byte_identical_to_a_full_lock(world):
    root, remote = world
    names = [f"comp{i:04d}" for i in range(COMPONENTS)]
    text = manifest_text(remote, names)
    lock_path = root / "manifests" / "manifest.lock.json"
    base = lock_manifest(manifest_module.parse_manifest(text, SHOWN), root, SHOWN)
    write_lock(lock_path, base)
    assert lock_path.read_text() == full_lock(root, text)
    lock_module.clear_cache()  # as a new process reads it: parsed, and found to be convoy's own writing
    assert read_lock(lock_path).text == lock_path.read_text()

    # A bump in the middle (in every configuration, one of them pinned), then another: as the queue does.
    for component, version in (("comp1000", "v1.1.0"), ("comp0995", "v1.2.0"), ("comp1000", "v1.2.0")):
        edited, manifest = bump_manifest(text, Bump(component, version), shown=SHOWN)
        assert manifest == manifest_module._parse(edited, SHOWN, manifest.sha256)  # the derived one is the parse
        previous = read_lock(lock_path)
        relocked = lock_manifest(manifest, root, SHOWN, previous=previous)
        assert relocked.base is previous and previous.text is not None  # written entry by entry
        assert relocked._spliced() == relocked._rendered() == relocked._to_json_dumps()
        write_lock(lock_path, relocked)
        assert lock_path.read_text() == full_lock(root, edited), (component, version)
        assert read_lock(lock_path) == Lock.from_json(lock_path.read_text(), str(lock_path))
        text = edited
    assert lock_module.cache_info()["hits"] >= 3

    # A component added in the middle of the manifest and of alpha: the edit is not a bump, the lock still equal.
    added = text.replace("  comp1001:   # a component\n",
                         f"  comp1000b:\n    source: git\n    remote: {remote}\n    version: v1.1.0\n"
                         "  comp1001:   # a component\n")
    added = added.replace("      - comp1001\n", "      - comp1000b\n      - comp1001\n", 1)
    manifest = manifest_module.parse_manifest(added, SHOWN)
    write_lock(lock_path, lock_manifest(manifest, root, SHOWN, previous=read_lock(lock_path)))
    assert lock_path.read_text() == full_lock(root, added)
    assert "comp1000b" in json.loads(lock_path.read_text())["configurations"]["alpha"]["components"]


def test_a_bump_that_moves_lines_is_parsed_whole_and_still_the_same(world):
    root, remote = world
    names = [f"comp{i:04d}" for i in range(50)]
    text = manifest_text(remote, names)
    commit = "a" * 40
    edited, manifest = bump_manifest(text, Bump("comp0020", "v1.1.0", commit=commit), shown=SHOWN)  # adds a line
    assert manifest == manifest_module._parse(edited, SHOWN, manifest.sha256)
    again, manifest = bump_manifest(edited, Bump("comp0020", "v1.2.0", commit="b" * 40), shown=SHOWN)  # in place
    assert manifest == manifest_module._parse(again, SHOWN, manifest.sha256)
    assert manifest.components["comp0020"].commit == "b" * 40


def test_the_lock_cache_sees_a_file_edited_between_two_reads(world):
    root, remote = world
    text = manifest_text(remote, [f"comp{i:04d}" for i in range(20)])
    path = root / "manifests" / "manifest.lock.json"
    write_lock(path, lock_manifest(manifest_module.parse_manifest(text, SHOWN), root, SHOWN))
    first = read_lock(path)
    assert read_lock(path) is first  # the same text: not parsed again
    document = json.loads(path.read_text())
    document["configurations"]["alpha"]["components"]["comp0003"]["version"] = "v1.1.0"
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    second = read_lock(path)
    assert second.configurations["alpha"]["comp0003"]["version"] == "v1.1.0"
    assert first.configurations["alpha"]["comp0003"]["version"] == "v1.0.0"


def test_the_manifest_cache_sees_a_file_edited_between_two_reads(world):
    root, remote = world
    path = root / "manifests" / "manifest.yaml"
    path.write_text(manifest_text(remote, ["one", "two"]))
    assert load_manifest(path).components["two"].version == "v1.0.0"
    path.write_text(path.read_text().replace("version: v1.0.0", "version: v1.2.0"))
    assert load_manifest(path).components["two"].version == "v1.2.0"
    path.write_text(path.read_text().replace("source: git", "source: gti", 1))
    with pytest.raises(Exception, match="unknown source 'gti'"):
        load_manifest(path)
