"""convoy.flaky: which failing tests run again (only those that passed on main), quarantine notes,
and what is reported of flaky and quarantined tests (status, notes, provenance, `convoy flakes`),
over a real SQLite store."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from convoy import bep, flaky, retries
from convoy.bazel_result import BazelResult, Outcome
from convoy.changes import markdown
from convoy.commands import status as status_command
from convoy.config import Config, StageSpec
from convoy.config_flaky import QuarantineEntry
from convoy.models import BuildState, RequestState, TargetOutcome, TaskState
from convoy.provenance import target as provenance_target
from convoy.release import release_notes
from convoy.store import SQLiteStore

from tests.support.state import assert_one_line, tree

TODAY = datetime.date.today()
LATER = TODAY + datetime.timedelta(days=30)
STAGE = StageSpec(name="integration", command="test")
ENTRY = QuarantineEntry(target="//a:radio", reason="flaky radio (#123)", until=LATER, configurations=("rover",))


def run(outcome, *targets, reason=None, kind=None):
    result = BazelResult(outcome=outcome, exit_code=3 if outcome is Outcome.TESTS_FAILED else 0, duration=1.0,
                         log_path=Path("/logs/t.log"), bep_path=Path("/logs/t.bep.json"),
                         targets=tuple(bep.TargetResult(label=label, status=status) for label, status in targets),
                         detail="")
    return retries.Attempt(result=result, targets=tuple(t[0] for t in targets), reason=reason, kind=kind)


def merged_results(store, *rows, state=RequestState.MERGED):
    """A request in `state` with a succeeded build whose results are `rows` ((target, status) in rover)."""
    with store.transaction() as tx:
        request = tx.insert_request(component="messages", version="v1", requested_by="ci")
        build = tx.insert_build(request.id, "a" * 40, "b" * 40)
        tx.update_build(build.id, state=BuildState.SUCCEEDED)
        tx.update_request(request.id, state=state)
        tx.add_test_results(dict(target=t, status=s, configuration="rover", stage="integration",
                                 request_id=request.id, build_id=build.id) for t, s in rows)


def test_a_failing_test_that_passed_on_main_runs_again_at_most_retry_failed_times(store):
    merged_results(store, ("//a:t", "passed"), ("//a:u", "flaky"))
    policy = flaky.retry_known_on_main(store, STAGE, "rover")
    first = run(Outcome.TESTS_FAILED, ("//a:t", bep.FAILED), ("//a:u", bep.FAILED), ("//a:v", bep.PASSED))
    retry = retries.next_retry((policy,), [first])
    assert retry == retries.Retry(targets=("//a:t", "//a:u"), kind="main",
                                  reason="failed here but passed on main: they ran again (1 of 1, retry_failed)")
    again = run(Outcome.TESTS_FAILED, ("//a:t", bep.FAILED), ("//a:u", bep.PASSED), reason=retry.reason, kind="main")
    assert retries.next_retry((policy,), [first, again]) is None  # once, by default
    twice = flaky.retry_known_on_main(store, StageSpec(name="i", command="test", retry_failed=2), "rover")
    assert retries.next_retry((twice,), [first, again]).reason.endswith("(2 of 2, retry_failed)")
    off = flaky.retry_known_on_main(store, StageSpec(name="i", command="test", retry_failed=0), "rover")
    assert retries.next_retry((off,), [first]) is None
    # Another policy's runs (another rig) do not use up convoy's retry.
    rig = run(Outcome.TESTS_FAILED, ("//a:t", bep.FAILED), reason="other rig", kind="rig")
    assert retries.next_retry((policy,), [first, rig]).targets == ("//a:t", "//a:u")
    verdict = retries.judge([first, again])
    assert [(t.label, t.status) for t in verdict.targets] == [
        ("//a:t", bep.FAILED), ("//a:u", bep.FLAKY), ("//a:v", bep.PASSED)]


def test_a_test_new_on_main_never_runs_again_nor_do_the_others_with_it(store):
    merged_results(store, ("//a:t", "passed"), ("//a:red", "failed"))
    merged_results(store, ("//a:rejected", "passed"), state=RequestState.REJECTED)
    policy = flaky.retry_known_on_main(store, STAGE, "rover")
    for label in ("//a:new", "//a:red", "//a:rejected"):  # no pass on main: new, red there, never merged
        assert retries.next_retry((policy,), [run(Outcome.TESTS_FAILED, (label, bep.FAILED))]) is None
    assert flaky.retry_known_on_main(store, STAGE, "drone")([run(Outcome.TESTS_FAILED)], ["//a:t"]) is None
    # //a:t alone would run again; with a new failing test, the request is rejected anyway: nothing runs.
    mixed = run(Outcome.TESTS_FAILED, ("//a:t", bep.FAILED), ("//a:new", bep.FAILED))
    assert retries.next_retry((policy,), [mixed]) is None
    assert retries.judge([mixed]).outcome is Outcome.TESTS_FAILED


def test_a_quarantined_test_does_not_count_for_the_retry_and_does_not_reject(store):
    merged_results(store, ("//a:t", "passed"))
    config = Config(path="convoy.yaml", quarantine=(ENTRY,))
    note = flaky.quarantine_note(config, "rover")
    assert note("//a:radio") == f"quarantined until {LATER.isoformat()}: flaky radio (#123)"
    assert note("//a:t") is None and flaky.quarantine_note(config, "drone")("//a:radio") is None
    assert flaky.quarantine_note(config, "rover", today=LATER + datetime.timedelta(days=1))("//a:radio") is None
    policy = flaky.retry_known_on_main(store, STAGE, "rover", quarantined=note)
    first = run(Outcome.TESTS_FAILED, ("//a:t", bep.FAILED), ("//a:radio", bep.FAILED))
    assert retries.next_retry((policy,), [first]).targets == ("//a:t",)  # the radio test, new on main, is held
    assert retries.next_retry((policy,), [run(Outcome.TESTS_FAILED, ("//a:radio", bep.FAILED))]) is None
    verdict = retries.judge([first, run(Outcome.PASSED, ("//a:t", bep.PASSED), reason="r", kind="main")],
                            quarantined=note)
    assert verdict.outcome is Outcome.PASSED
    assert [(t.label, t.status) for t in verdict.targets] == [("//a:t", bep.FLAKY), ("//a:radio", "quarantined")]


def build_with_held_tests(store):
    """A merged request whose build had a flaky and a quarantined test in rover; its id and build id."""
    with store.transaction() as tx:
        request = tx.insert_request(component="messages", version="v1", requested_by="ci", tag="v2026.12.1",
                                    state=RequestState.MERGED)
        build = tx.insert_build(request.id, "a" * 40, "b" * 40)
        tx.update_build(build.id, state=BuildState.SUCCEEDED)
        stage = tx.insert_stage(build.id, 0, "integration", "test")
        task = tx.insert_task(stage.id, build.id, "rover")
        tx.update_task(task.id, state=TaskState.SUCCEEDED, outcome="PASSED", targets=(
            TargetOutcome(label="//a:t", status="flaky", attempts=2, notes=("failed here but passed on main",)),
            TargetOutcome(label="//a:radio", status="quarantined", notes=(ENTRY.note,)),
            TargetOutcome(label="//a:u", status="passed")))
    return request.id, build.id


def test_held_tests_are_in_the_status_the_notes_and_the_provenance(store):
    request_id, build_id = build_with_held_tests(store)
    with store.read() as tx:
        lines = flaky.release_lines(tx, [build_id, build_id])
        row = status_command.row(tx, tx.request(request_id))
    assert lines == [
        "integration / rover: //a:t flaky (2 runs: failed here but passed on main)",
        f"integration / rover: //a:radio quarantined (1 run: quarantined until {LATER.isoformat()}: flaky radio "
        "(#123))",
    ]
    assert row["note"] == f"tag v2026.12.1; 1 quarantined, 1 flaky: convoy show {request_id}"
    assert [t["label"] for t in row["quarantined"]] == ["//a:radio"] and row["flaky"][0]["attempts"] == 2
    notes = release_notes("v1", [], request_line="x (request 1)", test_summary=["integration: passed"],
                          held_lines=lines)
    assert notes.endswith(f"Tests:\n  integration: passed\n\nFlaky and quarantined tests:\n  {lines[0]}\n"
                          f"  {lines[1]}\n")
    assert "Flaky" not in release_notes("v1", [], request_line="x", test_summary=[])
    md = markdown("v1", "x", [], requests_lines=[], tests_lines=["t"], previous=None, held_lines=lines)
    assert md.endswith("## Flaky and quarantined tests\n\n- integration / rover: //a:t flaky (2 runs: failed here "
                       "but passed on main)\n- integration / rover: //a:radio quarantined (1 run: quarantined until "
                       f"{LATER.isoformat()}: flaky radio (\\#123))\n")
    with store.read() as tx:
        targets = [provenance_target(t) for t in tx.tasks(build_id=build_id)[0].targets]
    assert targets == [
        {"label": "//a:t", "status": "flaky", "cached": False, "attempts": 2,
         "notes": ["failed here but passed on main"]},
        {"label": "//a:radio", "status": "quarantined", "cached": False, "attempts": 1, "notes": [ENTRY.note]},
        {"label": "//a:u", "status": "passed", "cached": False},
    ]


def test_rates_are_per_configuration_and_rig_worst_first_over_the_last_runs(tmp_path):
    with SQLiteStore(tmp_path / "state.db") as store:
        with store.transaction() as tx:
            row = dict(stage="hardware", configuration="rover")
            tx.add_test_results([dict(row, target="//hw:t", status="passed", rigs=["r1"]),
                                 dict(row, target="//hw:t", status="flaky", attempts=2, rigs=["r1", "r2"]),
                                 dict(row, target="//a:clean", status="passed"),
                                 dict(row, target="//a:t", status="failed"),
                                 dict(row, target="//a:t", status="failed", configuration="drone"),
                                 dict(row, target="//a:t", status="passed", configuration="drone"),
                                 dict(row, target="//a:radio", status="quarantined", request_id=None)])
        with store.read() as tx:
            results = tx.test_results()
    entries = (ENTRY, QuarantineEntry(target="//a:gone", reason="r", until=LATER))
    rows = [r.to_dict() for r in flaky.rates(results, quarantine=entries, last=10)]
    assert [(r["target"], r["configuration"], r["runs"], r["flaky"], r["failed"]) for r in rows] == [
        ("//a:radio", "rover", 1, 0, 1), ("//a:t", "rover", 1, 0, 1),  # every run went wrong
        ("//a:t", "drone", 2, 0, 1), ("//hw:t", "rover", 2, 1, 0),  # half: the newest first
        ("//a:clean", "rover", 1, 0, 0), ("//a:gone", "*", 0, 0, 0),
    ]
    hw = rows[3]
    assert hw["rigs"] == {"r1": {"runs": 2, "flaky": 1, "failed": 0, "flake_rate": 0.5, "failure_rate": 0.0},
                          "r2": {"runs": 1, "flaky": 1, "failed": 0, "flake_rate": 1.0, "failure_rate": 0.0}}
    assert (hw["flake_rate"], hw["last_status"]) == (0.5, "flaky")
    assert rows[0]["quarantine"] == {"reason": "flaky radio (#123)", "until": LATER.isoformat(),
                                     "configurations": ["rover"]}
    assert rows[2]["quarantine"] is None  # the entry is rover's
    last_one = {(r.target, r.configuration): r.counts for r in flaky.rates(results, last=1)}
    assert (last_one["//a:t", "drone"].runs, last_one["//a:t", "drone"].failed) == (1, 0)  # its newest passed


def test_convoy_flakes_prints_the_worst_first_and_json_lists_every_test(state_checkout, capsys, convoy):
    with SQLiteStore(state_checkout / ".convoy" / "state.db") as store, store.transaction() as tx:
        row = dict(stage="integration", configuration="main", request_id=1)
        tx.add_test_results([dict(row, target="//a:ok", status="passed"), dict(row, target="//a:t", status="passed"),
                             dict(row, target="//a:t", status="flaky", attempts=2),
                             dict(row, target="//a:\x1b[31mred", status="failed")])
    capsys.readouterr()
    assert convoy("flakes", f"--repo={state_checkout}") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["TARGET", "CONFIG", "RUNS", "FLAKY", "FAILED", "FLAKE", "FAIL", "LAST"]
    assert out[1].split() == ["//a:\\x1b[31mred", "main", "1", "0", "1", "0%", "100%", "failed", "(request", "1)"]
    assert out[2].split() == ["//a:t", "main", "2", "1", "0", "50%", "0%", "flaky", "(request", "1)"]
    assert out[3] == "1 other test passed every run counted (at most 50 each; convoy flakes --json lists them)"
    assert convoy("flakes", f"--repo={state_checkout}", "--json", "--last=1") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["target"], r["runs"], r["flaky"]) for r in rows] == [
        ("//a:\x1b[31mred", 1, 0), ("//a:t", 1, 1), ("//a:ok", 1, 0)]
    before = tree(state_checkout)
    assert convoy("flakes", f"--repo={state_checkout}", "--last=0") == 2
    assert_one_line(2, capsys.readouterr().err, "--last=0 is not a number of runs (1 to 10000)")
    assert tree(state_checkout) == before


def test_a_mistake_in_the_quarantine_stops_convoy_process_and_changes_nothing(state_checkout, capsys, convoy):
    yesterday = TODAY - datetime.timedelta(days=1)
    (state_checkout / "convoy.yaml").write_text(
        "queue: {mode: serial, poll_interval: 1}\n"
        "quarantine:\n"
        f"  - {{target: //integration:plan_to_motion_test, reason: slow, until: {yesterday.isoformat()}}}\n"
        f"  - {{target: //integration/..., reason: all of them, until: {LATER.isoformat()}}}\n"
        "stages:\n  - {name: build, command: build, retry_failed: 2}\n")
    before = tree(state_checkout)
    capsys.readouterr()
    assert convoy("process", "--once", f"--repo={state_checkout}") == 2
    err = capsys.readouterr().err.replace(f"{state_checkout}/", "")
    assert err.splitlines() == [
        f"convoy: error: convoy.yaml:3: quarantine[0] (//integration:plan_to_motion_test): expired on "
        f"{yesterday.isoformat()}; fix the test or move its until date",
        "convoy: error: convoy.yaml:4: quarantine[1] (//integration/...): '//integration/...' is not a test's "
        "label; name one test, like //integration:plan_to_motion_test (no patterns)",
        "convoy: error: convoy.yaml:6: stages.build.retry_failed: applies to test stages only (a build has no "
        "tests to run again); remove it, or set it on a stage with command: test",
    ]
    assert tree(state_checkout) == before
    with SQLiteStore(state_checkout / ".convoy" / "state.db", readonly=True) as store, store.read() as tx:
        assert tx.request(1).state is RequestState.QUEUED and tx.builds(1) == []
