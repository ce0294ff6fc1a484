"""What one Bazel invocation came to: its Outcome, and one line saying why.

`classify` tells the outcomes apart by Bazel's exit code
(https://bazel.build/run/scripts): 0 passed, 1 build failed, 3 tests failed,
4 no tests (a `bazel test` whose tag filter matches nothing), 8 interrupted;
everything else (2: a flag or the command line, which is the pipeline's
configuration, not the component; 9, 32-39, 45: the machine, the remote
services, Bazel itself; a client killed by a signal) is an infrastructure
error. Exit 1 is an infrastructure error too when the log shows that an
external repository could not be fetched (the network or a git server, not
the candidate).

`outcome_detail` is the `detail` of a run that ended by itself (run_bazel
writes its own for a timeout or a cancel): one line for a user, from the
build event file's targets and Bazel's first ERROR line in the log
(`read_log`). convoy.bazel runs Bazel and re-exports Outcome, BazelResult,
classify and is_fetch_failure.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from convoy import bep


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


def outcome_detail(
    outcome: Outcome,
    exit_code: Optional[int],
    command: str,
    targets: Sequence[bep.TargetResult],
    log_text: str,
    log_path: Path,
) -> str:
    """One line saying why a `command` (build/test) that ended by itself
    with `exit_code` came to `outcome`: the tests or targets that failed,
    else Bazel's first error in `log_text`, else a pointer to `log_path`."""
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


def read_log(path: Path) -> str:
    """The log's text (undecodable bytes replaced); "" if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
