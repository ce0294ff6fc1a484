"""convoy.release: the next tag, what changed between two locks, and the
release notes, as exact text."""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path

import pytest

from convoy.errors import ConvoyError
from convoy.lock import Lock
from convoy.release import PinChange, next_tag, parse_tag, pin_changes, release_notes, short_pin

REPO = Path(__file__).resolve().parents[2]
FORMAT = "v{year}.{month}.{n}"
NOV_5 = datetime.date(2026, 11, 5)


# -- tags -------------------------------------------------------------------------


@pytest.mark.parametrize("existing, when, expected", [
    ([], NOV_5, "v2026.11.1"),
    (["v2026.11.1", "v2026.11.2"], NOV_5, "v2026.11.3"),
    (["v2026.11.2", "v2026.11.10", "v2026.11.9"], NOV_5, "v2026.11.11"),  # numbers, not strings
    (["v2026.10.7", "v2025.11.4"], NOV_5, "v2026.11.1"),                   # another month, another year
    (["v2026.11.1"], datetime.date(2026, 3, 1), "v2026.3.1"),              # month not zero-padded
    (["v2026.11.x", "v2026.011.5", "v2026.11.3-rc", "2026.11.4", "release-1"], NOV_5, "v2026.11.1"),  # not ours
])
def test_next_tag(existing, when, expected):
    assert next_tag(FORMAT, existing, when) == expected


def test_next_tag_with_day_and_padding():
    fmt = "rel-{year}{month:02d}{day:02d}.{n}"
    existing = ["rel-20261105.1", "rel-20261105.4", "rel-20261104.9", "rel-2026115.8"]
    assert next_tag(fmt, existing, NOV_5) == "rel-20261105.5"
    assert next_tag(fmt, existing, datetime.date(2026, 11, 6)) == "rel-20261106.1"


def test_next_tag_without_date_fields_counts_up_forever():
    assert next_tag("release-{n}", ["release-1", "release-7", "v2026.11.8"], NOV_5) == "release-8"


@pytest.mark.parametrize("fmt, problem", [
    ("v{year}.{month}", "release tag format 'v{year}.{month}' has no {n} (the release number that keeps tags "
                        "unique); fix release.tag_format, e.g. \"v{year}.{month}.{n}\""),
    ("v{major}.{n}", "release tag format 'v{major}.{n}' uses unknown fields {major} (only {year}, {month}, {day}, "
                     "{n} exist); fix release.tag_format, e.g. \"v{year}.{month}.{n}\""),
])
def test_next_tag_with_a_bad_format(fmt, problem):
    with pytest.raises(ConvoyError) as info:
        next_tag(fmt, [], NOV_5)
    assert str(info.value) == problem


@pytest.mark.parametrize("tag, fields", [
    ("v2026.11.3", {"year": 2026, "month": 11, "n": 3}),
    ("v2026.3.12", {"year": 2026, "month": 3, "n": 12}),
    ("v2026.03.12", None),   # the format does not pad
    ("v2026.11", None),
    ("v2026.11.3.1", None),
    ("x2026.11.3", None),
    ("v26.11.3", None),
])
def test_parse_tag(tag, fields):
    assert parse_tag(FORMAT, tag) == fields


def test_parse_tag_with_regex_characters_in_the_format():
    assert parse_tag("r+{year}.({n})", "r+2026.(4)") == {"year": 2026, "n": 4}
    assert parse_tag("r+{year}.({n})", "rr2026x(4)") is None


# -- pin changes -----------------------------------------------------------------------


def _lock() -> dict:
    return json.loads((REPO / "manifests" / "manifest.lock.json").read_text())


def _git(version: str, commit: str) -> dict:
    return {"source": "git", "remote": "https://git.example.com/x.git", "version": version, "commit": commit}


C1, C2 = "1a2b3c4d" + "0" * 32, "5e6f7a8b" + "f" * 32
S1 = "9" * 8 + "a" * 56


def test_no_change():
    assert pin_changes(_lock(), _lock()) == []


def test_a_version_and_pin_change_in_each_configuration_that_has_it():
    old, new = _lock(), _lock()
    for lock, version, commit in ((old, "v1.2.0", C1), (new, "v1.3.0", C2)):
        for name in ("drone", "rover"):
            lock["configurations"][name]["components"]["controller"] = _git(version, commit)

    assert pin_changes(old, new) == [
        PinChange("drone", "controller", "v1.2.0", "v1.3.0", C1, C2),
        PinChange("rover", "controller", "v1.2.0", "v1.3.0", C1, C2),
    ]


def test_same_version_new_pin_is_a_change_other_fields_are_not():
    old, new = _lock(), _lock()
    old["configurations"]["rover"]["components"]["planner"] = _git("v2.1.0", C1)
    new["configurations"]["rover"]["components"]["planner"] = dict(_git("v2.1.0", C2), remote="https://elsewhere")
    new["configurations"]["drone"]["components"]["messages"]["note"] = "not a pin"

    assert pin_changes(old, new) == [PinChange("rover", "planner", "v2.1.0", "v2.1.0", C1, C2)]


def test_added_and_removed_components_and_configurations():
    old, new = _lock(), _lock()
    del new["configurations"]["drone"]["components"]["firmware"]
    new["configurations"]["drone"]["components"]["planner"] = {
        "source": "archive", "url": "https://x/p.tgz", "version": "v2.2.0", "sha256": S1}
    new["configurations"]["boat"] = {"components": {"messages": _git("v1.4.0", C1)}}
    del new["configurations"]["rover"]

    changes = pin_changes(old, new)

    assert changes[:3] == [
        PinChange("boat", "messages", None, "v1.4.0", None, C1),
        PinChange("drone", "firmware", "v2.9.4", None, "examples/components/firmware/v2.9.4", None),
        PinChange("drone", "planner", None, "v2.2.0", None, S1),
    ]
    assert [(c.configuration, c.new_version) for c in changes[3:]] == [("rover", None)] * 4


def test_no_previous_lock_makes_everything_new():
    changes = pin_changes(None, _lock())
    assert len(changes) == 7
    assert changes[0] == PinChange("drone", "controller", None, "v1.2.0", None, "examples/components/controller/v1.2.0")


def test_a_lock_object_works_too():
    new = _lock()
    new["configurations"]["rover"]["components"]["planner"]["version"] = "v2.2.0"
    lock = Lock.from_json(json.dumps(_lock()), "old.json")
    assert pin_changes(lock, copy.deepcopy(new)) == [
        PinChange("rover", "planner", "v2.1.0", "v2.2.0", "examples/components/planner/v2.1.0",
                  "examples/components/planner/v2.1.0"),
    ]


# -- notes ------------------------------------------------------------------------------


def test_release_notes():
    changes = [
        PinChange("drone", "firmware", "v2.9.4", "v2.9.5", C1, C2),
        PinChange("rover", "planner", "v2.1.0", "v2.2.0", S1, "9" * 64),
        PinChange("rover", "controller", None, "v1.2.0", None, "examples/components/controller/v1.2.0"),
        PinChange("bench", "rig", "v0.1", None, C1, None),
    ]
    notes = release_notes(
        "v2026.11.3", changes, request_line="planner v2.1.0 -> v2.2.0 (request 7)",
        test_summary=["build: 2 tasks passed", "integration: 6 tests passed (1 flaky)"], previous_tag="v2026.11.2",
    )
    assert notes == (
        "v2026.11.3: planner v2.1.0 -> v2.2.0 (request 7)\n"
        "\n"
        "Components changed since v2026.11.2:\n"
        "  drone/firmware: v2.9.4 (1a2b3c4d) -> v2.9.5 (5e6f7a8b)\n"
        "  rover/planner: v2.1.0 (99999999) -> v2.2.0 (99999999)\n"
        "  rover/controller: (none) -> v1.2.0 (examples/components/controller/v1.2.0)\n"
        "  bench/rig: v0.1 (1a2b3c4d) -> (none)\n"
        "\n"
        "Tests:\n"
        "  build: 2 tasks passed\n"
        "  integration: 6 tests passed (1 flaky)\n"
    )


def test_first_release_notes_with_nothing_to_list():
    assert release_notes("v2026.11.1", [], request_line="first release", test_summary=[]) == (
        "v2026.11.1: first release\n"
        "\n"
        "Components changed since the start:\n"
        "  (none)\n"
        "\n"
        "Tests:\n"
        "  (none)\n"
    )


def test_short_pins():
    assert short_pin(C1) == "1a2b3c4d"
    assert short_pin("A" * 64) == "AAAAAAAA"
    assert short_pin("examples/components/x/v1") == "examples/components/x/v1"
    assert short_pin("1a2b3c") == "1a2b3c"  # not a full id: shown as it is
    assert short_pin(None) is None
    assert PinChange("c", "x", "v1", "v2", None, None).describe() == "c/x: v1 -> v2"


def test_the_test_summary_says_what_ran_what_was_cached_and_what_was_unchanged(tmp_path):
    from convoy import models
    from convoy.models import TargetOutcome, TaskState
    from convoy.release import stage_summary
    from convoy.store import SQLiteStore

    with SQLiteStore(tmp_path / "state.db") as store:
        with store.transaction() as tx:
            request = tx.insert_request(component="planner", version="v2.2.0", requested_by="t")
            build = tx.insert_build(request.id, "a" * 40, "b" * 40)
            stage = tx.insert_stage(build.id, 0, "hardware", "test")
            ran = tx.insert_task(stage.id, build.id, "rover")
            tx.update_task(ran.id, state=TaskState.SUCCEEDED, outcome="PASSED", detail="2 tests passed (1 cached)",
                           targets=(TargetOutcome("//i:a_test", "passed", cached=True),
                                    TargetOutcome("//i:b_test", "passed", duration_ms=20000),
                                    TargetOutcome("//i:lib", "built")))
            skipped = tx.insert_task(stage.id, build.id, "drone")
            tx.update_task(skipped.id, state=TaskState.SKIPPED, outcome=models.UNCHANGED,
                           detail=models.UNCHANGED_DETAIL)
        assert stage_summary(store, build.id) == [
            "hardware / rover: passed (1 ran, 1 cached): 2 tests passed (1 cached)",
            "  //i:a_test: passed, cached",
            "  //i:b_test: passed, ran",
            f"hardware / drone: {models.UNCHANGED_DETAIL}",
        ]
