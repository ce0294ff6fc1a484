"""What a published release holds, and the retention of its artifacts.

    info = describe(checkout, config, "v2026.12.2")   # tag, commit, notes, artifacts, provenance, stages, rigs
    prune(checkout, config, keep=5)                    # artifacts of all but the newest 5 releases removed

A release lives in the artifact store (convoy.artifact_store; files as
convoy.release_layout says) and as a tag on the integration remote.
`prune` removes artifacts only: a release's SHA256SUMS, NOTES.md and
provenance statement stay forever (the audit trail outlives the
downloads), and its PRUNED file says when and what went.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any, Optional

from convoy import candidate as cand
from convoy import gitutil
from convoy import release
from convoy import release_layout as layout
from convoy.artifact_store import ArtifactStore, open_artifact_store
from convoy.config import Config
from convoy.errors import ConvoyError
from convoy.untrusted import printable

SIGNATURE_MARK = "-----BEGIN SSH SIGNATURE-----"
TESTED = ("passed", "failed", "flaky", "timeout")


def describe(checkout: Path, config: Config, tag: str) -> dict[str, Any]:
    """Everything `convoy release show TAG` prints, as data."""
    store = open_artifact_store(config.release.store, checkout)
    directory = store.open(tag)
    tags = cand.remote_tags(checkout, config.remote)
    commit = tags.get(tag)
    message = _tag_message(checkout, config, tag) if commit else ""
    statement = _statement(directory)
    predicate = statement.get("predicate") or {}
    external = (predicate.get("buildDefinition") or {}).get("externalParameters") or {}
    details = predicate.get("runDetails") or {}
    sums = _sums(directory)
    pruned = _pruned(directory)
    artifacts = []
    for name, digest in sorted(sums.items()):
        path = directory / name
        artifacts.append({"name": name, "sha256": digest, "present": path.is_file(),
                          "size": path.stat().st_size if path.is_file() else None})
    stages, hardware = [], []
    for item in details.get("byproducts") or ():
        notes = item.get("annotations") or {}
        stages.append({"stage": notes.get("stage"), "configuration": notes.get("configuration"),
                       "state": notes.get("state"), "outcome": notes.get("outcome"),
                       "invocation_id": notes.get("invocation_id"),
                       "tests": len([t for t in notes.get("targets") or () if t.get("status") in TESTED])})
        for run in notes.get("hardware") or ():
            hardware.append({**run, "configuration": notes.get("configuration")})
        if notes.get("hardware_executor"):
            hardware.append({"configuration": notes.get("configuration"), "executor": notes["hardware_executor"]})
    return {
        "tag": tag,
        "commit": commit,
        "on_remote": commit is not None,
        "tag_signed": SIGNATURE_MARK in message,
        "statement_sha256": layout.sha256_file(directory / layout.STATEMENT)
        if (directory / layout.STATEMENT).is_file() else None,
        "statement_signed": (directory / layout.SIGNATURE).is_file(),
        "statement_named_by_tag": layout.provenance_digest(message),
        "store": f"{store.url.rstrip('/')}/{tag}",
        "requests": external.get("requests") or [],
        "configurations": external.get("configurations") or [],
        "built_on": (details.get("metadata") or {}).get("finishedOn"),
        "builder": (details.get("builder") or {}).get("version") or {},
        "artifacts": artifacts,
        "pruned": pruned,
        "stages": stages,
        "hardware": hardware,
        "notes": message.split("\n\n", 1)[-1].split(SIGNATURE_MARK)[0].strip() + "\n" if message else "",
        "notes_markdown": (directory / layout.NOTES).read_text(encoding="utf-8", errors="replace")
        if (directory / layout.NOTES).is_file() else "",
    }


def listing(checkout: Path, config: Config) -> list[dict[str, Any]]:
    """Every release in the store, newest first: tag, artifacts, pruned or not."""
    store = open_artifact_store(config.release.store, checkout)
    result = []
    for tag in _newest_first(checkout, config, store.tags()):
        directory = store.open(tag)
        sums = _sums(directory)
        result.append({"tag": tag, "artifacts": len(sums), "pruned": _pruned(directory) is not None,
                       "signed": (directory / layout.SIGNATURE).is_file()})
    return result


def prune(checkout: Path, config: Config, keep: int, *, now: Optional[datetime.datetime] = None) -> list[str]:
    """Removes the artifacts of every release but the newest `keep` (by the
    tag format's date and number); returns one line per release pruned."""
    if keep < 0:
        raise ConvoyError(f"--keep={keep}: keep at least 0 releases' artifacts")
    store = open_artifact_store(config.release.store, checkout)
    when = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = []
    for tag in _newest_first(checkout, config, store.tags())[keep:]:
        lines += _prune_one(store, tag, when)
    return lines


def _prune_one(store: ArtifactStore, tag: str, when: str) -> list[str]:
    directory = store.open(tag)
    names = [name for name in _sums(directory) if (directory / name).is_file()]
    if not names:
        return []
    record = directory / layout.PRUNED
    earlier = record.read_text(encoding="utf-8") if record.is_file() else ""
    record.write_text(earlier + f"{when} removed {len(names)} artifact(s): {', '.join(names)}\n", encoding="utf-8")
    store.remove(tag, names)
    return [f"{tag}: removed {len(names)} artifact(s); SHA256SUMS, NOTES.md and the provenance statement stay"]


def _newest_first(checkout: Path, config: Config, tags: list[str]) -> list[str]:
    fmt = release.tag_format_of(checkout, config)
    ordered = []
    for tag in tags:
        fields = release.parse_tag(fmt, tag)
        if fields is not None:  # a directory that is no release tag of this format is never pruned
            ordered.append((release.tag_order(fields), tag))
    return [tag for _, tag in sorted(ordered, reverse=True)]


def _tag_message(checkout: Path, config: Config, tag: str) -> str:
    gitutil.run(["fetch", "--quiet", "--force", "--", config.remote, f"refs/tags/{tag}:refs/tags/{tag}"],
                cwd=checkout, check=False)
    return gitutil.run(["cat-file", "tag", f"refs/tags/{tag}"], cwd=checkout, check=False).stdout


def _statement(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / layout.STATEMENT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _sums(directory: Path) -> dict[str, str]:
    try:
        return layout.parse_sums((directory / layout.SUMS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _pruned(directory: Path) -> Optional[str]:
    path = directory / layout.PRUNED
    if not path.is_file():
        return None
    return printable(path.read_text(encoding="utf-8", errors="replace").strip())
