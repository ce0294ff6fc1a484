"""lock.changed_configurations: which configurations a bump moved, entry by entry."""

from __future__ import annotations

import json
from pathlib import Path

from convoy.lock import Lock, changed_configurations

REPO = Path(__file__).resolve().parents[2]


def _lock(edit=None) -> Lock:
    data = json.loads((REPO / "manifests" / "manifest.lock.json").read_text())
    if edit is not None:
        edit(data["configurations"])
    return Lock.from_json(json.dumps(data), "manifest.lock.json")


def test_nothing_moved():
    assert changed_configurations(_lock(), _lock()) == frozenset()


def test_only_the_configurations_whose_entries_moved():
    def bump_rover_planner(c):
        c["rover"]["components"]["planner"]["path"] = "examples/components/planner/v2.2.0"
    assert changed_configurations(_lock(), _lock(bump_rover_planner)) == {"rover"}


def test_any_field_counts_not_only_the_version():
    def strip(c):
        c["drone"]["components"]["messages"]["strip_prefix"] = "src"
    assert changed_configurations(_lock(), _lock(strip)) == {"drone"}


def test_added_and_removed_components_and_new_configurations_count():
    def edit(c):
        del c["drone"]["components"]["firmware"]
        c["boat"] = {"components": {"messages": dict(c["rover"]["components"]["messages"])}}
    assert changed_configurations(_lock(), _lock(edit)) == {"drone", "boat"}


def test_without_a_previous_lock_nothing_is_known():
    assert changed_configurations(None, _lock()) is None
