"""convoy.bazel: one Bazel invocation, its outcome told apart by exit code
and output, with the real Bazel in a small workspace (the `bazel_ws`
fixture of tests/conftest.py, tests/support/bazel_workspace.py) and
without Bazel (stand-in scripts, the command line, the classification)."""

from __future__ import annotations

import gzip
import os
import secrets
import stat
import threading
import time
from pathlib import Path

import pytest

from convoy import bep
from convoy.bazel import Outcome, bazel_command, bazel_environment, classify, is_fetch_failure, run_bazel, withheld_env


def _processes_with(marker: str) -> list[int]:
    """Process ids whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait_until(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


# -- the real Bazel ---------------------------------------------------------


@pytest.mark.bazel
def test_passing_test_passes_and_keeps_its_log(bazel_ws):
    pids = []
    result = bazel_ws.run("test", ["//run/ok:pass_test"], on_start=pids.append)

    assert result.outcome is Outcome.PASSED, result.log_path.read_text()
    assert result.outcome.is_success and not result.outcome.is_infrastructure
    assert result.exit_code == 0
    assert result.detail == "1 test passed"
    assert [(t.label, t.status) for t in result.targets] == [("//run/ok:pass_test", "passed")]
    log = result.log_path.read_text()
    assert log.startswith("# convoy: bazel --output_user_root=")
    assert f"--build_event_json_file={result.bep_path} -- //run/ok:pass_test\n" in log
    assert "//run/ok:pass_test" in log and "PASSED" in log
    assert bep.read_bep(result.bep_path).complete
    assert len(pids) == 1 and _gone(pids[0])
    assert result.duration > 0


@pytest.mark.bazel
def test_failing_tests_are_named(bazel_ws):
    result = bazel_ws.run("test", ["//run/fail:all"])

    assert result.outcome is Outcome.TESTS_FAILED, result.log_path.read_text()
    assert result.exit_code == 3
    assert result.detail == "2 tests failed: //run/fail:a_test, //run/fail:b_test"
    statuses = {t.label: t.status for t in result.targets}
    assert statuses == {"//run/fail:a_test": "failed", "//run/fail:b_test": "failed", "//run/fail:c_test": "passed"}
    assert [t.label for t in result.failing_targets] == ["//run/fail:a_test", "//run/fail:b_test"]
    for target in result.failing_targets:
        assert "failing on purpose" in Path(target.log_paths[0]).read_text()


@pytest.mark.bazel
def test_a_build_file_that_does_not_parse_is_a_build_failure(bazel_ws):
    result = bazel_ws.run("test", ["//run/broken:all"])

    assert result.outcome is Outcome.BUILD_FAILED, result.log_path.read_text()
    assert not result.outcome.is_infrastructure
    assert result.exit_code == 1
    assert result.detail.startswith(f"build failed: {bazel_ws.path}/run/broken/BUILD.bazel:2:1: syntax error")


@pytest.mark.bazel
def test_a_tag_filter_that_matches_nothing_is_no_tests(bazel_ws):
    result = bazel_ws.run("test", ["//run/ok:all"], flags=["--test_tag_filters=convoy-hardware"])

    assert result.outcome is Outcome.NO_TESTS, result.log_path.read_text()
    assert result.outcome.is_success
    assert result.exit_code == 4
    assert result.detail == "no test matched the targets and tag filters"
    assert [(t.label, t.status) for t in result.targets] == [("//run/ok:pass_test", "built")]


@pytest.mark.bazel
def test_build_command_builds(bazel_ws):
    result = bazel_ws.run("build", ["//run/ok:all"])

    assert result.outcome is Outcome.PASSED, result.log_path.read_text()
    assert result.detail == "built 1 target"


@pytest.mark.bazel
def test_repo_env_reaches_repository_rules(bazel_ws):
    result = bazel_ws.run("test", ["//run/env:repo_env_test"], repo_env={"CONVOY_CONFIGURATION": "rover"})

    assert result.outcome is Outcome.PASSED, result.log_path.read_text()
    assert "--repo_env=CONVOY_CONFIGURATION=rover" in result.command


def _server_logs(output_base: Path) -> dict[str, str]:
    """The Bazel server's own logs in `output_base`: java.log*, command.log,
    the command profile (gunzipped)."""
    texts = {}
    for path in output_base.iterdir():
        if path.name.startswith("java.log") or path.name == "command.log":
            texts[path.name] = path.read_text(errors="replace")
        elif path.name == "command.profile.gz":
            texts[path.name] = gzip.decompress(path.read_bytes()).decode(errors="replace")
    return texts


@pytest.mark.bazel
def test_no_secret_reaches_bazel_its_kept_files_or_its_server_log(bazel_ws, monkeypatch):
    """The driver's environment held a webhook's secret: Bazel got it as
    --client_env and wrote it into the build event file and java.log."""
    nonce = secrets.token_hex(8)
    leaked = {
        "CONVOY_WEBHOOK_SECRET": f"webhook-{nonce}",  # a plugin's secret_env, and SECRET in the name
        "HOOK_CREDENTIAL": f"named-{nonce}",  # only a plugin's secret_env names it
        "GITHUB_TOKEN": f"token-{nonce}",
        "db_password": f"password-{nonce}",
        "AWS_SECRET_ACCESS_KEY": f"key-{nonce}",
        "Api_Key": f"mixed-case-{nonce}",
    }
    for name, value in leaked.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CONVOY_NEEDED_KEY", f"passed-{nonce}")

    result = bazel_ws.run("test", ["//run/ok:pass_test"], name="secrets",
                          secret_env=("CONVOY_WEBHOOK_SECRET", "HOOK_CREDENTIAL"), pass_env=("CONVOY_NEEDED_KEY",))

    assert result.outcome is Outcome.PASSED, result.log_path.read_text()
    kept = {"log": result.log_path.read_text(), "bep": result.bep_path.read_text(),
            **_server_logs(bazel_ws.output_base)}
    assert "java.log" in kept and kept["bep"]
    found = [(name, where) for name, value in leaked.items() for where, text in kept.items() if value in text]
    assert found == []
    # What is listed under pass_env does reach Bazel (and so would a secret, unchecked).
    assert f"passed-{nonce}" in kept["bep"] and f"passed-{nonce}" in kept["java.log"]
    assert "# convoy: not in Bazel's environment (secrets): AWS_SECRET_ACCESS_KEY, Api_Key, CONVOY_WEBHOOK_SECRET, " \
           "GITHUB_TOKEN, HOOK_CREDENTIAL, db_password; " in kept["log"]


@pytest.mark.bazel
def test_the_log_and_the_event_file_are_private(bazel_ws, tmp_path):
    logs = tmp_path / "logs" / "build-1"
    result = run_bazel(bazel_ws.path, "build", ["//run/ok:all"], log_path=logs / "x.log", bep_path=logs / "x.json",
                       startup_flags=bazel_ws.startup_flags, output_base=bazel_ws.output_base, env=bazel_ws.env,
                       timeout=600)

    assert result.outcome is Outcome.PASSED, result.log_path.read_text()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (logs, logs / "x.log", logs / "x.json")}
    assert modes == {"build-1": 0o700, "x.log": 0o600, "x.json": 0o600}


@pytest.mark.parametrize("name, withheld", [
    ("CONVOY_WEBHOOK_SECRET", True),
    ("GITHUB_TOKEN", True),
    ("npm_token", True),
    ("PGPASSWORD", True),
    ("AWS_ACCESS_KEY_ID", True),
    ("Api_Key", True),
    ("HOOK_CREDENTIAL", True),  # named by a plugin's secret_env
    ("CONVOY_NEEDED_KEY", False),  # listed under bazel.pass_env
    ("PATH", False),
    ("HOME", False),
    ("CONVOY_CONFIGURATION", False),
])
def test_which_variables_bazel_does_not_get(name, withheld):
    environ = {name: "value", "PATH": "/usr/bin"}
    kwargs = {"secret_env": ("HOOK_CREDENTIAL",), "pass_env": ("CONVOY_NEEDED_KEY",)}

    assert (name in withheld_env(environ, **kwargs)) is withheld
    assert (name in bazel_environment(environ, **kwargs)) is not withheld
    assert bazel_environment(environ, **kwargs)["PATH"] == "/usr/bin"


@pytest.mark.bazel
def test_timeout_interrupts_bazel_and_the_client_is_gone(bazel_ws):
    pids = []
    started = time.monotonic()
    result = bazel_ws.run("test", ["//run/slow:timeout_marker_test"], timeout=5, on_start=pids.append)
    elapsed = time.monotonic() - started

    assert result.outcome is Outcome.TIMEOUT, result.log_path.read_text()
    assert result.outcome.is_infrastructure
    assert result.detail == f"timed out after 5 s (Bazel stopped); see {result.log_path}"
    assert 5 <= elapsed < 5 + 30  # SIGINT ended it, not the SIGKILL 30 s later
    assert result.exit_code == 8  # Bazel's own orderly interruption
    assert _gone(pids[0])
    assert "# convoy: timed out; sending SIGINT to Bazel" in result.log_path.read_text()
    # The server stopped the test too (its sleep is not left behind).
    assert _wait_until(lambda: not _processes_with("convoy-timeout-marker"))
    assert [(t.label, t.status) for t in result.targets] == [("//run/slow:timeout_marker_test", "incomplete")]


@pytest.mark.bazel
def test_cancel_interrupts_bazel(bazel_ws):
    cancel = threading.Event()
    timer = threading.Timer(3, cancel.set)
    timer.start()
    try:
        result = bazel_ws.run("test", ["//run/slow:cancel_marker_test"], timeout=120, cancel=cancel)
    finally:
        timer.cancel()

    assert result.outcome is Outcome.INTERRUPTED, result.log_path.read_text()
    assert result.outcome.is_infrastructure
    assert result.duration < 30
    assert result.detail == f"cancelled (Bazel stopped); see {result.log_path}"
    assert _wait_until(lambda: not _processes_with("convoy-cancel-marker"))


@pytest.mark.bazel
@pytest.mark.parametrize("target, repository", [
    ("//run/fetch:nowhere_test", "nowhere"),          # local_repository path missing
    ("//run/fetch:unreachable_test", "unreachable"),  # repository rule's download fails
])
def test_a_repository_that_cannot_be_fetched_is_an_infrastructure_error(bazel_ws, target, repository):
    result = bazel_ws.run("test", [target])

    assert result.outcome is Outcome.INFRA_ERROR, result.log_path.read_text()
    assert result.exit_code == 1
    assert result.detail.startswith("an external repository could not be fetched: ")
    assert result.detail.endswith(f"; see {result.log_path}")
    assert repository in result.detail or "/does-not-exist" in result.detail


@pytest.mark.bazel
def test_an_undeclared_repository_is_the_candidates_build_failure(bazel_ws):
    result = bazel_ws.run("test", ["//run/fetch:undeclared_test"])

    assert result.outcome is Outcome.BUILD_FAILED, result.log_path.read_text()
    assert "'@undeclared' could not be resolved" in result.detail


@pytest.mark.bazel
def test_a_bad_flag_is_an_infrastructure_error(bazel_ws):
    result = bazel_ws.run("test", ["//run/ok:all"], flags=["--no_such_flag_convoy"])

    assert result.outcome is Outcome.INFRA_ERROR, result.log_path.read_text()
    assert result.exit_code == 2
    assert result.detail == (
        "bazel exited 2 (command line error): --no_such_flag_convoy :: Unrecognized option: "
        f"--no_such_flag_convoy; see {result.log_path}"
    )
    assert result.targets == ()


# -- without Bazel ------------------------------------------------------------


def test_bazel_that_cannot_start_is_an_infrastructure_error(tmp_path):
    result = run_bazel(
        tmp_path, "test", ["//..."], log_path=tmp_path / "logs" / "x.log", bep_path=tmp_path / "x.json",
        bazel=str(tmp_path / "no-such-bazel"),
    )

    assert result.outcome is Outcome.INFRA_ERROR
    assert result.exit_code is None
    assert result.detail == f"cannot run {tmp_path / 'no-such-bazel'} (No such file or directory); is Bazel installed?"
    assert "cannot run" in (tmp_path / "logs" / "x.log").read_text()


def test_a_client_that_ignores_sigint_is_killed_after_the_grace(tmp_path):
    fake = tmp_path / "stubborn-bazel"
    fake.write_text("#!/bin/sh\ntrap '' INT\necho started\nsleep 60 &\nwait\nsleep 60\n")
    fake.chmod(0o755)
    pids = []
    started = time.monotonic()
    result = run_bazel(
        tmp_path, "test", ["//..."], log_path=tmp_path / "x.log", bep_path=tmp_path / "x.json",
        bazel=str(fake), timeout=1, interrupt_grace=1, on_start=pids.append,
    )

    assert result.outcome is Outcome.TIMEOUT
    assert result.exit_code == -9
    assert time.monotonic() - started < 10
    assert _gone(pids[0])
    log = (tmp_path / "x.log").read_text()
    assert "started" in log and "still running 1 s after SIGINT; sending SIGKILL" in log


def test_a_stale_event_file_is_never_read(tmp_path):
    fake = tmp_path / "bazel"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    stale = tmp_path / "x.json"
    stale.write_text('{"id": {"testSummary": {"label": "//old:test"}}, "testSummary": {"overallStatus": "FAILED"}}\n')

    result = run_bazel(tmp_path, "build", ["//..."], log_path=tmp_path / "x.log", bep_path=stale, bazel=str(fake))

    assert result.outcome is Outcome.PASSED
    assert result.targets == ()
    assert not stale.exists()


def test_the_command_line():
    argv = bazel_command(
        "test", ["//integration/...", "-//integration:slow_test"], bep_path=Path("/t/bep.json"),
        flags=["--test_tag_filters=convoy-hardware", "--config=hil"], startup_flags=["--max_idle_secs=60"],
        output_base=Path("/ob"), repo_env={"CONVOY_CONFIGURATION": "drone", "X": "1"},
    )

    assert argv == [
        "bazel", "--max_idle_secs=60", "--output_base=/ob", "test", "--build_event_json_file=/t/bep.json",
        "--repo_env=CONVOY_CONFIGURATION=drone", "--repo_env=X=1", "--test_tag_filters=convoy-hardware",
        "--config=hil", "--", "//integration/...", "-//integration:slow_test",
    ]


@pytest.mark.parametrize("code, outcome", [
    (0, Outcome.PASSED), (1, Outcome.BUILD_FAILED), (2, Outcome.INFRA_ERROR), (3, Outcome.TESTS_FAILED),
    (4, Outcome.NO_TESTS), (8, Outcome.INTERRUPTED), (9, Outcome.INFRA_ERROR), (33, Outcome.INFRA_ERROR),
    (34, Outcome.INFRA_ERROR), (36, Outcome.INFRA_ERROR), (37, Outcome.INFRA_ERROR), (38, Outcome.INFRA_ERROR),
    (39, Outcome.INFRA_ERROR), (45, Outcome.INFRA_ERROR), (-9, Outcome.INFRA_ERROR), (None, Outcome.INFRA_ERROR),
    (127, Outcome.INFRA_ERROR),
])
def test_exit_codes(code, outcome):
    assert classify(code) is outcome


# Lines Bazel 4.2.3 printed in the runs above (and one of Bazel 6's).
_FETCH_LINES = [
    "ERROR: An error occurred during the fetch of repository 'unreachable':",
    "ERROR: Error fetching repository: java.io.IOException: The repository's path is \"/x\" (absolute: \"/x\") "
    "but this directory does not exist.",
    "ERROR: /ws/run/fetch/BUILD.bazel:1:8: //run/fetch:nowhere_test depends on @nowhere//:file in repository "
    "@nowhere which failed to fetch. no such package '@nowhere//': The repository's path is \"/x\"",
    "ERROR: no such package '@rules_foo//': java.io.IOException: Error downloading "
    "[https://example.com/rules_foo.tar.gz] to /ob/external/rules_foo/temp/rules_foo.tar.gz: connect timed out",
]
_NOT_FETCH_LINES = [
    "ERROR: /ws/run/fetch/BUILD.bazel:3:8: no such package '@undeclared//': The repository '@undeclared' could "
    "not be resolved and referenced by '//run/fetch:undeclared_test'",
    "ERROR: /ws/run/broken/BUILD.bazel:2:1: syntax error at 'newline': expected ,",
    "ERROR: /ws/a/BUILD.bazel:1:8: Executing genrule //a:gen failed: (Exit 1)",
    "INFO: Repository broken_repo instantiated at:",
]


@pytest.mark.parametrize("line", _FETCH_LINES)
def test_fetch_failures_are_infrastructure(line):
    assert is_fetch_failure(f"Loading:\n{line}\nINFO: Elapsed time: 0.1s\n")
    assert classify(1, f"Loading:\n{line}\n") is Outcome.INFRA_ERROR


@pytest.mark.parametrize("line", _NOT_FETCH_LINES)
def test_other_exit_1_errors_are_build_failures(line):
    assert classify(1, f"Loading:\n{line}\n") is Outcome.BUILD_FAILED


def test_outcome_properties():
    assert {o for o in Outcome if o.is_infrastructure} == {Outcome.INFRA_ERROR, Outcome.TIMEOUT, Outcome.INTERRUPTED}
    assert {o for o in Outcome if o.is_success} == {Outcome.PASSED, Outcome.NO_TESTS}


def test_bazel_is_stopped_when_the_driver_stops_waiting(tmp_path):
    fake = tmp_path / "bazel"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    pids = []

    def started(pid: int) -> None:
        pids.append(pid)
        raise KeyboardInterrupt  # as if Ctrl-C reached the driver (Bazel, in its own session, would not get it)

    with pytest.raises(KeyboardInterrupt):
        run_bazel(tmp_path, "test", ["//..."], log_path=tmp_path / "x.log", bep_path=tmp_path / "x.json",
                  bazel=str(fake), on_start=started, interrupt_grace=5)

    assert _gone(pids[0])
    assert "# convoy: the driver stopped; sending SIGINT to Bazel" in (tmp_path / "x.log").read_text()
