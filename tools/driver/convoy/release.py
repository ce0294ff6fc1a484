"""Release tags and their notes.

A release tag follows the manifest's (or convoy.yaml's) `tag_format`, a
Python format string over {year}, {month}, {day} (not zero-padded unless
the format says so, e.g. {month:02d}) and {n}, the release number within
the same other fields:

    next_tag("v{year}.{month}.{n}", ["v2026.11.1", "v2026.11.2", "v2026.10.7"], date(2026, 11, 5))
    -> "v2026.11.3"

The notes become the annotated tag's message:

    v2026.11.3: planner v2.1.0 -> v2.2.0 (request 7)

    Components changed since v2026.11.2:
      rover/planner: v2.1.0 (1a2b3c4d) -> v2.2.0 (5e6f7a8b)

    Tests:
      build: 2 tasks passed
      integration: 6 tests passed

    Flaky and quarantined tests:
      integration / rover: //integration:plan_to_motion_test flaky (2 runs: failed here but passed on main: ...)
      integration / rover: //integration:radio_test quarantined (1 run: quarantined until 2026-12-31: #123)

(the last section only when a build that tested the release had such a
test: one that failed and did not reject, convoy.flaky).

A release of several bumps (a group, or a batch of requests) says what it
is in one line and names every request and bump under "Requests:":

    v2026.11.4: messages v1.4.0 -> v1.5.0 + planner v2.1.0 -> v2.2.0 (request 8, by ci)

    Requests:
      request 8 by ci:
        messages v1.4.0 -> v1.5.0, commit 5e6f7a8b9c0d
        planner v2.1.0 -> v2.2.0, commit 1a2b3c4d5e6f

`push_release_tag` makes sure one release tag points at a commit on the
remote (the queue after a merge, and `convoy tag` by hand, both call it; it
is idempotent, so a driver killed half-way tags once); `release_notes_for`
writes the notes from the locks at the previous release and at the commit,
and from the stages of the build that tested it. Recording the release in
the store is `convoy.requests.record_release`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterable, Mapping, Optional, Sequence

from convoy import candidate as cand
from convoy import changes as component_changes
from convoy import failpoints
from convoy import flaky
from convoy import gitutil
from convoy import untrusted
from convoy.config import Config
from convoy.errors import ConvoyError, InfraError
from convoy.models import UNCHANGED_DETAIL, BuildState, Request, RequestBump
from convoy.pins import COMPONENT_CACHE, PinChange, pin_changes, short_pin  # noqa: F401 (also convoy.release's API)
from convoy.store import Store, state_dir
from convoy.versions import tag_format_problem, tag_format_spec_problem

FIELDS = ("year", "month", "day", "n")
# n: at most 18 digits, so that int() of a tag's digits stays cheap.
_FIELD_DIGITS = {"year": "[0-9]{4}", "month": "[0-9]{1,2}", "day": "[0-9]{1,2}", "n": "[0-9]{1,18}"}


def parse_tag(tag_format: str, tag: str) -> Optional[dict[str, int]]:
    """The fields of `tag` if it is one `tag_format` makes, else None.

    parse_tag("v{year}.{month}.{n}", "v2026.11.3") == {"year": 2026, "month": 11, "n": 3}
    """
    pattern, names = _pattern(tag_format)
    match = pattern.fullmatch(tag)
    if match is None:
        return None
    fields = {name: int(match.group(name)) for name in names}
    try:
        if tag_format.format(**fields) != tag:  # e.g. "v2026.011.3" for an unpadded {month}
            return None
    except (ValueError, KeyError, IndexError):
        return None
    return fields


def tag_order(fields: Mapping[str, int]) -> tuple[int, ...]:
    """What release tags sort by, newest last: their date fields, then n (parse_tag's fields)."""
    return tuple(fields.get(f, 0) for f in FIELDS)


def next_tag(tag_format: str, existing: Iterable[str], when: datetime.date) -> str:
    """The next release tag on `when`: n is 1 + the largest n among the
    `existing` tags with the same other fields (1 if there is none)."""
    problem = tag_format_problem(tag_format)
    if problem:
        raise ConvoyError(f"release tag format {problem}; fix release.tag_format, e.g. \"v{{year}}.{{month}}.{{n}}\"")
    _, names = _pattern(tag_format)
    today = {"year": when.year, "month": when.month, "day": when.day}
    same = [f for f in names if f != "n"]
    highest = 0
    for tag in existing:
        fields = parse_tag(tag_format, tag)
        if fields is not None and all(fields[f] == today[f] for f in same):
            highest = max(highest, fields["n"])
    return tag_format.format(**today, n=highest + 1)


def release_notes(
    tag: str,
    changes: Sequence[PinChange],
    *,
    request_line: str,
    test_summary: Sequence[str],
    previous_tag: Optional[str] = None,
    request_lines: Sequence[str] = (),
    commit_lines: Sequence[str] = (),
    held_lines: Sequence[str] = (),
) -> str:
    """The annotated tag message of `tag` (see the module docstring).

    `request_line` says what the release is ("planner v2.1.0 -> v2.2.0
    (request 7)"); `test_summary` has one line per stage or task;
    `previous_tag` is the release the changes are counted from (None: the
    start); `request_lines`, if any, go under "Requests:" (a release of
    several bumps names each request and bump there); `commit_lines`, if
    any, go under "Component commits:" (convoy.changes.text_section);
    `held_lines`, if any, under "Flaky and quarantined tests:" (convoy.flaky.release_lines).
    """
    lines = [f"{tag}: {request_line}", ""]
    if request_lines:
        lines += ["Requests:", *(f"  {line}" for line in request_lines), ""]
    lines += [f"Components changed since {previous_tag or 'the start'}:"]
    lines += [f"  {change.describe()}" for change in changes] or ["  (none)"]
    if commit_lines:
        lines += ["", "Component commits:", *(f"  {line}" for line in commit_lines)]
    lines += ["", "Tests:"]
    lines += [f"  {line}" for line in test_summary] or ["  (none)"]
    if held_lines:
        lines += ["", "Flaky and quarantined tests:", *(f"  {line}" for line in held_lines)]
    return "\n".join(lines) + "\n"


def _pattern(tag_format: str) -> tuple[re.Pattern, tuple[str, ...]]:
    """A regex matching what `tag_format` makes, and its field names.

    Raises ConvoyError for a format that would be costly to apply (a huge
    width, a nested field): parse_tag formats it with a tag's numbers.
    """
    problem = tag_format_spec_problem(tag_format)
    if problem:
        raise ConvoyError(f"release tag format {problem}; fix release.tag_format, e.g. \"v{{year}}.{{month}}.{{n}}\"")
    parts, names = [], []
    for literal, name, _spec, _conversion in string.Formatter().parse(tag_format):
        parts.append(re.escape(literal))
        if name is None:
            continue
        if name not in FIELDS:
            raise ConvoyError(
                f"release tag format '{tag_format}' uses unknown field {{{name}}} (only {{year}}, {{month}}, "
                "{day}, {n} exist); fix release.tag_format"
            )
        if name in names:
            parts.append(f"(?P={name})")
        else:
            parts.append(f"(?P<{name}>{_FIELD_DIGITS[name]})")
            names.append(name)
    return re.compile("".join(parts)), tuple(names)


# -- tagging a commit on the remote ----------------------------------------------------------


def tag_format_of(checkout: Path, config: Config) -> str:
    """convoy.yaml's release.tag_format, else the manifest's (as locked on the branch)."""
    if config.tag_format:
        return config.tag_format
    lock = cand.lock_at(checkout, f"refs/remotes/{config.remote}/{config.branch}") or {}
    return (lock.get("release") or {}).get("tag_format") or "v{year}.{month}.{n}"


def push_release_tag(checkout: Path, config: Config, store: Store, commit: str, *, request: Optional[Request],
                     today: datetime.date, requests: Optional[Sequence[Request]] = None,
                     prepare: Optional[Callable[[str, "ReleaseContent"], str]] = None,
                     sign_args: Sequence[str] = (),
                     fence: Callable[[], ContextManager] = contextlib.nullcontext) -> tuple[str, str]:
    """Makes sure a release tag points at `commit` on the remote; returns
    (its name, its notes; `requests`: every request the commit holds, a
    batch, named in the notes instead of `request`). Idempotent: a release tag already there at
    `commit` is returned as it is (never a second tag for one commit); a
    local tag left by a killed driver is pushed or replaced; a name taken
    meanwhile on the remote moves on to the next one.

    `prepare(name, content)`, if given, is called before the tag is made
    (and for a tag found already there): it returns a line that ends the
    tag's message (convoy.publish: the provenance statement's digest).
    `sign_args` are git options that make it a signed tag (`tag -s`).
    `fence()` is around the push (the queue's lease: convoy.queue.lock)."""
    fmt = tag_format_of(checkout, config)
    remote = config.remote
    for _ in range(3):
        tags = cand.remote_tags(checkout, remote)
        ours = sorted(name for name, target in tags.items()
                      if target == commit and parse_tag(fmt, name) is not None)
        if ours:
            name = ours[0]
            content = release_content_for(checkout, store, fmt, name, commit, tags, request=request,
                                          requests=requests)
            if prepare is not None:
                prepare(name, content)
            return name, content.notes
        name = next_tag(fmt, list(tags), today)
        content = release_content_for(checkout, store, fmt, name, commit, tags, request=request, requests=requests)
        notes = content.notes
        if prepare is not None:
            notes += "\n" + prepare(name, content) + "\n"
        local = gitutil.run(["rev-parse", "-q", "--verify", "--end-of-options", f"refs/tags/{name}^{{commit}}"],
                            cwd=checkout, check=False).stdout.strip()
        if local and local != commit:
            gitutil.run(["tag", "-d", "--", name], cwd=checkout)  # not on the remote: a leftover of a killed driver
            local = ""
        if not local:
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False,
                                             dir=state_dir(checkout)) as f:
                f.write(notes)
            try:
                gitutil.run([*cand.identity_args(checkout), *sign_args, "tag", "-s" if sign_args else "-a", "-F",
                             f.name, "--cleanup=verbatim", "--", name, commit], cwd=checkout)
            finally:
                os.unlink(f.name)
            failpoints.hit("after_tag")
        try:
            with fence():
                gitutil.run(["push", "--quiet", "--", remote, f"refs/tags/{name}:refs/tags/{name}"], cwd=checkout)
        except gitutil.GitError as e:
            now_tags = cand.remote_tags(checkout, remote)
            if now_tags.get(name) == commit:
                pass
            elif name in now_tags:  # someone took the name meanwhile: the next one
                gitutil.run(["tag", "-d", "--", name], cwd=checkout, check=False)
                continue
            else:
                raise InfraError(f"git push of tag {name} to {remote} failed: {e.detail}") from None
        failpoints.hit("after_tag_push")
        return name, notes
    raise InfraError("the release tag's name was taken on the remote three times in a row")


def stage_summary(store: Store, build_id: Optional[int]) -> list[str]:
    """One line per stage and configuration of a build (what Bazel said, or
    that the configuration was skipped as unchanged), and under it one line
    per test: its status, and whether it ran or came from a cache."""
    if build_id is None:
        return []
    lines = []
    with store.read() as tx:
        for stage in tx.stages(build_id):
            for task in tx.tasks(stage_id=stage.id):
                if task.is_unchanged:
                    lines.append(f"{stage.name} / {task.configuration}: {task.detail or UNCHANGED_DETAIL}")
                    continue
                outcome = (task.outcome or task.state.value).lower().replace("_", " ")
                ran, cached = task.test_counts()
                counts = f" ({ran} ran, {cached} cached)" if ran + cached else ""
                detail = f": {task.detail}" if task.detail else ""
                lines.append(f"{stage.name} / {task.configuration}: {outcome}{counts}{detail}")
                lines += [f"  {t.label}: {t.status.lower()}, {'cached' if t.cached else 'ran'}"
                          for t in task.targets if t.is_test]
    return lines


@dataclass(frozen=True)
class ReleaseContent:
    """What a release says: `notes`, the annotated tag's message, and `markdown`, its NOTES.md."""

    notes: str
    markdown: str


def release_notes_for(checkout: Path, store: Store, tag_format: str, tag: str, commit: str,
                      tags: dict[str, str], *, request: Optional[Request] = None,
                      requests: Optional[Sequence[Request]] = None) -> str:
    """The release notes of `tag` on `commit` (release_content_for's `notes`)."""
    return release_content_for(checkout, store, tag_format, tag, commit, tags, request=request,
                               requests=requests).notes


def release_content_for(checkout: Path, store: Store, tag_format: str, tag: str, commit: str,
                        tags: dict[str, str], *, request: Optional[Request] = None,
                        requests: Optional[Sequence[Request]] = None) -> ReleaseContent:
    """The notes of `tag` on `commit`: the pins that changed since the
    previous release tag (the newest one of `tag_format` that is an
    ancestor of `commit`) with each component's own commits between its
    pins (convoy.changes, fetched from its remote), the request (or
    `requests`, every request of a batch; a group's or a batch's bumps each
    named), and the test summary of the build that tested `commit`."""
    previous = previous_release(checkout, tag_format, commit, tags, exclude=tag)
    if previous is not None:
        old_lock, since = cand.lock_at(checkout, tags[previous]), previous
    else:  # the first release: what changed since the commit before it
        parent = gitutil.run(["rev-parse", "-q", "--verify", "--end-of-options", f"{commit}^"], cwd=checkout,
                             check=False).stdout.strip()
        old_lock = cand.lock_at(checkout, parent) if parent else None
        since = f"{parent[:12]} (no earlier release)" if parent else None
    new_lock = cand.lock_at(checkout, commit) or {}
    changes = pin_changes(old_lock, new_lock)
    with store.read() as tx:
        builds = [b for b in tx.builds_of_commit(commit) if b.state == BuildState.SUCCEEDED]
        if request is None and builds:
            request = tx.request(builds[-1].request_id)
    held = list(requests) if requests else ([request] if request is not None else [])
    request_lines: list[str] = []
    if len(held) == 1 and not held[0].bumps:
        request = held[0]
        line = (f"{_bump_line(request.primary, changes)} (request {request.id}, by "
                f"{untrusted.printable(request.requested_by)}"
                + (f", commit {request.commit[:12]}" if request.commit else "") + ")")
    elif held:
        bumps = " + ".join(_bump_line(b, changes) for r in held for b in r.all_bumps)
        who = (f"request {held[0].id}, by {untrusted.printable(held[0].requested_by)}" if len(held) == 1
               else f"requests {', '.join(str(r.id) for r in held)}")
        line = f"{bumps} ({who})"
        for r in held:
            request_lines.append(f"request {r.id} by {untrusted.printable(r.requested_by)}:")
            request_lines += [f"  {_bump_line(b, changes)}" + (f", commit {b.commit[:12]}" if b.commit else "")
                              for b in r.all_bumps]
    else:
        line = f"tagged by hand on {commit[:12]}"
    found = component_changes.changes_for(changes, new_lock, old_lock,
                                          cache_dir=checkout / COMPONENT_CACHE)
    tests = stage_summary(store, builds[-1].id if builds else None)
    with store.read() as tx:
        held_lines = flaky.release_lines(tx, [b.id for b in builds])
    notes = release_notes(tag, changes, request_line=line, previous_tag=since, request_lines=request_lines,
                          test_summary=tests, commit_lines=component_changes.text_section(found),
                          held_lines=held_lines)
    markdown = component_changes.markdown(tag, line, found, requests_lines=request_lines, tests_lines=tests,
                                          held_lines=held_lines,
                                          previous=since)
    return ReleaseContent(notes=notes, markdown=markdown)


def _bump_line(bump: RequestBump, changes: Sequence[PinChange]) -> str:
    """"messages v1.4.0 -> v1.5.0" (the versions it moved from) and its scope."""
    before = sorted({c.old_version for c in changes if c.component == bump.component and c.old_version})
    return (f"{bump.component} {'/'.join(before) + ' -> ' if before else ''}{bump.version}"
            + (f" in {bump.configuration}" if bump.configuration else ""))


def previous_release(checkout: Path, tag_format: str, commit: str, tags: dict[str, str],
                     exclude: Optional[str] = None) -> Optional[str]:
    """The newest release tag (by its date fields and number) that is an
    ancestor of `commit` and does not point at it."""
    candidates = []
    for name, target in tags.items():
        if name == exclude or target == commit:
            continue
        parsed = parse_tag(tag_format, name)
        if parsed is not None:
            candidates.append((tag_order(parsed), name))
    for _, name in sorted(candidates, reverse=True):  # newest first: usually the first one is it
        ancestor = gitutil.run(["merge-base", "--is-ancestor", "--", tags[name], commit], cwd=checkout, check=False)
        if ancestor.returncode == 0:
            return name
    return None
