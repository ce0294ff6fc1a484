"""A component's bump composes only that component's lines (the rest blanked,
every position kept) and re-reads only them: the same text and the same
Manifest as composing and parsing the whole file."""

from __future__ import annotations

import pytest

from convoy import manifest as manifest_module
from convoy import manifest_edit
from convoy.manifest_edit import Bump, bump_manifest

COMMIT = "c" * 40
TEXT = """\
# a manifest with comments, quoting and a flow mapping
default_configuration: rover
components:
  messages:   # first
    source: git
    remote: https://git.example.com/messages.git
    version: "v1.4.0"     # quoted, with a comment
  planner:
    source: git
    remote: https://git.example.com/planner.git
    version: v2.1.0
    commit: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa

# between two components
  tools: {source: git, remote: https://git.example.com/tools.git, version: v0.1.0}
  firmware:
    source: archive
    version: v3.0.0
    url: https://example.com/fw-{version}.tar.gz
    sha256: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
  last:
    source: git
    remote: https://git.example.com/last.git
    version: v9.0.0
configurations:
  rover:
    components: [messages, planner, tools, firmware, last]
    pins:
      planner: v2.0.0
"""
BUMPS = [
    Bump("messages", "v1.5.0"), Bump("messages", "v1.5.0", commit=COMMIT), Bump("planner", "v2.2.0"),
    Bump("planner", "v2.2.0", commit=COMMIT), Bump("tools", "v0.2.0"), Bump("firmware", "v3.1.0"),
    Bump("firmware", "v3.1.0", archive_url="https://example.com/fw2.tar.gz", strip_prefix="fw"),
    Bump("last", "v9.1.0"), Bump("planner", "v2.0.5", configuration="rover"),
]


@pytest.mark.parametrize("bump", BUMPS, ids=[f"{b.describe()}{' commit' if b.commit else ''}"
                                             f"{' archive' if b.archive_url else ''}" for b in BUMPS])
def test_a_bump_on_part_of_the_file_is_the_bump_on_all_of_it(bump, monkeypatch):
    manifest_module.clear_cache()
    partial, partial_manifest = bump_manifest(TEXT, bump)
    manifest_module.clear_cache()
    monkeypatch.setattr(manifest_edit, "_component_positions", lambda *args: None)
    monkeypatch.setattr(manifest_edit, "_derived", lambda *args: None)
    whole, whole_manifest = bump_manifest(TEXT, bump)
    assert partial == whole
    assert partial_manifest == whole_manifest
    manifest_module.clear_cache()
    assert partial_manifest == manifest_module.parse_manifest(partial)


def test_the_partial_positions_are_the_whole_files():
    manifest = manifest_module.parse_manifest(TEXT)
    partial = manifest_edit._component_positions(TEXT, manifest, Bump("planner", "v2.2.0"))
    whole = manifest_edit.compose_positions(TEXT)
    assert partial is not None
    mine = manifest_edit._value(manifest_edit._value(partial, "components"), "planner")
    theirs = manifest_edit._value(manifest_edit._value(whole, "components"), "planner")
    marks = lambda node: [(k.start_mark.index, k.start_mark.line, k.start_mark.column, v.start_mark.index,
                           v.end_mark.index) for k, v in node.value]
    assert marks(mine) == marks(theirs)
    assert manifest_edit._component_positions(TEXT, manifest, Bump("last", "v9.1.0")) is None  # the last one
