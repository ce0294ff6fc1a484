"""What the driver asks the lab before and after a hardware stage.

    from convoy.lab import pools

    lab = pools.LabAddress.local()                     # this checkout's lab (convoy lab up)
    needed = pools.pools_from_tags(["convoy-hardware", "convoy-pool=rover-rigs"])
    pools.check_pools(needed, lab)                     # NoHealthyWorker: "no healthy worker in pool rover-rigs"
    with pools.invocation(lab) as invocation_id:       # bazel test --invocation_id=<invocation_id> ...
        ...                                            # on exit, whatever it left queued is cancelled
    pools.invocation_runs(lab, invocation_id)          # [{"target", "pool", "worker": "<pool>/<rig>", ...}]

A pool with no healthy worker would leave its tests queued forever (the
scheduler has no timeout for them), so the stage fails fast instead; that is
an infrastructure error (NoHealthyWorker), not a verdict on the component.
A Bazel run that is interrupted leaves its actions queued on the server, and
a rig would run them later for nobody: `invocation()` cancels them.

The driver's environment has no gRPC: the questions go to the lab's Python
(convoy.lab.service), and the answers are what the server knows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Set

from convoy.errors import ConvoyError

POOL_TAG = "convoy-pool="
RIGS_SUFFIX = ".rigs.json"  # beside a lab task's log: which rig ran each test (convoy.lab.stage.record_rigs)
TIMEOUT = 60
CODE_ROOT = Path(__file__).resolve().parents[4]  # the checkout convoy runs from
DEFAULT_SERVER = "127.0.0.1:50051"
DEFAULT_INSTANCE = "convoy"


class NoHealthyWorker(ConvoyError):
    """A pool that the selected tests need has no healthy worker: an infrastructure error."""


class LabUnreachable(ConvoyError):
    """The lab's server did not answer: an infrastructure error."""


@dataclasses.dataclass(frozen=True)
class LabAddress:
    """Where a lab's server is, and the Python that can talk to it."""

    server: str = DEFAULT_SERVER
    instance: str = DEFAULT_INSTANCE
    python: Path = CODE_ROOT / ".venv-lab" / "bin" / "python"

    @classmethod
    def local(cls, server: str = DEFAULT_SERVER, instance: str = DEFAULT_INSTANCE) -> "LabAddress":
        return cls(server=server, instance=instance)

    @classmethod
    def of_flags(cls, flags: Sequence[str]) -> "LabAddress":
        """The lab that Bazel run with `flags` executes on: the last `--remote_executor=grpc://host:port`
        and `--remote_instance_name=<name>` in `flags`, else the local lab's (convoy.lab.stage.lab_address)."""
        server, instance = DEFAULT_SERVER, DEFAULT_INSTANCE
        for flag in flags:
            name, _, value = flag.partition("=")
            if name == "--remote_executor" and value:
                server = value.split("://", 1)[1] if "://" in value else value
            elif name == "--remote_instance_name":
                instance = value
        return cls.local(server=server, instance=instance)


@dataclasses.dataclass(frozen=True)
class Bot:
    """One worker as the server sees it."""

    name: str
    pool: str
    status: str
    healthy: bool
    operations: Sequence[str] = ()


def ask(lab: LabAddress, *args: str) -> Any:
    """Runs convoy.lab.service with `args`; returns its JSON answer."""
    if not lab.python.exists():
        raise LabUnreachable(f"the lab's Python {lab.python} is missing. Run: bash scripts/setup")
    env = dict(os.environ, PYTHONPATH=str(CODE_ROOT / "tools" / "driver"))
    argv = [str(lab.python), "-m", "convoy.lab.service", f"--server={lab.server}", f"--instance={lab.instance}", *args]
    try:
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise LabUnreachable(f"the lab at {lab.server} did not answer {args[0]} within {TIMEOUT} s") from None
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabUnreachable(f"asking the lab at {lab.server} ({args[0]}) failed: {last}") from None
    if isinstance(answer, dict) and "error" in answer:
        raise LabUnreachable(
            f"the lab at {lab.server} (instance {lab.instance}) answered {args[0]} with {answer['error']}"
        )
    return answer


def bots(lab: LabAddress) -> List[Bot]:
    """Every worker registered with the lab's server."""
    return [
        Bot(name=w["name"], pool=w["pool"], status=w["status"], healthy=w["healthy"], operations=tuple(w["operations"]))
        for w in ask(lab, "workers")
    ]


def pools_from_tags(tags: Iterable[str]) -> Set[str]:
    """The pools named by convoy-pool=<pool> tags (as `bazel query --output=label_kind` users collect them)."""
    return {tag[len(POOL_TAG):] for tag in tags if tag.startswith(POOL_TAG) and len(tag) > len(POOL_TAG)}


def missing_pools(needed: Iterable[str], workers: Iterable[Bot]) -> List[str]:
    """The pools of `needed` that no healthy worker serves, sorted."""
    healthy = {bot.pool for bot in workers if bot.healthy}
    return sorted(set(needed) - healthy)


def check_pools(
    needed: Iterable[str], lab: Optional[LabAddress] = None, workers: Optional[Iterable[Bot]] = None
) -> None:
    """Raises NoHealthyWorker (one line per pool) unless every pool in `needed` has a healthy worker.

    Args:
        needed: the pools the selected tests need.
        lab: the lab to ask (default: this checkout's local lab); not asked when `workers` is given.
        workers: the workers as the server reported them (for tests and callers that have them).
    """
    needed = set(needed)
    if not needed:
        return
    if workers is None:
        workers = bots(lab or LabAddress.local())
    missing = missing_pools(needed, workers)
    if missing:
        raise NoHealthyWorker(*(f"no healthy worker in pool {pool}" for pool in missing))


def cancel_invocation(lab: LabAddress, invocation_id: str) -> List[str]:
    """Cancels every unfinished operation of one Bazel invocation; returns the operation names."""
    return ask(lab, "cancel", f"--invocation_id={invocation_id}")


def invocation_runs(lab: LabAddress, invocation_id: str) -> List[dict]:
    """What the lab's workers ran for one Bazel invocation (convoy.lab.service's `runs`): one dict per
    finished action with "action", "target" (TEST_TARGET, "" for a build action), "pool", "worker"
    ("<pool>/<name>"), "started", "finished" (epoch seconds), "exit_code", "cached"."""
    return ask(lab, "runs", f"--invocation_id={invocation_id}")


def finish_invocation(lab: LabAddress, invocation_id: str) -> dict:
    """Both questions at the end of a run, in one call to the lab: cancels what the invocation left
    unfinished, then lists its runs: {"cancelled": [operation names], "runs": invocation_runs' list}."""
    answer = ask(lab, "finish", f"--invocation_id={invocation_id}")
    if not isinstance(answer, dict) or not isinstance(answer.get("runs"), list):
        raise LabUnreachable(f"the lab at {lab.server} answered finish with {str(answer)[:80]}")
    return answer


def new_invocation_id() -> str:
    return str(uuid.uuid4())


def cancel_pool(lab: LabAddress, pool: str) -> List[str]:
    """Cancels every unfinished operation of `pool`; returns the operation names."""
    return ask(lab, "cancel", f"--pool={pool}")


@contextlib.contextmanager
def invocation(lab: LabAddress) -> Iterator[str]:
    """Yields an id for `bazel --invocation_id=...`; cancels what that run left unfinished on exit.

    After a normal run there is nothing left; after an interrupted or killed
    Bazel its queued actions are cancelled before a rig can take them.
    """
    invocation_id = new_invocation_id()
    try:
        yield invocation_id
    finally:
        cancel_invocation(lab, invocation_id)
