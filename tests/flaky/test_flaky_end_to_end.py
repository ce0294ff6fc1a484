"""Flaky and quarantined tests end to end: real git, the real Bazel, `convoy process` in a real process.

One integration repository (module-scoped) with three tests of its own in
//integration/flaky, one script that fails when told to by a marker file in a
directory outside the sandbox (`--test_env=CONVOY_MARKERS=<dir>`; the tests
are `no-sandbox`, and `external` and `no-cache` so that every build runs
them): `<name>.fail-once` fails the next run and is removed by it,
`<name>.fail` fails every run. Stages: build; `integration` (convoy's own
retry, retry_failed 1) with convoy_flaky_test and held_test, which
convoy.yaml quarantines; `bazel_retry` (flaky_test_attempts: 2,
retry_failed: 0) with bazel_flaky_test. Three requests, in order:

1. every test passes: merged; each test now passed on main;
2. convoy_flaky_test and bazel_flaky_test fail once, held_test always:
   merged, convoy_flaky_test FLAKY after convoy's second run, bazel_flaky_test
   FLAKY from Bazel's own second attempt, held_test quarantined; reported
   by status, the notes, the provenance and `convoy flakes`;
3. new_test, committed to main just before, and convoy_flaky_test each fail
   once: new_test never passed on main, so nothing runs again and the request
   is rejected, though a second run would have passed both.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from convoy.models import RequestState

from tests.support.env import isolated_env
from tests.support.integration import config_text
from tests.support.queue import assert_merged_once, submit_rover

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

UNTIL = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
FLAKY = "//integration/flaky:convoy_flaky_test"
BAZEL_FLAKY = "//integration/flaky:bazel_flaky_test"
HELD = "//integration/flaky:held_test"
NEW = "//integration/flaky:new_test"

MARKER_TEST = '''\
"""Fails when a marker file says so: <name>.fail-once (removed: the next run passes) or <name>.fail."""
import os
import sys

name = sys.argv[1]
marker = os.path.join(os.environ["CONVOY_MARKERS"], name)
if os.path.exists(marker + ".fail-once"):
    os.remove(marker + ".fail-once")
    sys.exit(f"{name}: failing this once")
if os.path.exists(marker + ".fail"):
    sys.exit(f"{name}: failing")
print(f"{name}: passed")
'''
BUILD = '''\
load("@rules_python//python:defs.bzl", "py_test")

[py_test(
    name = name,
    size = "small",
    srcs = ["marker_test.py"],
    args = [name],
    main = "marker_test.py",
    tags = [tag, "no-sandbox", "external", "no-cache"],
) for name, tag in [{tests}]]
'''
TESTS = [("convoy_flaky_test", "flaky-fixture"), ("held_test", "flaky-fixture"), ("bazel_flaky_test", "flaky-bazel")]


def stages(markers: Path) -> str:
    env = json.dumps([f"--test_env=CONVOY_MARKERS={markers}"])
    return (
        "stages:\n"
        "  - {name: build, command: build, timeout: 300}\n"
        f"  - {{name: integration, command: test, tag_filter: flaky-fixture, flags: {env}, timeout: 300}}\n"
        f"  - {{name: bazel_retry, command: test, tag_filter: flaky-bazel, flags: {env}, timeout: 300,\n"
        "     flaky_test_attempts: 2, retry_failed: 0}\n"
        "quarantine:\n"
        f"  - {{target: '{HELD}', reason: 'fails on a loaded host (#22)', until: {UNTIL}}}\n"
    )


def write_tests(it, tests) -> None:
    """Commits //integration/flaky with `tests` ((name, tag) pairs) on origin's main."""
    it.git("fetch", "-q", "origin")
    it.git("reset", "-q", "--hard", "origin/main")
    directory = it.checkout / "integration" / "flaky"
    directory.mkdir(exist_ok=True)
    (directory / "marker_test.py").write_text(MARKER_TEST)
    (directory / "BUILD.bazel").write_text(BUILD.format(tests=", ".join(f'("{n}", "{t}")' for n, t in tests)))
    it.git("add", "integration/flaky")
    it.git("commit", "-q", "-m", f"Tests of flaky tests: {', '.join(n for n, _ in tests)}")
    it.git("push", "-q", "origin", "HEAD:main")


@pytest.fixture(scope="module")
def flaky_run(make_integration, tmp_path_factory):
    """The integration repository after the three requests of the module docstring, and their ids."""
    markers = tmp_path_factory.mktemp("markers")
    it = make_integration("flaky", config_text(stages=stages(markers)))
    arm = lambda name, how="fail-once": (markers / f"{name}.{how}").write_text("")  # noqa: E731
    with isolated_env(tmp_path_factory.mktemp("home")):
        write_tests(it, TESTS)
        ids = {"clean": submit_rover(it)}
        done = it.process("--all")
        assert done.code == 0, done
        arm("convoy_flaky_test"), arm("bazel_flaky_test"), arm("held_test", "fail")
        ids["flaky"] = submit_rover(it)
        done = it.process("--all")
        assert done.code == 0, done
        (markers / "held_test.fail").unlink()
        write_tests(it, TESTS + [("new_test", "flaky-fixture")])
        arm("new_test"), arm("convoy_flaky_test")
        ids["new"] = submit_rover(it)
        done = it.process("--all")
        assert done.code == 0, done
    yield it, ids, markers
    it.shutdown_bazel()


def runs(target: dict) -> str:
    count = target.get("attempts", 1)
    return f"{count} run{'s' if count != 1 else ''}"


def targets_of(it, request_id: int, stage: str) -> dict[str, dict]:
    build = it.show(request_id)["builds"][-1]
    task = next(s for s in build["stages"] if s["name"] == stage)["tasks"][0]
    return {t["label"]: t for t in task["targets"] + task["failing_targets"]}, task


def test_a_flaky_test_merges_and_a_quarantined_failure_does_not_reject(flaky_run):
    it, ids, markers = flaky_run
    assert_merged_once(it, ids["clean"])
    request = assert_merged_once(it, ids["flaky"])
    integration, task = targets_of(it, ids["flaky"], "integration")
    assert integration[FLAKY]["status"] == "flaky" and integration[FLAKY]["attempts"] == 2
    assert integration[FLAKY]["notes"][0].startswith("failed here but passed on main: ")
    assert integration[HELD]["status"] == "quarantined"
    assert f"quarantined until {UNTIL}: fails on a loaded host (#22)" in integration[HELD]["notes"]
    assert Path(task["log_path"].replace(".log", ".run-2.log")).is_file()  # convoy's second run
    bazel_retry, task = targets_of(it, ids["flaky"], "bazel_retry")
    assert bazel_retry[BAZEL_FLAKY]["status"] == "flaky" and bazel_retry[BAZEL_FLAKY].get("attempts", 1) == 1
    assert not Path(task["log_path"].replace(".log", ".run-2.log")).exists()  # Bazel's retry, not convoy's
    assert not list(markers.glob("*.fail-once"))
    # reported: convoy status (text and JSON), the tag's notes and NOTES.md, the provenance
    rows = {r["id"]: r for r in json.loads(it.convoy("status", "--json").out)}
    assert [t["label"] for t in rows[ids["flaky"]]["quarantined"]] == [HELD]
    assert sorted(t["label"] for t in rows[ids["flaky"]]["flaky"]) == [BAZEL_FLAKY, FLAKY]
    assert rows[ids["clean"]]["quarantined"] == [] == rows[ids["clean"]]["flaky"]
    assert f"1 quarantined, 2 flaky: convoy show {ids['flaky']}" in it.convoy("status").out
    message = it.origin("tag", "-l", "--format=%(contents)", request.tag)
    held = message.split("Flaky and quarantined tests:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert held == [
        f"  integration / rover: {FLAKY} flaky (2 runs: {integration[FLAKY]['notes'][0]})",
        f"  integration / rover: {HELD} quarantined ({runs(integration[HELD])}: "
        f"{'; '.join(integration[HELD]['notes'])})",
        f"  bazel_retry / rover: {BAZEL_FLAKY} flaky (1 run)",
    ]
    release = it.checkout / ".convoy" / "releases" / request.tag
    assert "## Flaky and quarantined tests" in (release / "NOTES.md").read_text()
    statement = json.loads((release / "provenance.intoto.json").read_text())
    by_label = {t["label"]: t for b in statement["predicate"]["runDetails"]["byproducts"]
                for t in b["annotations"]["targets"] if t["status"] != "built"}
    assert (by_label[HELD]["status"], by_label[FLAKY]["status"], by_label[BAZEL_FLAKY]["status"]) == (
        "quarantined", "flaky", "flaky")
    assert by_label[HELD]["notes"] == integration[HELD]["notes"]
    stage_flags = {b["annotations"]["stage"]: b["annotations"].get("flags") for b in
                   statement["predicate"]["runDetails"]["byproducts"]}
    assert "--flaky_test_attempts=2" in stage_flags["bazel_retry"]
    assert "--flaky_test_attempts=2" not in stage_flags["integration"]


def test_a_new_failing_test_is_rejected_not_retried_into_a_merge(flaky_run):
    it, ids, markers = flaky_run
    request = it.request(ids["new"])
    assert request.state is RequestState.REJECTED, request
    integration, task = targets_of(it, ids["new"], "integration")
    assert (integration[NEW]["status"], integration[FLAKY]["status"]) == ("failed", "failed")
    assert integration[NEW].get("attempts", 1) == 1 and integration[FLAKY].get("attempts", 1) == 1
    assert not Path(task["log_path"].replace(".log", ".run-2.log")).exists()  # nothing ran again
    assert not list(markers.glob("*.fail-once"))  # a second run would have passed both
    completes = [e for e in it.events(ids["new"]) if e.type == "TASK_COMPLETE"]
    assert not any("reruns" in e.data for e in completes)


def test_convoy_flakes_counts_them(flaky_run):
    it, ids, _ = flaky_run
    run = it.convoy("flakes", "--json")
    assert run.code == 0, run
    rows = {(r["target"], r["configuration"]): r for r in json.loads(run.out)}
    counts = {label: (rows[label, "rover"]["runs"], rows[label, "rover"]["flaky"], rows[label, "rover"]["failed"])
              for label in (FLAKY, BAZEL_FLAKY, HELD, NEW)}
    assert counts == {FLAKY: (3, 1, 1), BAZEL_FLAKY: (2, 1, 0), HELD: (3, 0, 1), NEW: (1, 0, 1)}
    assert rows[HELD, "rover"]["quarantine"]["until"] == UNTIL and rows[FLAKY, "rover"]["quarantine"] is None
    text = it.convoy("flakes").out
    assert text.splitlines()[0].split()[:3] == ["TARGET", "CONFIG", "RUNS"]
    assert f"quarantined until {UNTIL}: fails on a loaded host (#22)" in text
    assert [line.split()[0] for line in text.splitlines()[1:] if line.startswith("//")][0] == NEW  # the worst
