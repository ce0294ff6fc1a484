"""A release's provenance: an in-toto Statement v1 with a SLSA provenance v1 predicate.

    statement = collect(checkout, config, store, build_id=build.id, tag="v2026.12.1",
                        artifacts={"rover/product.tar": "<sha256>"}, requests=[request])
    digest = write(statement, staged)   # staged/provenance.intoto.json; the tag's message names `digest`

The statement says what was released and how it was made:

- `subject`: every artifact ("<configuration>/<file>") and the manifest and
  lock of the released commit, by sha256;
- `predicate.buildDefinition`: the tag, the integration repository (its
  remote's URL, userinfo redacted), branch, commit and base, the requests
  and their bumps, the configurations built, convoy.yaml's digest, the
  Bazel version and flags, and the resolved dependencies: the commit, the
  manifest, the lock, convoy.yaml, and every pin of the lock (a git commit,
  an archive's sha256, or a local directory's git tree);
- `predicate.runDetails`: convoy's version and host, the build's times, and
  one byproduct per task: its stage, configuration, state and outcome, its
  Bazel invocation id (from its build event file), its targets (a test
  that failed and did not reject, status "flaky" or "quarantined"
  (convoy.flaky), with its runs and why), and for a
  hardware stage (`check_pools`) the rig of every hardware test, from the
  `.rigs.json` beside the task's log (none: its tests ran locally, without a lab).

Its byte form is release_layout.canonical_json; `convoy verify` (convoy.verify)
checks a release against it. The files of the commit are read from git
(`blob_at`), not from a worktree.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import convoy
from convoy import bazel4, gitutil, untrusted
from convoy.candidate import LOCK, MANIFEST
from convoy.config import CONFIG_NAME, Config
from convoy.errors import ConvoyError
from convoy.lock import configuration_entries
from convoy.flaky import HELD
from convoy.lab.pools import RIGS_SUFFIX
from convoy.models import UNCHANGED, Request, TargetOutcome, Task
from convoy.release_layout import (
    BUILD_TYPE, BUILDER_ID, PREDICATE_TYPE, STATEMENT, STATEMENT_TYPE, canonical_json, sha256_bytes,
)
from convoy.store import Store, iso

INTEGRATION = "integration"  # the resolved dependency that is the released commit itself
HARDWARE_TAG = "convoy-hardware"  # rules/defs.bzl hardware_test's tag
HARDWARE_LOCAL = "local"  # a hardware task without a .rigs.json: its tests ran without a lab
# The resolved dependencies that are files of the released commit, in order.
FILES = (MANIFEST, LOCK, CONFIG_NAME)
_BEP_EVENTS = 200  # the started event is the first; never read a whole large file for it


def collect(checkout: Path, config: Config, store: Store, *, build_id: int, tag: str,
            artifacts: Mapping[str, str], requests: Sequence[Request], bazel: str = "bazel") -> dict[str, Any]:
    """The statement of the release `tag` of build `build_id` (a succeeded
    build: its candidate commit is what is released). `artifacts` maps
    "<configuration>/<file>" to its sha256; `requests` are those the release
    merges; `bazel` is the Bazel binary the tasks ran (for its version)."""
    checkout = Path(checkout)
    with store.read() as tx:
        build = tx.build(build_id)
        if build is None:
            raise ConvoyError(f"no build {build_id} in this checkout's store; a release needs the build it releases")
        stages = tx.stages(build_id)
        tasks = {stage.id: sorted(tx.tasks(stage_id=stage.id), key=lambda t: t.configuration) for stage in stages}
    commit = build.candidate_commit
    repository = repository_url(checkout, config.remote)
    files = {path: blob_at(checkout, commit, path) for path in FILES}
    digests = {path: sha256_bytes(data) for path, data in files.items() if data is not None}
    for path in (MANIFEST, LOCK):
        if path not in digests:
            raise ConvoyError(f"the released commit {commit[:12]} has no {path}; a release is of an integration "
                              "commit with a manifest and its lock")
    try:
        lock = json.loads(files[LOCK] or b"")
    except ValueError:
        raise ConvoyError(f"{LOCK} at {commit[:12]} is not JSON; run: convoy lock") from None
    subject = [{"name": name, "digest": {"sha256": artifacts[name]}} for name in sorted(artifacts)]
    subject += [{"name": path, "digest": {"sha256": digests[path]}} for path in (MANIFEST, LOCK)]
    configurations = sorted({t.configuration for stage_tasks in tasks.values() for t in stage_tasks})
    dependencies = [{"name": INTEGRATION, "uri": f"git+{repository}", "digest": {"gitCommit": commit}}]
    dependencies += [{"name": path, "digest": {"sha256": digests[path]}} for path in FILES if path in digests]
    dependencies += pin_dependencies(checkout, commit, lock)
    byproducts = [byproduct(checkout, config, stage.name, stage.command, task)
                  for stage in stages for task in tasks[stage.id]]
    finished = [t.finished_at for stage_tasks in tasks.values() for t in stage_tasks if t.finished_at]
    finished_on = build.finished_at or max(finished, default=build.started_at)
    return {
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "tag": tag, "repository": repository, "branch": config.branch, "commit": commit,
                    "base": build.base_commit, "requests": [request_parameters(r) for r in requests],
                    "configurations": configurations,
                },
                "internalParameters": {
                    "convoy_yaml": {"sha256": digests.get(CONFIG_NAME)},
                    "bazel": {"version": bazel4.bazel_version(bazel), "startup_flags": list(config.bazel_startup_flags),
                              "flags": list(config.bazel_flags)},
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID,
                            "version": {"convoy": convoy.__version__, "worker": socket.gethostname()}},
                "metadata": {"invocationId": f"build-{build.id}", "startedOn": rfc3339(build.started_at),
                             "finishedOn": rfc3339(finished_on)},
                "byproducts": byproducts,
            },
        },
    }


def write(statement: Mapping[str, Any], directory: Path) -> str:
    """Writes `statement` (canonical JSON) to directory/provenance.intoto.json; returns its sha256."""
    data = canonical_json(statement)
    path = Path(directory) / STATEMENT
    partial = path.with_name(f".{STATEMENT}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    return sha256_bytes(data)


def request_parameters(request: Request) -> dict[str, Any]:
    """A request as the statement's externalParameters.requests lists it."""
    return {"id": request.id, "requested_by": request.requested_by,
            "bumps": [{"component": b.component, "version": b.version, "commit": b.commit,
                       "configuration": b.configuration} for b in request.all_bumps]}


def pin_dependencies(checkout: Path, commit: str, lock: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One resolved dependency per (configuration, component) of the lock
    file `lock` (parsed JSON) of `commit`: a git pin's remote and commit, an
    archive's URL and sha256, a local directory's path and git tree."""
    result = []
    trees: dict[str, Optional[str]] = {}
    entries = configuration_entries(lock if isinstance(lock, Mapping) else {})
    for configuration in sorted(entries):
        for component, pin in sorted(entries[configuration].items()):
            source = pin.get("source")
            entry: dict[str, Any] = {"name": f"{configuration}/{component}"}
            if source == "git":
                entry["uri"] = f"git+{untrusted.redact_userinfo(str(pin.get('remote')))}"
                entry["digest"] = {"gitCommit": str(pin.get("commit"))}
            elif source == "archive":
                entry["uri"] = untrusted.redact_userinfo(str(pin.get("url")))
                entry["digest"] = {"sha256": str(pin.get("sha256"))}
            else:
                path = str(pin.get("path"))
                entry["uri"] = f"file:{path}"
                if path not in trees:
                    trees[path] = _tree_at(checkout, commit, path)
                if trees[path]:
                    entry["digest"] = {"gitTree": trees[path]}
            entry["annotations"] = {"version": pin.get("version")}
            result.append(entry)
    return result


def byproduct(checkout: Path, config: Config, stage: str, command: str, task: Task) -> dict[str, Any]:
    """One task as a byproduct of the run: its stage, result, targets and, on a hardware stage, its rigs."""
    annotations: dict[str, Any] = {
        "stage": stage, "configuration": task.configuration, "command": command, "state": task.state.value,
        "outcome": UNCHANGED if task.is_unchanged else task.outcome,
        "invocation_id": invocation_id(_local(checkout, task.bep_path)) if task.bep_path else None,
        "started_on": rfc3339(task.started_at), "finished_on": rfc3339(task.finished_at),
        "targets": [target(t) for t in task.targets],
    }
    try:  # the stage's own flags (tag filter, --config=hil, ...), after bazel.flags
        annotations["flags"] = list(config.stage(stage).bazel_flags())
    except KeyError:  # a stage convoy.yaml no longer has
        pass
    if _is_hardware(config, stage, checkout, task) and not task.is_unchanged:
        annotations.update(hardware(_local(checkout, task.log_path).with_suffix(RIGS_SUFFIX)
                                    if task.log_path else None))
    return {"name": f"stage/{stage}/{task.configuration}", "annotations": annotations}


def target(t: TargetOutcome) -> dict[str, Any]:
    """A task's target as its byproduct lists it; a flaky or quarantined test with its runs and notes."""
    entry: dict[str, Any] = {"label": t.label, "status": t.status, "cached": t.cached}
    if t.status in HELD:
        entry.update(attempts=t.attempts, notes=list(t.notes))
    return entry


def hardware(rigs_path: Optional[Path]) -> dict[str, Any]:
    """A hardware task's rigs, from its .rigs.json: {"hardware": [...]} (and
    "hardware_error" when the lab reported one), or {"hardware_executor": "local"}."""
    if rigs_path is None or not rigs_path.exists():
        return {"hardware_executor": HARDWARE_LOCAL}
    try:
        document = json.loads(rigs_path.read_text(encoding="utf-8"))
        runs = document.get("runs") or []
        result: dict[str, Any] = {"hardware": [
            {"target": _text(run.get("target")), "pool": _text(run.get("pool")), "rig": _text(run.get("rig")),
             "worker": _text(run.get("worker")), "action": _text(run.get("action")),
             "exit_code": run.get("exit_code") if isinstance(run.get("exit_code"), int) else None,
             "started_on": rfc3339(_number(run.get("started"))),
             "finished_on": rfc3339(_number(run.get("finished")))} for run in runs]}
        if document.get("error"):
            result["hardware_error"] = _text(document["error"])
        return result
    except (OSError, ValueError, AttributeError, TypeError) as e:
        return {"hardware": [], "hardware_error": f"{rigs_path.name} is unreadable ({e})"}


def invocation_id(bep_path: Path) -> Optional[str]:
    """The Bazel invocation id of a build event file (its started event's uuid), or None."""
    try:
        with Path(bep_path).open("rb") as f:
            for _, raw in zip(range(_BEP_EVENTS), f):
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(event, Mapping) and isinstance(event.get("id"), Mapping) and "started" in event["id"]:
                    uuid = (event.get("started") or {}).get("uuid")
                    return uuid if isinstance(uuid, str) and uuid else None
    except (OSError, AttributeError):
        return None
    return None


def repository_url(checkout: Path, remote: str) -> str:
    """The URL of the integration checkout's `remote` (userinfo redacted)."""
    result = gitutil.run(["remote", "get-url", remote], cwd=checkout, check=False)
    url = result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else remote
    return untrusted.redact_userinfo(url)


def blob_at(checkout: Path, commit: str, path: str) -> Optional[bytes]:
    """The bytes of the file `path` at `commit` (None if it has none).

    Bytes as stored, which gitutil.run (text, newlines translated) cannot
    give; the same environment as gitutil's calls."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **untrusted.GIT_ENV}
    try:
        proc = subprocess.run(["git", "cat-file", "blob", f"{commit}:{path}"], cwd=checkout, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=gitutil.DEFAULT_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise gitutil.GitError(("git", "cat-file", "blob", f"{commit}:{path}"), str(e)) from None
    return proc.stdout if proc.returncode == 0 else None


def rfc3339(ts: Optional[float]) -> Optional[str]:
    """A timestamp as RFC 3339 UTC with milliseconds ("2026-12-05T09:00:00.000Z"), or None."""
    return None if ts is None else iso(ts)


def _tree_at(checkout: Path, commit: str, path: str) -> Optional[str]:
    result = gitutil.run(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{commit}:{path.rstrip('/')}"],
                         cwd=checkout, check=False)
    return (result.stdout.strip() or None) if result.returncode == 0 else None


def _is_hardware(config: Config, stage: str, checkout: Path, task: Task) -> bool:
    """A stage that checks the pools, or selects the hardware tests (the hardware_test macro's tag)."""
    try:
        spec = config.stage(stage)
        return spec.check_pools or HARDWARE_TAG in (spec.tag_filter or "").split(",")
    except KeyError:  # a stage convoy.yaml no longer has: its rigs file tells
        return bool(task.log_path) and _local(checkout, task.log_path).with_suffix(RIGS_SUFFIX).exists()


def _local(checkout: Path, path: str) -> Path:
    return Path(path) if os.path.isabs(path) else Path(checkout) / path


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
