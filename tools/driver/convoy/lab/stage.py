"""The lab's side of a `check_pools: true` stage: which pools a stage needs,
the check, and the invocation id/cancel around each task's Bazel run.

A stage with `check_pools: true` is the hardware lab's stage. Before it the
pool check runs (`lab_pool_check`, the default of convoy.pipeline's
RunContext.pool_check); if it raises, the stage fails as an infrastructure
error. Each of its tasks runs Bazel inside `lab_invocation` (the default of
RunContext.lab_run: `--invocation_id=<id>`; on exit the lab cancels
whatever that run left queued, so that an interrupted, timed-out or killed
run leaves nothing for a rig; before that, once Bazel has ended,
`record_rigs` writes which rig of which pool ran each hardware test to
`<stage>-<configuration>.rigs.json` beside the task's log). Both ask the
lab that the stage's flags name (`lab_address`). A context without a pool
check (`pool_check=None`: no lab, e.g. a stand-in Bazel) runs such a stage
plainly.

The pools a stage needs are the `convoy-pool=<pool>` tags of the tests it
selects, from one `bazel query --output=build` per configuration
(`needed_pools`, through convoy.bazel.query; `pools_in_query` reads its
output). The questions to the lab itself are convoy.lab.pools'.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Mapping, Optional, Sequence

from convoy import bazel, fsutil
from convoy.config import Config, StageSpec
from convoy.errors import InfraError
from convoy.lab import pools as lab_pools
from convoy.lab import procs
from convoy.task_flags import CONFIGURATION_ENV, task_flags

log = logging.getLogger("convoy.lab.stage")

PoolCheck = Callable[[Path, StageSpec, Sequence[str], Config, Mapping[str, Path]], None]
LabRun = Callable[[Sequence[str], Path], ContextManager[tuple[str, ...]]]

_RULE = re.compile(r"^\w+\(\n(?P<body>.*?)^\)$", re.MULTILINE | re.DOTALL)
_NAME = re.compile(r'^  name = "(?P<name>[^"]+)"', re.MULTILINE)
_TAGS = re.compile(r"^  tags = \[(?P<tags>[^\]]*)\]", re.MULTILINE)


def pools_in_query(build_output: str, tag_filter: Optional[str]) -> set[str]:
    """The pools (`convoy-pool=<pool>` tags) of the tests in `bazel query
    --output=build` output that `tag_filter` (Bazel's --test_tag_filters
    syntax) selects; tests incompatible with the configuration are left out."""
    wanted = [t for t in (tag_filter or "").split(",") if t and not t.startswith("-")]
    unwanted = [t[1:] for t in (tag_filter or "").split(",") if t.startswith("-")]
    pools = set()
    for rule in _RULE.finditer(build_output):
        body = rule.group("body")
        if "@platforms//:incompatible" in body:
            continue
        match = _TAGS.search(body)
        tags = re.findall(r'"([^"]*)"', match.group("tags")) if match else []
        if wanted and not any(t in tags for t in wanted) or any(t in tags for t in unwanted):
            continue
        pools |= lab_pools.pools_from_tags(tags)
    return pools


def needed_pools(workspace: Path, stage: StageSpec, configuration: str, config: Config, output_base: Path) -> set[str]:
    """The hardware pools the stage's tests need in `configuration` (one `bazel query`)."""
    expression = "tests(" + " + ".join(stage.targets) + ")"
    try:
        proc = bazel.query(workspace, [f"--repo_env={CONFIGURATION_ENV}={configuration}", "--output=build",
                                       expression],
                           startup_flags=config.bazel_startup_flags, output_base=output_base, timeout=stage.timeout,
                           secret_env=config.secret_env, pass_env=config.bazel_pass_env)
    except bazel.BazelNotRun as e:
        raise InfraError(f"bazel query for the pools of stage {stage.name} failed: {e}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InfraError(f"bazel query for the pools of stage {stage.name} in {configuration} failed "
                         f"(exit {proc.returncode}): {last}")
    return pools_in_query(proc.stdout, stage.tag_filter)


def lab_pool_check(workspace: Path, stage: StageSpec, configurations: Sequence[str], config: Config,
                   output_bases: Mapping[str, Path]) -> None:
    """The default pool check (the seam for the hardware lab): finds the
    pools the stage's tests need in each configuration (`bazel query`, the
    `convoy-pool=<pool>` tags) and asks `convoy.lab.pools.check_pools(pools)`,
    which raises (NoHealthyWorker: "no healthy worker in pool X") when one
    has no healthy worker; the stage then fails as an infrastructure error."""
    needed: set[str] = set()
    for configuration in configurations:  # each in its task's output base: no other configuration's fetches
        needed |= needed_pools(workspace, stage, configuration, config, output_bases[configuration])
    if needed:
        lab_pools.check_pools(sorted(needed), lab_address(task_flags(config, stage)))


def lab_address(flags: Sequence[str]) -> lab_pools.LabAddress:
    """The lab that Bazel run with `flags` executes on, as a
    convoy.lab.pools.LabAddress: the last `--remote_executor=grpc://host:port`
    and `--remote_instance_name=<name>` in `flags`, else the local lab's (the
    `hil` config's 127.0.0.1:50051, instance convoy). Taken from the flags so
    that the pool check and the cancel ask the server the run queues on; an
    executor set only in a bazelrc is not seen (name it in the stage's flags,
    after --config=hil)."""
    return lab_pools.LabAddress.of_flags(flags)


def record_rigs(lab: lab_pools.LabAddress, invocation_id: str, path: Path) -> dict:
    """Cancels what the invocation left unfinished on the lab and writes
    `path` (atomically), in one call to the lab (convoy.lab.pools.finish_invocation),
    and returns the record: which rig ran each test of the invocation, as
    the lab's server knows it::

        {"invocation_id": "<id>", "error": null,
         "runs": [{"target": "//integration:flash_and_drive_test", "pool": "rover-rigs",
                   "worker": "rover-rigs/rover-rigs-1", "rig": "rover-rigs-1", "action": "<hash>/<size>",
                   "started": 1700000000.0, "finished": 1700000001.0, "exit_code": 0, "cached": false}]}

    Only actions with a TEST_TARGET (tests; a retried or `--runs_per_test`
    test has several). A lab that does not answer gives `"runs": []` and
    the reason in `"error"` (one line), never an exception: the task's
    outcome is Bazel's, the record only says where it ran. No error in the
    record means that the cancel was made too."""
    record: dict = {"invocation_id": invocation_id, "runs": [], "error": None}
    try:
        ran = lab_pools.finish_invocation(lab, invocation_id)["runs"]
        record["runs"] = [
            {"target": r["target"], "pool": r["pool"], "worker": r["worker"], "rig": r["worker"].rpartition("/")[2],
             "action": r["action"], "started": r["started"], "finished": r["finished"], "exit_code": r["exit_code"],
             "cached": r.get("cached", False)}
            for r in ran if r["target"]
        ]
    except Exception as e:  # noqa: BLE001 - a record we cannot get must not fail the run it describes
        reason = " ".join(str(e).split()) or type(e).__name__
        record["error"] = f"the lab did not say which rigs ran invocation {invocation_id}: {reason}"
        log.warning("%s", record["error"])
    try:
        fsutil.atomic_write(path, json.dumps(record, indent=2) + "\n")
    except OSError as e:
        log.warning("could not write %s: %s", path, e)
    return record


def _me() -> dict:
    return {"pid": os.getpid(), "started": procs.started(os.getpid())}


def _owner_runs(owner) -> bool:
    """Whether the process a ledger names (see lab_invocation) is still running; False for a ledger without one."""
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int) or owner.get("started") is None:
        return False
    return procs.started(owner["pid"]) == owner["started"]


@contextlib.contextmanager
def lab_invocation(flags: Sequence[str], ledger: Path) -> Iterator[tuple[str, ...]]:
    """The lab's side of one task's Bazel run (a stage with `check_pools:
    true`): yields the flags to add, `--invocation_id=<id>`; on exit
    it cancels (convoy.lab.pools) whatever the run left unfinished on
    the lab (Bazel 4.2 leaves its queued actions there when it is
    interrupted or times out, and a rig would run them later for nobody);
    after a run that ended, the same call to the lab records the rigs.

    A driver that is killed cancels nothing on exit: `ledger` (beside the
    task's log) holds the id, the lab and the process that runs Bazel
    (`owner`: pid and start time) while the run is under way, and the next
    run of the same stage and configuration, in any build, cancels every
    ledger a killed run left (`<stage>-<configuration>.invocation` under
    .convoy/logs) before it starts. A ledger whose owner still runs is a
    live run (another lane's candidate, in the speculative and batch
    modes): it is left alone.

    When Bazel has ended (not when it raised), `record_rigs` makes that
    cancel and writes `ledger.with_suffix(".rigs.json")`: which rig of
    which pool ran each test of the run; when it cannot, or Bazel raised,
    the cancel is asked alone."""
    rigs = ledger.with_suffix(lab_pools.RIGS_SUFFIX)
    rigs.unlink(missing_ok=True)  # an earlier run's of this task: not this run's
    logs = ledger.parents[2]  # convoy.tasks.log_paths: <logs>/request-<n>/build-<m>/<stage>-<configuration>.log
    for left in sorted(logs.glob(f"request-*/build-*/{ledger.name}")):
        try:
            entry = json.loads(left.read_text())
        except (OSError, ValueError):  # half-written: the run had not started Bazel
            left.unlink(missing_ok=True)
            continue
        if _owner_runs(entry.get("owner")):
            continue  # a run under way (another lane's): not stale
        stale = entry["invocation_id"]
        try:
            cancelled = lab_pools.cancel_invocation(
                lab_pools.LabAddress.local(server=entry["server"], instance=entry["instance"]), stale)
        except Exception as e:  # the lab did not answer: the stale actions may still be queued there
            raise InfraError(f"{e}; it may still hold the queued actions of an interrupted run: cancel them "
                             f"(convoy lab cancel --invocation_id={stale}) or, if that lab is gone, delete {left}"
                             ) from None
        log.info("cancelled %d operation(s) that interrupted run %s left on the lab", len(cancelled), stale)
        left.unlink(missing_ok=True)
    lab = lab_address(flags)
    invocation_id = lab_pools.new_invocation_id()
    cancelled = False
    try:
        ledger.parent.mkdir(parents=True, exist_ok=True)
        ledger.write_text(json.dumps({"invocation_id": invocation_id, "server": lab.server,
                                      "instance": lab.instance, "owner": _me()}) + "\n")
        yield (f"--invocation_id={invocation_id}",)
        # One call to the lab at the end of the run: the cancel on exit and the record.
        cancelled = record_rigs(lab, invocation_id, rigs)["error"] is None
    finally:
        if not cancelled:  # Bazel raised, or the lab did not answer the end of the run: cancel (raises if not)
            lab_pools.cancel_invocation(lab, invocation_id)
    ledger.unlink(missing_ok=True)  # only once the cancel on exit has answered
