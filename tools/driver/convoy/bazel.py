"""Running Bazel: a build or test command, a query, a leftover client.

`run_bazel` runs

    bazel [startup flags] [--output_base=...] <build|test> --build_event_json_file=<bep>
          [--repo_env=K=V ...] [flags] -- <targets>

in a workspace (an argument list, never a shell), with its output (stdout
and stderr) in a log file, a time limit and a cancel event, and returns a
BazelResult: an Outcome, the per-target results from the build event file,
and one line saying why. Every Bazel process of the driver is this
module's: besides run_bazel, `query` (a short `bazel query` whose output
the driver reads, e.g. the pools a hardware stage needs) and
`kill_leftover_client` (the client a killed driver left running).

How the outcomes are told apart (Bazel's exit codes, a repository that
failed to fetch) is convoy.bazel_result's: Outcome, BazelResult, classify
and is_fetch_failure are re-exported here.

On timeout or cancel the client gets SIGINT (Bazel stops the command in an
orderly way and exits 8, usually within a second), then after
`interrupt_grace` seconds its process group gets SIGKILL. The Bazel *server*
is a daemon in its own session and survives both; that is intended (it
keeps the analysis cache warm). After a SIGKILL of the client, though, the
server goes on with the command until it notices the client is gone
(observed: about a minute on Bazel 4.2.3), and the next command in the same
output base waits for it ("Another command is running"); it also finishes
the build event file after run_bazel has returned.

Bazel gets the driver's environment without its secrets
(`bazel_environment`): every variable a plugin's `secret_env` names, and
every variable whose name contains TOKEN, SECRET, PASSWORD or KEY (in any
case), unless convoy.yaml lists it under `bazel: {pass_env: [...]}`. Bazel
would otherwise copy each of them (`--client_env=NAME=value`) into the build
event file and its server's java.log. The log, the build event file and
their directory are private to the driver's user (0600, 0700).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

from convoy import bep, fsutil
from convoy.bazel_result import (  # noqa: F401 (Outcome, BazelResult, classify, is_fetch_failure: re-exported)
    BazelResult, Outcome, classify, is_fetch_failure, outcome_detail, read_log,
)

DEFAULT_TIMEOUT = 3600.0
INTERRUPT_GRACE = 30.0  # seconds between SIGINT and SIGKILL
_POLL = 0.1  # seconds between looks at the client, the clock and the cancel event
# A variable whose name says it holds a credential (CONVOY_WEBHOOK_SECRET,
# GITHUB_TOKEN, db_password, AWS_SECRET_ACCESS_KEY, ...).
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether the environment variable `name` looks like it holds a secret."""
    return _SECRET_NAME.search(name) is not None


def withheld_env(
    environ: Mapping[str, str], *, secret_env: Iterable[str] = (), pass_env: Iterable[str] = ()
) -> list[str]:
    """The names of `environ` that Bazel must not get: those in `secret_env`
    (the plugins' secrets) and those `is_secret_name` picks, less `pass_env`;
    sorted."""
    named, passed = set(secret_env), set(pass_env)
    return sorted(k for k in environ if (k in named or is_secret_name(k)) and k not in passed)


def bazel_environment(
    environ: Mapping[str, str], *, secret_env: Iterable[str] = (), pass_env: Iterable[str] = ()
) -> dict[str, str]:
    """`environ` without the variables `withheld_env` names: the environment
    to start Bazel (or anything that starts Bazel) with."""
    withheld = set(withheld_env(environ, secret_env=secret_env, pass_env=pass_env))
    return {k: v for k, v in environ.items() if k not in withheld}


def bazel_command(
    command: str,
    targets: Sequence[str],
    *,
    bep_path: Path,
    flags: Sequence[str] = (),
    startup_flags: Sequence[str] = (),
    output_base: Optional[Path] = None,
    repo_env: Mapping[str, str] = {},
    bazel: str = "bazel",
) -> list[str]:
    """The argument list run_bazel runs."""
    argv = [bazel, *startup_flags]
    if output_base is not None:
        argv.append(f"--output_base={os.fspath(output_base)}")
    argv += [command, f"--build_event_json_file={os.fspath(bep_path)}"]
    argv += [f"--repo_env={key}={value}" for key, value in repo_env.items()]
    argv += [*flags, "--", *targets]
    return argv


def run_bazel(
    workspace: Path,
    command: str,
    targets: Sequence[str],
    *,
    log_path: Path,
    bep_path: Path,
    flags: Sequence[str] = (),
    startup_flags: Sequence[str] = (),
    output_base: Optional[Path] = None,
    repo_env: Mapping[str, str] = {},
    timeout: float = DEFAULT_TIMEOUT,
    cancel: Optional[threading.Event] = None,
    env: Optional[Mapping[str, str]] = None,
    secret_env: Sequence[str] = (),
    pass_env: Sequence[str] = (),
    bazel: str = "bazel",
    interrupt_grace: float = INTERRUPT_GRACE,
    on_start: Optional[Callable[[int], None]] = None,
) -> BazelResult:
    """Runs one Bazel command in `workspace`; never raises for Bazel's sake.

    `log_path` gets a header line (the command) and everything Bazel
    prints; `bep_path` (removed first, so that a stale one is never read)
    the build event file; both are 0600 in a 0700 directory. `env` adds to
    (or overrides) this process's environment; of the result, the variables
    `withheld_env(secret_env=..., pass_env=...)` names are left out (the
    log lists their names). `timeout` (seconds) and `cancel` (set from
    another thread) stop the command: SIGINT, then SIGKILL after `interrupt_grace` seconds;
    the outcome is then TIMEOUT or INTERRUPTED whatever Bazel's exit code.
    `on_start` is called with the client's process id once it runs (to
    record it: a restarted driver can kill a leftover client).
    """
    workspace, log_path, bep_path = Path(workspace), Path(log_path), Path(bep_path)
    argv = bazel_command(
        command, targets, bep_path=bep_path, flags=flags, startup_flags=startup_flags,
        output_base=output_base, repo_env=repo_env, bazel=bazel,
    )
    fsutil.private_dir(log_path.parent)
    fsutil.private_dir(bep_path.parent)
    bep_path.unlink(missing_ok=True)
    environ = {**os.environ, **(env or {})}
    withheld = withheld_env(environ, secret_env=secret_env, pass_env=pass_env)
    for name in withheld:
        del environ[name]
    started = time.monotonic()

    def result(outcome: Outcome, exit_code: Optional[int], detail: str,
               targets: Optional[Sequence[bep.TargetResult]] = None) -> BazelResult:
        _make_private(bep_path)  # Bazel's server wrote it with its own umask
        if targets is None:
            targets = bep.read_bep(bep_path).targets
        return BazelResult(
            outcome=outcome, exit_code=exit_code, duration=time.monotonic() - started, log_path=log_path,
            bep_path=bep_path, targets=tuple(targets), detail=" ".join(detail.split()), command=tuple(argv),
        )

    # Appending (O_APPEND, shared with the client): convoy's notes and
    # Bazel's output land in the order they are written.
    header = f"# convoy: {shlex.join(argv)}\n# in {workspace}\n"
    if withheld:
        header += (f"# convoy: not in Bazel's environment (secrets): {', '.join(withheld)}; "
                   "to pass one, list it under bazel: pass_env: in convoy.yaml\n")
    with os.fdopen(fsutil.open_private(log_path, os.O_WRONLY | os.O_TRUNC), "wb") as log:
        log.write(header.encode())
    with log_path.open("ab") as log:
        try:
            proc = subprocess.Popen(
                argv, cwd=workspace, env=environ, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as e:
            log.write(f"# convoy: cannot run {argv[0]}: {e}\n".encode())
            return result(Outcome.INFRA_ERROR, None, f"cannot run {argv[0]} ({e.strerror}); is Bazel installed?")
        try:
            if on_start is not None:
                on_start(proc.pid)
            stopped = _wait(proc, started + timeout, cancel, interrupt_grace, log)
        except BaseException:
            # The driver itself is stopping (Ctrl-C, an error): Bazel runs in
            # a session of its own and would not hear of it; stop it too.
            _stop(proc, interrupt_grace, log, "the driver stopped")
            raise
    exit_code = proc.returncode
    if stopped == "timeout":
        return result(Outcome.TIMEOUT, exit_code, f"timed out after {timeout:g} s (Bazel stopped); see {log_path}")
    if stopped == "cancel":
        return result(Outcome.INTERRUPTED, exit_code, f"cancelled (Bazel stopped); see {log_path}")
    log_text = read_log(log_path) if exit_code not in (0, 3, 4) else ""
    outcome = classify(exit_code, log_text)
    targets = bep.read_bep(bep_path).targets
    return result(outcome, exit_code, outcome_detail(outcome, exit_code, command, targets, log_text, log_path),
                  targets)


class BazelNotRun(Exception):
    """`query` got no answer from Bazel: it could not start, or it timed out
    (and was killed). The message says which, as the OS or subprocess put it."""


def query(
    workspace: Path,
    args: Sequence[str],
    *,
    startup_flags: Sequence[str] = (),
    output_base: Optional[Path] = None,
    timeout: float = DEFAULT_TIMEOUT,
    secret_env: Iterable[str] = (),
    pass_env: Iterable[str] = (),
    bazel: str = "bazel",
) -> subprocess.CompletedProcess:
    """Runs `bazel [startup flags] [--output_base=...] query <args>` in
    `workspace` and returns what it printed (text; `returncode`, `stdout`,
    `stderr`), whatever its exit status.

    A short command whose output the driver reads, unlike run_bazel's: no
    log file, no cancel event, the output kept in memory. Bazel gets the
    driver's environment less `withheld_env(secret_env=..., pass_env=...)`
    (`bazel_environment`). Raises BazelNotRun if Bazel cannot start or
    runs past `timeout` seconds (the client is then killed).
    """
    argv = [bazel, *startup_flags]
    if output_base is not None:
        argv.append(f"--output_base={os.fspath(output_base)}")
    argv += ["query", *args]
    try:
        return subprocess.run(argv, cwd=workspace, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout,
                              env=bazel_environment(os.environ, secret_env=secret_env, pass_env=pass_env))
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BazelNotRun(str(e)) from None


def is_bazel_client(pid: int, marker: Optional[str] = None) -> bool:
    """Whether `pid` is a live Bazel client (and, with `marker`, one whose
    command line has it: the task's own build event file)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode("utf-8", "replace")
        with open(f"/proc/{pid}/stat", "rb") as f:
            if f.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                return False  # a zombie: it is gone already
    except (OSError, IndexError):
        return False
    return "bazel" in cmdline and (marker is None or marker in cmdline)


def kill_leftover_client(pid: int, marker: Optional[str]) -> bool:
    """Stops a Bazel client that a killed driver left running; returns
    whether there was one. SIGINT first (the client asks its server to stop
    the command, in about a second), SIGKILL if that does not do it: a
    client killed outright leaves its server busy for about a minute."""
    if not is_bazel_client(pid, marker):
        return False
    for sig, wait in ((signal.SIGINT, 20.0), (signal.SIGKILL, 10.0)):
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not is_bazel_client(pid, marker):
                return True
            time.sleep(0.1)
    return True


def _wait(
    proc: subprocess.Popen,
    deadline: float,
    cancel: Optional[threading.Event],
    grace: float,
    log,
) -> Optional[str]:
    """Waits for the client; on the deadline or a cancel, stops it. Returns
    None (it ended by itself), "timeout" or "cancel"."""
    while True:
        try:
            proc.wait(timeout=max(0.0, min(_POLL, deadline - time.monotonic())))
            return None
        except subprocess.TimeoutExpired:
            pass
        if cancel is not None and cancel.is_set():
            reason = "cancel"
            break
        if time.monotonic() >= deadline:
            reason = "timeout"
            break
    if not _stop(proc, grace, log, "cancelled" if reason == "cancel" else "timed out"):
        return None  # it ended by itself just then
    return reason


def _stop(proc: subprocess.Popen, grace: float, log, why: str) -> bool:
    """SIGINT to the client; SIGKILL to its process group if it is still
    there `grace` seconds later. Notes both in the log. False if the
    client had already ended."""
    if proc.poll() is not None:
        return False
    _note(log, f"\n# convoy: {why}; sending SIGINT to Bazel\n")
    _signal_group(proc, signal.SIGINT)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _note(log, f"# convoy: Bazel still running {grace:g} s after SIGINT; sending SIGKILL\n")
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
    return True


def _make_private(path: Path) -> None:
    try:
        os.chmod(path, fsutil.PRIVATE_FILE)
    except OSError:  # not written (Bazel did not start), or gone
        pass


def _note(log, text: str) -> None:
    try:
        log.write(text.encode())
        log.flush()
    except (OSError, ValueError):  # the log is gone or closed: the note is not worth a crash
        pass


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signals the client's process group (the client, and a wrapper script
    if `bazel` is one); not the server, which runs in its own session."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        proc.send_signal(sig)
