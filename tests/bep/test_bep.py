"""convoy.bep: reading build event files that the real Bazel wrote (in the
`bazel_ws` workspace of tests/conftest.py): passed, failed, flaky, timed out, skipped, not
built, cached, stopped early; and files cut short or garbled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convoy.bep import BepSummary, TargetResult, read_bep

MAIN_FLAGS = ["--keep_going", "--flaky_test_attempts=//bep:flaky_test@2", "--test_timeout=2"]


@pytest.fixture(scope="module")
def main_run(bazel_ws):
    """`bazel test --keep_going //bep:all`: one of each outcome."""
    result = bazel_ws.run("test", ["//bep:all"], name="bep-main", flags=MAIN_FLAGS)
    assert result.exit_code == 1, result.log_path.read_text()  # keep_going with a target that did not build
    return result


@pytest.fixture(scope="module")
def main(main_run) -> BepSummary:
    return read_bep(main_run.bep_path)


def _target(summary: BepSummary, label: str) -> TargetResult:
    found = [t for t in summary.targets if t.label == label]
    assert len(found) == 1, summary.targets
    return found[0]


@pytest.mark.bazel
def test_the_command_and_its_exit(main):
    assert main.complete
    assert (main.exit_code, main.exit_name) == (1, "BUILD_FAILURE")
    assert sorted(t.label for t in main.targets) == [
        "//bep:fail_test", "//bep:failing_gen", "//bep:flaky_test", "//bep:needs_gen_test", "//bep:pass_test",
        "//bep:skipped_test", "//bep:timeout_test",
    ]


@pytest.mark.bazel
def test_passed(main):
    target = _target(main, "//bep:pass_test")
    assert (target.status, target.cached, target.attempts) == ("passed", False, 1)
    assert target.duration_ms is not None and target.duration_ms >= 0
    assert len(target.log_paths) == 1 and target.log_paths[0].endswith("/testlogs/bep/pass_test/test.log")
    assert Path(target.log_paths[0]).read_text().count("passing on purpose") == 1
    assert not target.failing


@pytest.mark.bazel
def test_failed(main):
    target = _target(main, "//bep:fail_test")
    assert (target.status, target.attempts) == ("failed", 1)
    assert target.failing
    assert "failing on purpose" in Path(target.log_paths[0]).read_text()


@pytest.mark.bazel
def test_flaky_keeps_both_attempts_logs(main):
    target = _target(main, "//bep:flaky_test")
    assert (target.status, target.attempts, target.cached) == ("flaky", 2, False)
    assert not target.failing
    first, second = target.log_paths
    assert first.endswith("/testlogs/bep/flaky_test/test_attempts/attempt_1.log")
    assert second.endswith("/testlogs/bep/flaky_test/test.log")
    assert "first" in Path(first).read_text() and "second" in Path(second).read_text()


@pytest.mark.bazel
def test_timeout(main):
    target = _target(main, "//bep:timeout_test")
    assert target.status == "timeout"
    assert target.failing
    assert target.duration_ms is not None and target.duration_ms >= 2000


@pytest.mark.bazel
def test_incompatible_target_is_skipped(main):
    target = _target(main, "//bep:skipped_test")
    assert target == TargetResult("//bep:skipped_test", "skipped")
    assert not target.failing


@pytest.mark.bazel
@pytest.mark.parametrize("label", ["//bep:failing_gen", "//bep:needs_gen_test"])
def test_targets_that_did_not_build(main, label):
    target = _target(main, label)
    assert (target.status, target.log_paths, target.duration_ms) == ("failed_to_build", (), None)
    assert target.failing


@pytest.mark.bazel
def test_failing_is_every_target_that_failed_timed_out_or_did_not_build(main):
    assert [t.label for t in main.failing()] == [t.label for t in main.targets if t.status in (
        "failed", "timeout", "failed_to_build")]


@pytest.mark.bazel
def test_a_second_run_is_cached(bazel_ws, main_run):
    result = bazel_ws.run("test", ["//bep:pass_test"], name="bep-cached", flags=MAIN_FLAGS)
    summary = read_bep(result.bep_path)

    assert (summary.exit_code, summary.exit_name, summary.complete) == (0, "SUCCESS", True)
    (target,) = summary.targets
    assert (target.label, target.status, target.cached) == ("//bep:pass_test", "passed", True)
    first = _target(read_bep(main_run.bep_path), "//bep:pass_test")
    assert target.duration_ms == first.duration_ms  # Bazel reports the cached run's time
    assert target.log_paths == first.log_paths


@pytest.mark.bazel
def test_build_reports_built_and_skipped(bazel_ws):
    # An incompatible target is skipped only when a pattern names it (named
    # on its own, it is an error).
    targets = ["//bep:all", "-//bep:failing_gen", "-//bep:needs_gen_test"]
    result = bazel_ws.run("build", targets, name="bep-build")
    summary = read_bep(result.bep_path)

    assert (summary.exit_code, summary.exit_name) == (0, "SUCCESS"), result.log_path.read_text()
    assert {t.label: t.status for t in summary.targets} == {
        "//bep:pass_test": "built", "//bep:fail_test": "built", "//bep:flaky_test": "built",
        "//bep:timeout_test": "built", "//bep:skipped_test": "skipped",
    }


@pytest.mark.bazel
def test_a_build_stopped_early_leaves_tests_without_status(bazel_ws):
    # Without --keep_going Bazel stops at the failing genrule and closes
    # the other announced events as aborted.
    result = bazel_ws.run("test", ["//bep/stopped:all"], name="bep-stopped")
    summary = read_bep(result.bep_path)

    assert (summary.exit_code, summary.complete) == (1, True)
    statuses = {t.label: t.status for t in summary.targets}
    assert set(statuses) == {"//bep/stopped:failing_gen", "//bep/stopped:needs_gen_test", "//bep/stopped:other_test"}
    # Which targets Bazel reached before it stopped varies from run to run:
    # the genrule or the test that needs it did not build; the rest has no
    # status (or passed, if it ran first). Nothing is "incomplete": the
    # run was not interrupted.
    assert "failed_to_build" in statuses.values(), statuses
    assert statuses["//bep/stopped:failing_gen"] in ("failed_to_build", "no_status")
    assert statuses["//bep/stopped:needs_gen_test"] in ("failed_to_build", "no_status")
    assert statuses["//bep/stopped:other_test"] in ("no_status", "passed")


@pytest.mark.bazel
def test_a_file_cut_short_is_incomplete_not_an_error(main_run, tmp_path):
    text = main_run.bep_path.read_text()
    lines = text.splitlines(keepends=True)
    # Cut inside the line of the first test summary: the targets before it
    # are still there, the exit code is not.
    cut = next(i for i, line in enumerate(lines) if '"testSummary"' in line and '"overallStatus"' in line)
    truncated = tmp_path / "killed.json"
    truncated.write_text("".join(lines[:cut]) + lines[cut][: len(lines[cut]) // 2])

    summary = read_bep(truncated)

    assert summary.complete is False
    assert summary.exit_code is None and summary.exit_name is None
    assert summary.targets  # what was written before the cut
    assert all(t.status != "passed" or t.log_paths for t in summary.targets)


def test_a_missing_file_is_empty_and_incomplete(tmp_path):
    assert read_bep(tmp_path / "never-written.json") == BepSummary((), None, None, False)


def test_garbage_lines_are_skipped(tmp_path):
    path = tmp_path / "bep.json"
    events = [
        {"id": {"targetCompleted": {"label": "//a:b"}}, "completed": {"success": True}},
        "not an object",
        {"id": {"buildFinished": {}}, "finished": {"exitCode": {"name": "SUCCESS"}}},
        {"id": {"progress": {}}, "lastMessage": True},
    ]
    path.write_text("\n".join(json.dumps(e) for e in events[:1]) + "\n{not json\n[1, 2]\n"
                    + "\n".join(json.dumps(e) for e in events[1:]) + "\n")

    assert read_bep(path) == BepSummary((TargetResult("//a:b", "built"),), 0, "SUCCESS", True)
