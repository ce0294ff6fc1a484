"""Running one Bazel command and telling its outcomes apart.

`run_bazel` runs

    bazel [startup flags] [--output_base=...] <build|test> --build_event_json_file=<bep>
          [--repo_env=K=V ...] [flags] -- <targets>

in a workspace (an argument list, never a shell), with its output (stdout
and stderr) in a log file, a time limit and a cancel event, and returns a
BazelResult: an Outcome, the per-target results from the build event file,
and one line saying why.

Outcomes follow Bazel's exit codes (https://bazel.build/run/scripts): 0
passed, 1 build failed, 3 tests failed, 4 no tests (a `bazel test` whose tag
filter matches nothing), 8 interrupted; everything else (2: a flag or the
command line, which is the pipeline's configuration, not the component; 9,
32-39, 45: the machine, the remote services, Bazel itself; a client killed
by a signal) is an infrastructure error. Exit 1 is an infrastructure error
too when the log shows that an external repository could not be fetched
(the network or a git server, not the candidate).

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

import enum
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

from convoy import bep, fsutil

DEFAULT_TIMEOUT = 3600.0
INTERRUPT_GRACE = 30.0  # seconds between SIGINT and SIGKILL
_POLL = 0.1  # seconds between looks at the client, the clock and the cancel event
# A variable whose name says it holds a credential (CONVOY_WEBHOOK_SECRET,
# GITHUB_TOKEN, db_password, AWS_SECRET_ACCESS_KEY, ...).
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)


class Outcome(enum.Enum):
    """How one Bazel invocation ended."""

    PASSED = "passed"
    TESTS_FAILED = "tests_failed"
    BUILD_FAILED = "build_failed"
    NO_TESTS = "no_tests"
    INFRA_ERROR = "infra_error"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"

    @property
    def is_infrastructure(self) -> bool:
        """Not the candidate's fault: retry it rather than reject it."""
        return self in (Outcome.INFRA_ERROR, Outcome.TIMEOUT, Outcome.INTERRUPTED)

    @property
    def is_success(self) -> bool:
        return self in (Outcome.PASSED, Outcome.NO_TESTS)


@dataclass(frozen=True)
class BazelResult:
    """One Bazel invocation. `exit_code` is None if Bazel could not be
    started, negative (-signal) if the client was killed; `duration` is in
    seconds; `detail` is one line saying why, fit for a user."""

    outcome: Outcome
    exit_code: Optional[int]
    duration: float
    log_path: Path
    bep_path: Path
    targets: tuple[bep.TargetResult, ...]
    detail: str
    command: tuple[str, ...] = ()

    @property
    def failing_targets(self) -> tuple[bep.TargetResult, ...]:
        return tuple(t for t in self.targets if t.failing)


# Bazel's exit codes (names as in its ExitCode class and docs).
EXIT_NAMES = {
    0: "success",
    1: "build failed",
    2: "command line error",
    3: "tests failed",
    4: "no tests found",
    8: "interrupted",
    9: "server lock held",
    32: "remote environment error",
    33: "out of memory",
    34: "remote error",
    36: "local environment error",
    37: "internal error",
    38: "transient error publishing build events",
    39: "remote cache evicted blobs",
    45: "persistent error publishing build events",
}

# A repository fetch failure in Bazel's output. Each alternative is a line
# Bazel 4.2-7 prints only when fetching an external repository failed (a
# download, a git clone, a missing local_repository path, a repository rule
# that failed); "could not be resolved" (an undeclared repository, the
# candidate's own mistake) matches none of them.
_FETCH_FAILURE = re.compile(
    r"^ERROR: An error occurred during the fetch of repository '"
    r"|^ERROR: Error fetching repository: "
    r"|in repository @\S+ which failed to fetch"
    r"|no such package '@[^']*': .*(?:failed to fetch|[Ee]rror downloading|[Ee]rror fetching|"
    r"Download from \S+ failed|Unknown host|Connection refused|connect timed out)",
    re.MULTILINE,
)
_ERROR_LINE = re.compile(r"^(?:ERROR|FATAL): (.*)$", re.MULTILINE)
_MAX_ERROR = 200  # characters of a Bazel error line quoted in a detail
_MAX_LABELS = 5


def classify(exit_code: Optional[int], log_text: str = "") -> Outcome:
    """The Outcome of a Bazel exit code; `log_text` (the command's output)
    tells a repository fetch failure from a build failure on exit 1."""
    if exit_code == 0:
        return Outcome.PASSED
    if exit_code == 1:
        return Outcome.INFRA_ERROR if is_fetch_failure(log_text) else Outcome.BUILD_FAILED
    if exit_code == 3:
        return Outcome.TESTS_FAILED
    if exit_code == 4:
        return Outcome.NO_TESTS
    if exit_code == 8:
        return Outcome.INTERRUPTED
    return Outcome.INFRA_ERROR


def is_fetch_failure(log_text: str) -> bool:
    """Whether Bazel's output says an external repository failed to fetch."""
    return _FETCH_FAILURE.search(log_text) is not None


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
    log_text = _read(log_path) if exit_code not in (0, 3, 4) else ""
    outcome = classify(exit_code, log_text)
    targets = bep.read_bep(bep_path).targets
    return result(outcome, exit_code, _detail(outcome, exit_code, command, targets, log_text, log_path), targets)


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


def _detail(
    outcome: Outcome,
    exit_code: Optional[int],
    command: str,
    targets: Sequence[bep.TargetResult],
    log_text: str,
    log_path: Path,
) -> str:
    failing = [t for t in targets if t.failing]
    if outcome is Outcome.PASSED:
        if command == "test":
            tests = [t for t in targets if t.status in (bep.PASSED, bep.FLAKY)]
            flaky = [t.label for t in targets if t.status == bep.FLAKY]
            cached = sum(1 for t in tests if t.cached)
            extra = [f"{cached} cached"] if cached else []
            if flaky:
                extra.append(f"{len(flaky)} flaky: {_labels(flaky)}")
            skipped = len([t for t in targets if t.status == bep.SKIPPED])
            if skipped:
                extra.append(f"{skipped} skipped")
            more = f" ({'; '.join(extra)})" if extra else ""
            return f"{_count(len(tests), 'test')} passed{more}"
        built = [t for t in targets if t.status == bep.BUILT]
        return f"built {_count(len(built), 'target')}"
    if outcome is Outcome.NO_TESTS:
        return "no test matched the targets and tag filters"
    if outcome is Outcome.TESTS_FAILED:
        if failing:
            return f"{_count(len(failing), 'test')} failed: {_labels([t.label for t in failing])}"
        return f"tests failed (exit 3); see {log_path}"
    if outcome is Outcome.BUILD_FAILED:
        error = _first_error(log_text)
        if failing:
            return f"build failed: {_labels([t.label for t in failing])} did not build" + (
                f" ({error})" if error else "")
        return f"build failed: {error}" if error else f"build failed (exit 1); see {log_path}"
    if outcome is Outcome.INTERRUPTED:
        return f"Bazel was interrupted (exit 8); see {log_path}"
    # INFRA_ERROR
    if exit_code == 1:
        fetch = _FETCH_FAILURE.search(log_text)
        line = log_text[log_text.rfind("\n", 0, fetch.start()) + 1:].split("\n", 1)[0] if fetch else ""
        return f"an external repository could not be fetched: {_strip_error(line)}; see {log_path}"
    if exit_code is not None and exit_code < 0:
        return f"Bazel was killed by signal {-exit_code}; see {log_path}"
    name = EXIT_NAMES.get(exit_code, "unknown exit code") if exit_code is not None else "did not run"
    error = _first_error(log_text)
    return f"bazel exited {exit_code} ({name})" + (f": {error}" if error else "") + f"; see {log_path}"


def _first_error(log_text: str) -> str:
    """Bazel's first ERROR (or FATAL) line, without the prefix, clipped."""
    match = _ERROR_LINE.search(log_text)
    return _clip(match.group(1)) if match else ""


def _strip_error(line: str) -> str:
    return _clip(re.sub(r"^(?:ERROR|FATAL): ", "", line.strip()))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


def _labels(labels: Sequence[str]) -> str:
    shown = ", ".join(labels[:_MAX_LABELS])
    return shown + (f" and {len(labels) - _MAX_LABELS} more" if len(labels) > _MAX_LABELS else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
