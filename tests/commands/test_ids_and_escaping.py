"""Request ids out of range, and text from the state in `convoy status` and
`convoy show`: every command that takes an id refuses one it cannot hold in
one line; text from the state cannot forge a line of their output.

The checkout is the `state_checkout` fixture (tests/conftest.py,
tests/support/state.py): request 1 queued, request 2 rejected.
"""

from __future__ import annotations

import pytest

from convoy import main
from convoy.models import BuildState, RequestState, StageState, TargetOutcome, TaskState
from convoy.store import SQLiteStore

from tests.support.state import assert_one_line, dump


# -- request ids ---------------------------------------------------------------------


@pytest.mark.parametrize("command", ("show", "cancel", "retry"))
@pytest.mark.parametrize("given", ("99999999999999999999", "9223372036854775808", "1" + "0" * 5000, "²"))
def test_an_id_out_of_range_is_one_line(state_checkout, capsys, command, given):
    before = dump(state_checkout)
    code = main.main(["convoy", command, f"--repo={state_checkout}", given])
    assert_one_line(code, capsys.readouterr().err, "is not a request id")
    assert dump(state_checkout) == before


def test_the_largest_id_is_simply_not_found(state_checkout, capsys):
    code = main.main(["convoy", "show", f"--repo={state_checkout}", "9223372036854775807"])
    assert_one_line(code, capsys.readouterr().err, "no request #9223372036854775807")
    code = main.main(["convoy", "events", f"--repo={state_checkout}", "--request=99999999999999999999"])
    assert_one_line(code, capsys.readouterr().err, "no request #99999999999999999999")


# -- escaping ----------------------------------------------------------------------

EVIL = "\x1b[2J\rFORGED line\nFORGED\x1b]0;title\x07"


@pytest.mark.parametrize("command", ("status", "show"))
def test_status_and_show_escape_every_value_from_the_state(state_checkout, capsys, command):
    with SQLiteStore(state_checkout / ".convoy" / "state.db") as store, store.transaction() as tx:
        request = tx.insert_request(component="widget", version="v1.1.0", requested_by=f"ci{EVIL}",
                                    archive_url=f"https://x.example/a.tar.gz{EVIL}", state=RequestState.REJECTED,
                                    detail=f"stage build failed{EVIL}")
        build = tx.insert_build(request.id, "a" * 40, "b" * 40)
        tx.update_build(build.id, state=BuildState.FAILED, detail=f"build{EVIL}")
        stage = tx.insert_stage(build.id, 0, "build", "build")
        tx.update_stage(stage.id, state=StageState.FAILED)
        task = tx.insert_task(stage.id, build.id, "main")
        tx.update_task(task.id, state=TaskState.FAILED, detail=f"exit 1{EVIL}", log_path=f"/tmp/log{EVIL}",
                       targets=(TargetOutcome(f"//t:ok{EVIL}", "passed", cached=True),
                                TargetOutcome(f"//t:bad{EVIL}", "failed", duration_ms=1200)))
        tx.insert_release(request_id=request.id, build_id=build.id, tag="v1", commit="b" * 40,
                          notes="notes\x1b[2J\rFORGED line\nsecond line\n")  # its own lines: \n only
    capsys.readouterr()
    args = [str(request.id)] if command == "show" else []
    assert main.main(["convoy", command, f"--repo={state_checkout}", *args]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out, out
    assert not any(line.lstrip().startswith("FORGED") for line in out.splitlines()), out
    assert "\\x1b[2J\\rFORGED line\\nFORGED" in out
    if command == "show":  # each test says whether it ran or came from the cache
        assert "//t:ok\\x1b[2J\\rFORGED line\\nFORGED\\x1b]0;title\\x07 PASSED (cached)" in out, out
        assert "tests: 1 ran, 1 cached" in out  # the failing one ran (its line names its logs)
    if command == "show":  # the release notes: escaped, their own lines kept
        assert "    notes\\x1b[2J\\rFORGED line\n    second line\n" in out


def test_show_prints_a_failed_tasks_tail_when_its_log_is_not_here(state_checkout, capsys):
    """A task another worker ran (its log_path is not on this machine, no logs_url): `convoy show`
    says so and prints the last 20 lines of the tail the store kept, each escaped."""
    tail = "".join(f"line {n}\n" for n in range(30)) + f"ERROR: it broke{EVIL}\n"
    with SQLiteStore(state_checkout / ".convoy" / "state.db") as store, store.transaction() as tx:
        request = tx.insert_request(component="widget", version="v1.1.0", requested_by="ci",
                                    state=RequestState.REJECTED)
        build = tx.insert_build(request.id, "a" * 40, "b" * 40)
        stage = tx.insert_stage(build.id, 0, "build", "build")
        task = tx.insert_task(stage.id, build.id, "main")
        tx.update_task(task.id, state=TaskState.FAILED, outcome="BUILD_FAILED", log_tail=tail,
                       log_path="/elsewhere/.convoy/logs/request-1/build-1/build-main.log")
    capsys.readouterr()
    assert main.main(["convoy", "show", f"--repo={state_checkout}", str(request.id)]) == 0
    out = capsys.readouterr().out
    assert ("        Bazel log: /elsewhere/.convoy/logs/request-1/build-1/build-main.log (not on this machine)\n"
            "        the log's last 20 lines:\n          line 12\n") in out, out  # EVIL holds a newline
    assert "          line 11\n" not in out and "\x1b" not in out and "\r" not in out
    assert out.endswith("          line 29\n          ERROR: it broke\\x1b[2J\\rFORGED line\n"
                        "          FORGED\\x1b]0;title\\x07\n"), out
