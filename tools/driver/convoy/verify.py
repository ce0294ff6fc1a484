"""`convoy verify TAG`: a release checked against its tag, its provenance and its files.

    report = verify_release(checkout, config, "v2026.12.1")
    for check in report.checks:        # signatures, lock, artifacts, stages, rigs: always these five, in order
        print(check.ok, check.name, check.line)
    report.ok                          # every check passed
    report.first_problem               # "artifacts: rover/product.tar does not match SHA256SUMS: ..."

The remote's tag is the truth: it is fetched (`ls-remote`, then into
`refs/convoy-verify/<tag>`, never over the checkout's own tags) and a local
tag that differs from it is a problem too. The five checks:

- signatures: the tag's SSH signature and the statement's (when
  release.signing.allowed_signers is set), the statement's sha256 against
  the tag message's Provenance line, and the statement's commit against the
  commit the tag points at;
- lock: the lock and the manifest at that commit against the statement's
  subjects, and every pin of the lock against its resolved dependencies;
- artifacts: SHA256SUMS against the statement's subjects, and every file
  against SHA256SUMS (files `convoy release prune` removed, with PRUNED
  written, count as pruned);
- stages: every task of the build succeeded, or was skipped as UNCHANGED;
- rigs: every hardware test ran on a rig of its own pool (or locally,
  without a lab).

Each check gives one line; a check runs after an earlier one failed
whenever it can. A tag that is not a release of this repository (not on
the remote, lightweight, without a Provenance line, not in the release
store) is a ConvoyError.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from convoy import gitutil
from convoy.artifact_store import open_artifact_store
from convoy.candidate import LOCK, MANIFEST
from convoy.config import Config
from convoy.errors import ConvoyError
from convoy.models import TESTED_STATUSES, UNCHANGED, TaskState
from convoy.provenance import FILES, HARDWARE_LOCAL, INTEGRATION, blob_at, pin_dependencies
from convoy.release_layout import (
    PREDICATE_TYPE, PRUNED, SIGNATURE, STATEMENT, STATEMENT_TYPE, SUMS, parse_sums, provenance_digest, sha256_bytes,
    sha256_file,
)
from convoy.signing import resolve_path, verify_file, verify_tag
from convoy.untrusted import printable as p
from convoy.untrusted import text_problem

CHECKS = ("signatures", "lock", "artifacts", "stages", "rigs")
VERIFY_REF = "refs/convoy-verify/{tag}"  # where the remote's tag is fetched to


@dataclass(frozen=True)
class Check:
    """One check of a release: its name (one of CHECKS), whether it passed, one line."""

    name: str
    ok: bool
    line: str


@dataclass(frozen=True)
class Report:
    """The checks of release `tag`, in the order of CHECKS."""

    tag: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def first_problem(self) -> Optional[str]:
        """"<check>: <line>" of the first check that failed, or None."""
        return next((f"{c.name}: {c.line}" for c in self.checks if not c.ok), None)

    def to_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "ok": self.ok, "first_problem": self.first_problem,
                "checks": [{"name": c.name, "ok": c.ok, "line": c.line} for c in self.checks]}


@dataclass(frozen=True)
class RemoteTag:
    """The remote's annotated tag `name`, fetched to `ref`: its object, the
    commit it points at, the tag name written in the object, its message,
    the statement digest the message names, and the object the checkout's
    own refs/tags/<name> holds (None: no such local tag)."""

    name: str
    ref: str
    object: str
    commit: str
    named: str
    message: str
    digest: str
    local: Optional[str]


@dataclass(frozen=True)
class _Statement:
    path: Path
    data: Optional[bytes]
    document: Optional[Mapping[str, Any]]
    problem: Optional[str]


class _Fail(Exception):
    """A check's one line, when it fails."""


def verify_release(checkout: Path, config: Config, tag: str) -> Report:
    """Checks release `tag` of the integration checkout `checkout` (see the
    module's docstring); ConvoyError if `tag` is not a release of it."""
    checkout = Path(checkout)
    remote_tag = fetch_tag(checkout, config.remote, tag)
    directory = open_artifact_store(config.release.store, checkout).open(tag)
    statement = _read_statement(directory / STATEMENT)
    steps: tuple[Callable[[], str], ...] = (
        lambda: _signatures(checkout, config, remote_tag, statement),
        lambda: _lock(checkout, remote_tag, statement),
        lambda: _artifacts(directory, statement),
        lambda: _stages(statement),
        lambda: _rigs(statement),
    )
    checks = []
    for name, step in zip(CHECKS, steps):
        try:
            checks.append(Check(name, True, step()))
        except _Fail as e:
            checks.append(Check(name, False, str(e)))
    return Report(tag, tuple(checks))


def fetch_tag(checkout: Path, remote: str, tag: str) -> RemoteTag:
    """The remote's tag `tag`, fetched into VERIFY_REF; ConvoyError if it is
    not an annotated tag of a commit with a Provenance line."""
    if (not tag or tag.startswith("-") or text_problem(tag) or gitutil.run(
            ["check-ref-format", f"refs/tags/{tag}"], cwd=checkout, check=False).returncode != 0):
        raise ConvoyError(f"'{p(tag)}' is not a tag name; give a release tag, e.g. convoy verify v2026.12.1")
    ref, local_ref = f"refs/tags/{tag}", VERIFY_REF.format(tag=tag)
    found = gitutil.ls_remote(remote, [ref, f"{ref}^{{}}"], cwd=checkout)
    if ref not in found:
        raise ConvoyError(f"{p(remote)} has no tag {p(tag)}: it is not a release of this repository; "
                          f"see its tags with: git ls-remote --tags {p(remote)}")
    if f"{ref}^{{}}" not in found:
        raise ConvoyError(f"tag {p(tag)} of {p(remote)} is a lightweight tag, not a release of convoy "
                          "(convoy's release tags are annotated and name their provenance)")
    gitutil.run(["fetch", "--quiet", "--no-tags", "--", remote, f"+{ref}:{local_ref}"], cwd=checkout)
    obj = gitutil.run(["rev-parse", "--verify", "--end-of-options", local_ref], cwd=checkout).stdout.strip()
    text = gitutil.run(["cat-file", "tag", obj], cwd=checkout).stdout
    header, _, message = text.partition("\n\n")
    fields = dict(line.split(" ", 1) for line in header.splitlines() if " " in line)
    digest = provenance_digest(message)
    if fields.get("type") != "commit":
        raise ConvoyError(f"tag {p(tag)} of {p(remote)} does not tag a commit: it is not a release made by convoy")
    local = gitutil.run(["rev-parse", "--quiet", "--verify", "--end-of-options", ref], cwd=checkout, check=False)
    return RemoteTag(name=tag, ref=local_ref, object=obj, commit=fields.get("object", ""),
                     named=fields.get("tag", ""), message=message, digest=digest or "",
                     local=local.stdout.strip() if local.returncode == 0 else None)


def _read_statement(path: Path) -> _Statement:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _Statement(path, None, None, f"{STATEMENT} is missing from the release")
    except OSError as e:
        return _Statement(path, None, None, f"{STATEMENT} cannot be read ({e.strerror})")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return _Statement(path, data, None, f"{STATEMENT} is not JSON")
    if (not isinstance(document, Mapping) or document.get("_type") != STATEMENT_TYPE
            or document.get("predicateType") != PREDICATE_TYPE):
        return _Statement(path, data, None, f"{STATEMENT} is not an in-toto statement of SLSA provenance v1")
    return _Statement(path, data, document, None)


# -- the five checks: each returns its line, or raises _Fail with it ---------------------------------------


def _signatures(checkout: Path, config: Config, tag: RemoteTag, statement: _Statement) -> str:
    signing = config.release.signing
    allowed = resolve_path(signing.allowed_signers, checkout) if signing.allowed_signers else None
    if tag.named != tag.name:
        raise _Fail(f"the tag object of {p(tag.name)} says it is tag {p(tag.named)}: another tag's copy")
    if allowed is not None:
        _fail_if(verify_tag(checkout, tag.ref, allowed, principal=signing.principal, shown=tag.name))
    if statement.data is None:
        raise _Fail(statement.problem or f"{STATEMENT} is missing")
    if not tag.digest:  # the store holds the release, so the tag was made again since
        raise _Fail(f"tag {p(tag.name)} (now at {tag.commit[:12]}) names no provenance statement: it was replaced "
                    "or moved after the release")
    digest = sha256_bytes(statement.data)
    if digest != tag.digest:
        raise _Fail(f"the provenance statement was changed after release: its sha256 is {digest}, "
                    f"the tag names {tag.digest}")
    if allowed is not None:
        _fail_if(verify_file(allowed, signing.principal, statement.path,
                             statement.path.with_name(SIGNATURE)))
    parameters = _external(statement)
    if parameters.get("commit") != tag.commit:
        raise _Fail(f"tag {p(tag.name)} points at {tag.commit}, its provenance says {p(parameters.get('commit'))}: "
                    "the tag was moved")
    if parameters.get("tag") != tag.name:
        raise _Fail(f"the provenance is of tag {p(parameters.get('tag'))}, not {p(tag.name)}")
    if tag.local is not None and tag.local != tag.object:
        raise _Fail(f"the checkout's tag {p(tag.name)} ({tag.local[:12]}) is not the remote's ({tag.object[:12]}): "
                    f"it was moved here; replace it with: git fetch --force {p(config.remote)} tag {p(tag.name)}")
    if allowed is None:
        return "not signed (no release.signing in convoy.yaml): digests only"
    return (f"tag {p(tag.name)} and its provenance are signed by {p(signing.principal)}; the tag names the "
            f"statement (sha256 {digest[:12]}) and the commit {tag.commit[:12]}")


def _lock(checkout: Path, tag: RemoteTag, statement: _Statement) -> str:
    subjects = _subjects(statement)
    short = tag.commit[:12]
    blobs = {}
    for path in (LOCK, MANIFEST):
        recorded = subjects.get(path)
        if recorded is None:
            raise _Fail(f"the provenance records no sha256 of {path}")
        blobs[path] = blob_at(checkout, tag.commit, path)
        if blobs[path] is None:
            raise _Fail(f"{path} is missing at the tag's commit {short}")
        actual = sha256_bytes(blobs[path])
        if actual != recorded:
            raise _Fail(f"{path} at {short} has sha256 {actual}, the provenance records {p(recorded)}")
    try:
        lock = json.loads(blobs[LOCK])
    except (ValueError, RecursionError):
        raise _Fail(f"{LOCK} at {short} is not JSON") from None
    expected = pin_dependencies(checkout, tag.commit, lock if isinstance(lock, Mapping) else {})
    dependencies = _field(statement, "predicate", "buildDefinition", "resolvedDependencies", kind=list)
    recorded_pins = [d for d in dependencies if not (isinstance(d, Mapping) and d.get("name") in (INTEGRATION, *FILES))]
    if recorded_pins != expected:
        names = [d.get("name") if isinstance(d, Mapping) else None for d in recorded_pins]
        wrong = next((e["name"] for e in expected if e not in recorded_pins), None)
        extra = next((n for n in names if n not in {e["name"] for e in expected}), None)
        if wrong is not None:
            raise _Fail(f"the provenance's pin of {p(wrong)} is not the one in {LOCK} at {short}")
        raise _Fail(f"the provenance lists a pin {p(extra)} that {LOCK} at {short} does not have"
                    if extra is not None else f"the provenance lists the pins of {LOCK} at {short} in another order")
    return f"{LOCK} and {MANIFEST} at {short} are the provenance's ({len(expected)} pins)"


def _artifacts(directory: Path, statement: _Statement) -> str:
    subjects = {name: digest for name, digest in _subjects(statement).items() if name not in (MANIFEST, LOCK)}
    sums_path = directory / SUMS
    if not sums_path.is_file():
        if not subjects:
            return "no artifacts (the release has none)"
        raise _Fail(f"{SUMS} is missing from the release")
    try:
        sums = parse_sums(sums_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise _Fail(f"{SUMS} cannot be read: {p(e)}") from None
    if sums != subjects:
        name = sorted(n for n in sums.keys() | subjects.keys() if sums.get(n) != subjects.get(n))[0]
        what = ("not in the provenance" if name not in subjects else "missing from it" if name not in sums
                else f"{sums[name]} there, {subjects[name]} in the provenance")
        raise _Fail(f"{SUMS} does not match the provenance: {p(name)} is {what}")
    pruned = (directory / PRUNED).exists()
    checked, gone = 0, 0
    for name, digest in sorted(sums.items()):
        path = _inside(directory, name)
        if path is None:
            raise _Fail(f"{SUMS} names {p(name)}, which is not a path inside the release")
        if not path.is_file():
            if pruned:
                gone += 1
                continue
            raise _Fail(f"{p(name)} is missing from the release (it was not pruned: there is no {PRUNED})")
        actual = sha256_file(path)
        if actual != digest:
            raise _Fail(f"{p(name)} does not match {SUMS}: its sha256 is {actual}, {SUMS} says {digest}")
        checked += 1
    line = f"{_count(checked, 'artifact')} {'matches' if checked == 1 else 'match'} {SUMS} and the provenance"
    if gone:
        line += f"; {gone} pruned ({PRUNED})"
    return line


def _stages(statement: _Statement) -> str:
    passed, unchanged, stages = 0, 0, set()
    byproducts = _byproducts(statement)
    if not byproducts:
        raise _Fail("the provenance lists no stage results")
    for fields in byproducts:
        stage, configuration = p(fields.get("stage")), p(fields.get("configuration"))
        state, outcome = fields.get("state"), fields.get("outcome")
        stages.add(stage)
        if state == TaskState.SUCCEEDED.value:
            passed += 1
        elif state == TaskState.SKIPPED.value and outcome == UNCHANGED:
            unchanged += 1
        elif state == TaskState.FAILED.value:
            raise _Fail(f"stage {stage} failed in configuration {configuration}")
        else:
            raise _Fail(f"stage {stage} did not pass in configuration {configuration} (it is {p(state)})")
    line = f"{_count(passed, 'task')} of {_count(len(stages), 'stage')} passed"
    if unchanged:
        line += f"; {unchanged} unchanged (skipped: their pins did not move)"
    return line


def _rigs(statement: _Statement) -> str:
    on_rigs, local = 0, 0
    for fields in _byproducts(statement):
        where = f"stage {p(fields.get('stage'))} in configuration {p(fields.get('configuration'))}"
        if fields.get("hardware_error"):
            raise _Fail(f"the hardware tests of {where} have no record of their rigs: "
                        f"{p(fields['hardware_error'])}")
        if fields.get("hardware_executor") == HARDWARE_LOCAL:
            targets = fields.get("targets") if isinstance(fields.get("targets"), list) else []
            local += sum(1 for t in targets
                         if isinstance(t, Mapping) and str(t.get("status")).lower() in TESTED_STATUSES)
            continue
        runs = fields.get("hardware") or []
        if not isinstance(runs, list):
            raise _Fail(f"the hardware record of {where} is not a list")
        for run in runs:
            run = run if isinstance(run, Mapping) else {}
            target, pool, worker = p(run.get("target")), run.get("pool"), str(run.get("worker") or "")
            rig = p(run.get("rig") or worker.partition("/")[2] or worker)
            if not pool:
                raise _Fail(f"hardware test {target} ({where}) names no pool")
            if not worker.startswith(f"{pool}/"):
                actual = worker.partition("/")[0] if "/" in worker else "(none)"
                raise _Fail(f"hardware test {target} ran on rig {rig} of pool {p(actual)}, not of its pool {p(pool)}")
            on_rigs += 1
    parts = []
    if on_rigs:
        parts.append(f"{_count(on_rigs, 'hardware test')} ran on rigs of their pools")
    if local:
        parts.append(f"{_count(local, 'hardware test')} ran locally (no lab)")
    return "; ".join(parts) or "no hardware tests in this release"


# -- reading the statement (untrusted: every field is checked before use) ----------------------------------


def _document(statement: _Statement) -> Mapping[str, Any]:
    if statement.document is None:
        raise _Fail(f"not checked: {statement.problem}")
    return statement.document


def _field(statement: _Statement, *keys: str, kind: type = dict) -> Any:
    value: Any = _document(statement)
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    if not isinstance(value, Mapping if kind is dict else kind):
        raise _Fail(f"the provenance has no {'.'.join(keys)}")
    return value


def _external(statement: _Statement) -> Mapping[str, Any]:
    return _field(statement, "predicate", "buildDefinition", "externalParameters")


def _subjects(statement: _Statement) -> dict[str, str]:
    result = {}
    for subject in _field(statement, "subject", kind=list):
        digest = subject.get("digest") if isinstance(subject, Mapping) else None
        if not isinstance(digest, Mapping) or not isinstance(subject.get("name"), str) \
                or not isinstance(digest.get("sha256"), str):
            raise _Fail("the provenance has a subject without a name and a sha256")
        result[subject["name"]] = digest["sha256"]
    return result


def _byproducts(statement: _Statement) -> list[Mapping[str, Any]]:
    byproducts = _field(statement, "predicate", "runDetails", "byproducts", kind=list)
    result = [b.get("annotations") if isinstance(b, Mapping) else None for b in byproducts]
    if not all(isinstance(a, Mapping) for a in result):
        raise _Fail("the provenance has a byproduct without annotations")
    return result


def _inside(directory: Path, name: str) -> Optional[Path]:
    parts = name.split("/")
    if os.path.isabs(name) or "\\" in name or any(part in ("", ".", "..") for part in parts) or text_problem(name):
        return None
    return directory.joinpath(*parts)


def _fail_if(problem: Optional[str]) -> None:
    if problem:
        raise _Fail(problem)


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")
