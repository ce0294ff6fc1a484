"""convoy.retries: which runs of a task's failing tests come next, and the verdict over them."""

from __future__ import annotations

from pathlib import Path

from convoy import bep, retries
from convoy.bazel_result import BazelResult, Outcome


def run(outcome, *targets, rigs=None, reason=None, kind=None):
    result = BazelResult(outcome=outcome, exit_code={Outcome.PASSED: 0, Outcome.TESTS_FAILED: 3}.get(outcome, 1),
                         duration=1.0, log_path=Path("/logs/t.log"), bep_path=Path("/logs/t.bep.json"),
                         targets=tuple(bep.TargetResult(label=label, status=status) for label, status in targets),
                         detail=f"{outcome.name} detail")
    return retries.Attempt(result=result, targets=tuple(t[0] for t in targets), reason=reason, kind=kind,
                           rigs={"runs": rigs or []})


def test_only_failed_tests_are_retried_and_the_first_policy_that_asks_wins():
    asked = []

    def never(attempts, failing):
        asked.append(("never", tuple(failing)))
        return None

    def again(attempts, failing):
        asked.append(("again", tuple(failing)))
        return retries.Retry(targets=tuple(failing), reason="it passed on main", kind="main")

    first = run(Outcome.TESTS_FAILED, ("//a:t", bep.FAILED), ("//a:u", bep.PASSED))
    retry = retries.next_retry((never, again), [first])
    assert retry == retries.Retry(targets=("//a:t",), reason="it passed on main", kind="main")
    assert asked == [("never", ("//a:t",)), ("again", ("//a:t",))]
    # A build failure, an infrastructure error or a pass is never a test's to retry.
    for outcome in (Outcome.BUILD_FAILED, Outcome.INFRA_ERROR, Outcome.PASSED, Outcome.TIMEOUT):
        assert retries.next_retry((again,), [run(outcome, ("//a:t", bep.FAILED))]) is None
    # Nothing failing after a rerun: nothing more to run.
    assert retries.next_retry((again,), [first, run(Outcome.PASSED, ("//a:t", bep.PASSED))]) is None


def test_a_test_that_failed_then_passed_is_flaky_and_the_task_passes():
    first = run(Outcome.TESTS_FAILED, ("//a:t", bep.FAILED), ("//a:u", bep.PASSED))
    second = run(Outcome.PASSED, ("//a:t", bep.PASSED), reason="passed on main", kind="main")
    verdict = retries.judge([first, second])
    assert verdict.outcome is Outcome.PASSED
    assert [(t.label, t.status, t.attempts, t.notes) for t in verdict.targets] == [
        ("//a:t", bep.FLAKY, 2, ("passed on main",)), ("//a:u", bep.PASSED, 1, ())]
    assert verdict.retried == ("//a:t",)
    assert verdict.detail == "2 tests passed (1 flaky: //a:t)"


def test_a_test_that_fails_again_rejects_and_the_detail_says_after_how_many_runs():
    first = run(Outcome.TESTS_FAILED, ("//a:t", bep.FAILED))
    verdict = retries.judge([first, run(Outcome.TESTS_FAILED, ("//a:t", bep.FAILED), reason="r", kind="main")])
    assert verdict.outcome is Outcome.TESTS_FAILED
    assert verdict.detail == "1 test failed after 2 runs: //a:t"
    assert [t.label for t in verdict.failing] == ["//a:t"]


def test_a_quarantined_failure_does_not_fail_the_task_and_is_noted():
    first = run(Outcome.TESTS_FAILED, ("//a:t", bep.FAILED), ("//a:u", bep.PASSED))
    note = {"//a:t": "quarantined until 2027-01-31: flaky radio"}.get
    verdict = retries.judge([first], quarantined=note)
    assert verdict.outcome is Outcome.PASSED
    assert [(t.label, t.status, t.notes) for t in verdict.targets] == [
        ("//a:t", retries.QUARANTINED, ("quarantined until 2027-01-31: flaky radio",)), ("//a:u", bep.PASSED, ())]
    assert verdict.detail == "2 tests passed (1 quarantined: //a:t)"
    # Another failing test still fails the task.
    both = run(Outcome.TESTS_FAILED, ("//a:t", bep.FAILED), ("//a:v", bep.FAILED))
    assert retries.judge([both], quarantined=note).outcome is Outcome.TESTS_FAILED


def test_failures_that_are_all_the_rigs_are_an_infrastructure_error_and_rigs_are_listed_in_order():
    runs1 = [{"target": "//hw:t", "rig": "rover-rigs-1", "exit_code": 75}]
    runs2 = [{"target": "//hw:t", "rig": "rover-rigs-2", "exit_code": 75}]
    first = run(Outcome.TESTS_FAILED, ("//hw:t", bep.FAILED), rigs=runs1)
    second = run(Outcome.TESTS_FAILED, ("//hw:t", bep.FAILED), rigs=runs2, reason="other rig", kind="rig")
    everywhere = lambda attempts, label: True  # noqa: E731
    verdict = retries.judge([first, second], infra=everywhere)
    assert verdict.outcome is Outcome.INFRA_ERROR and verdict.infra_targets == ("//hw:t",)
    assert verdict.targets[0].rigs == ("rover-rigs-1", "rover-rigs-2")
    assert "rig-side failures, not the change's: //hw:t" in verdict.detail
    assert retries.judge([first, second]).outcome is Outcome.TESTS_FAILED  # the change's: it followed it
    assert first.runs_of("//hw:t") == runs1 and first.runs_of("//other:t") == []


def test_one_run_keeps_bazels_own_outcome_and_detail():
    for outcome, targets in ((Outcome.PASSED, (("//a:t", bep.FLAKY),)), (Outcome.BUILD_FAILED, ()),
                             (Outcome.TESTS_FAILED, (("//a:t", bep.FAILED),))):
        verdict = retries.judge([run(outcome, *targets)])
        assert (verdict.outcome, verdict.detail) == (outcome, f"{outcome.name} detail")


def test_tests_failed_with_no_failing_target_named_is_never_excused():
    # An unreadable build event file: Bazel said tests failed, and no target says which.
    verdict = retries.judge([run(Outcome.TESTS_FAILED)])
    assert (verdict.outcome, verdict.detail) == (Outcome.TESTS_FAILED, "TESTS_FAILED detail")
