"""Checking and queueing bumps: `BumpArgs` (what `convoy submit` and
`convoy bump` are asked), `check_bump_args` (their form), `validate` (one
bump against the manifest and the component's remote), `checked` and
`combine` (several as one submission), `submit` (checked and queued).
convoy submit, POST /api/requests and the forge webhooks all go through
these, so a bump is checked the same way whoever asks.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional, Sequence, Union

from convoy import fetch
from convoy import gitutil
from convoy import models
from convoy import requests
from convoy import untrusted
from convoy.actions import checkout
from convoy.errors import ConvoyError
from convoy.manifest import Component, Manifest, ManifestView, read_component
from convoy.models import Request, RequestBump
from convoy.resolve import remote_has_commit

GIT_TIMEOUT = 60.0


def priority_of(name: str) -> int:
    """--priority's value (models.PRIORITIES: high, normal); ConvoyError (one line) for anything else."""
    if name not in models.PRIORITIES:
        raise ConvoyError(f"--priority={untrusted.printable(name)} is not a priority (one of: "
                          f"{', '.join(sorted(models.PRIORITIES))}); for example --priority=high")
    return models.PRIORITIES[name]


def submit(root: Path, bump: BumpArgs, bumps: Sequence[str] = (), *,
           priority: int = models.PRIORITY_NORMAL) -> tuple[Request, bool, list[int]]:
    """Checks `bump` (and the other bumps of the same request, `bumps`:
    --bump's COMPONENT=VERSION[@COMMIT]) against the checkout `root` (its
    manifest, each component's remote) and queues them as one request, of
    `priority`. Returns (the request, whether the same bumps were already
    queued, the ids of the requests it superseded); ConvoyError (one line)
    if a bump is refused (then nothing is queued)."""
    submission = dataclasses.replace(combine(checked(root, bump, bumps)), priority=priority)
    with checkout.store(root, create=True) as store:
        return enqueue(store, submission)


def parse_bump(text: str, requested_by: Optional[str] = None) -> BumpArgs:
    """--bump's COMPONENT=VERSION or COMPONENT=VERSION@COMMIT, as BumpArgs
    (checked later, as --component and --version are)."""
    problem = untrusted.text_problem(text)
    if problem:
        raise ConvoyError(f"--bump={untrusted.printable(text)} {problem}; pass it without them")
    component, equals, rest = text.partition("=")
    version, at, commit = rest.partition("@")
    if not equals or not component or not version or (at and not commit):
        raise ConvoyError(f"--bump={text} is not COMPONENT=VERSION (or COMPONENT=VERSION@COMMIT); for example "
                          "--bump=planner=v2.2.0")
    return BumpArgs(component=component, version=version, commit=commit if at else None, requested_by=requested_by)


def bump_args(bump: RequestBump, requested_by: Optional[str]) -> BumpArgs:
    """The arguments that ask for `bump` again (its commit only if it was given)."""
    return BumpArgs(component=bump.component, version=bump.version,
                    commit=bump.commit if bump.commit_given else None, configuration=bump.configuration,
                    archive_url=bump.archive_url, strip_prefix=bump.strip_prefix, requested_by=requested_by)


def checked(root: Path, bump: BumpArgs, bumps: Sequence[str] = ()) -> list[requests.Submission]:
    """Each bump asked for, checked as `validate` checks one: the one of
    --component and --version (unless only --bump is given), then each
    --bump. ConvoyError (one line) for the first refused, or for two bumps
    of one component."""
    wanted: list[tuple[Optional[str], BumpArgs]] = []
    if bump.component is not None or bump.version is not None or not bumps:
        wanted.append((None, bump))
    else:
        for name in ("commit", "configuration", "archive_url", "strip_prefix"):
            if getattr(bump, name) is not None:
                raise ConvoyError(f"--{name} belongs to the bump of --component and --version; give that bump "
                                  "with them (a --bump takes only COMPONENT=VERSION or COMPONENT=VERSION@COMMIT)")
    wanted += [(text, parse_bump(text, bump.requested_by)) for text in bumps]
    check_once([(args.component, args.version) for _, args in wanted if args.component], "one request")
    found = []
    for text, args in wanted:
        try:
            found.append(validate(root, read_component(checkout.shown_manifest(root), args.component or ""), args))
        except ConvoyError as e:
            if text is None:
                raise
            raise ConvoyError(f"--bump={untrusted.printable(text)}: {e}") from None
    return found


def check_once(bumps: Sequence[tuple[str, str]], where: str) -> None:
    """ConvoyError if two of the (component, version) `bumps` have one component."""
    seen: dict[str, str] = {}
    for component, version in bumps:
        if component in seen:
            raise ConvoyError(f"two bumps of {component} in {where} ({seen[component]} and {version}); a request "
                              "bumps each component once: keep one of them")
        seen[component] = version


def combine(submissions: Sequence[requests.Submission]) -> requests.Submission:
    """One submission of the checked bumps, the first one primary."""
    first, *others = submissions
    return dataclasses.replace(first, bumps=tuple(RequestBump.of(s) for s in others))


MAX_TEXT = 200  # characters of --requested_by


@dataclass(frozen=True)
class BumpArgs:
    """What `convoy submit` and `convoy bump` are asked: their shared flags,
    as given (None: not given). Checked by check_bump_args; the messages
    name the flags (`--component=...`)."""

    component: Optional[str]
    version: Optional[str]
    commit: Optional[str] = None
    configuration: Optional[str] = None
    archive_url: Optional[str] = None
    strip_prefix: Optional[str] = None
    requested_by: Optional[str] = None

    @classmethod
    def from_flags(cls, opts) -> BumpArgs:
        """The parsed flags (only a command's run() calls this; a flag the command lacks: None)."""
        return cls(**{f.name: getattr(opts, f.name, None) for f in fields(cls)})


def check_bump_args(bump: BumpArgs) -> None:
    """Checks the form of what `submit` and `bump` are asked, before anything
    reads the manifest or the network; raises ConvoyError (one line)."""
    if not bump.component:
        raise ConvoyError("--component is required: the component to bump; for example --component=messages")
    if not bump.version:
        raise ConvoyError("--version is required: the component's new version; for example --version=v1.5.0")
    for field in fields(bump):
        value = getattr(bump, field.name)
        problem = untrusted.text_problem(value) if value is not None else None
        if problem:
            raise ConvoyError(f"--{field.name}={untrusted.printable(value)} {problem}; pass it without them")
    problem = checkout.version_problem(bump.version)
    if problem:
        raise ConvoyError(f"{problem}; fix --version")
    if bump.commit is not None and not untrusted.COMMIT_ID.fullmatch(bump.commit):
        raise ConvoyError(f"--commit={bump.commit} is not a commit id (40 lowercase hex digits); pass the full id "
                          "(git rev-parse <ref>)")
    if bump.archive_url is not None:
        problem = untrusted.url_problem(bump.archive_url, untrusted.ARCHIVE_SCHEMES)
        if problem:
            raise ConvoyError(f"--archive_url={bump.archive_url} {problem}; fix it")
    prefix = bump.strip_prefix
    if prefix is not None and (not prefix.strip("/") or prefix.startswith("/") or ".." in prefix.split("/")):
        raise ConvoyError(f"--strip_prefix={prefix} must be a directory inside the archive (relative, no '..'); "
                          "fix it")
    if bump.requested_by is not None and not (0 < len(bump.requested_by) <= MAX_TEXT):
        raise ConvoyError(f"--requested_by must be 1 to {MAX_TEXT} characters (got {len(bump.requested_by)}); "
                          "shorten it, e.g. ci@messages")


def validate(root: Path, manifest: Union[Manifest, ManifestView], bump: BumpArgs) -> requests.Submission:
    """The request's fields, checked against the manifest (the whole of it,
    or the view of `bump.component` that read_component makes); raises
    ConvoyError (one line) otherwise."""
    check_bump_args(bump)
    name, version = bump.component, bump.version
    view = manifest.view(name) if isinstance(manifest, Manifest) else manifest
    if view.name != name:
        raise ValueError(f"a view of component {view.name!r} cannot check a bump of {name!r}")
    component = view.component
    if component is None:
        raise ConvoyError(
            f"--component={name}: no such component in {checkout.shown_manifest(root)} (known: "
            f"{', '.join(sorted(view.component_names))}); fix the name"
        )
    configuration = bump.configuration
    if configuration is not None:
        if configuration not in view.members:
            raise ConvoyError(
                f"--configuration={configuration}: no such configuration (known: "
                f"{', '.join(sorted(view.members))}); fix the name or leave it out for all of them"
            )
        if name not in view.members[configuration]:
            having = sorted(c for c, members in view.members.items() if name in members)
            raise ConvoyError(
                f"--configuration={configuration} does not include {name} (these do: "
                f"{', '.join(having) or 'none'}); pick one of them or leave --configuration out"
            )
    commit = bump.commit
    if bump.strip_prefix is not None and bump.archive_url is None:
        raise ConvoyError("--strip_prefix needs --archive_url (it names a directory inside the archive); "
                          "add --archive_url or drop --strip_prefix")
    archive_url = bump.archive_url
    if archive_url is not None:
        if commit is not None:
            raise ConvoyError("--commit and --archive_url exclude each other (an archive has no commit); drop one")
        _check_archive(name, archive_url, bump.strip_prefix)
    elif component.source == "git":
        commit = _resolve_git(root, component, version, commit)
    elif commit is not None:
        raise ConvoyError(f"--commit: component '{name}' is not fetched from git (source: {component.source}); "
                          "drop --commit")
    elif component.source == "archive":
        url = component.url.replace("{version}", version)
        prefix = component.strip_prefix.replace("{version}", version) if component.strip_prefix else None
        _check_archive(name, url, prefix)
    else:
        path = root / component.path.replace("{version}", version)
        if not path.is_dir():
            raise ConvoyError(f"component '{name}' is local and {os.path.relpath(path, root)} does not exist; "
                              "create that version's directory or fix --version")
    return requests.Submission(
        component=name, version=version, commit=commit, commit_given=bump.commit is not None,
        archive_url=archive_url, strip_prefix=bump.strip_prefix, configuration=configuration,
        requested_by=bump.requested_by or os.environ.get("USER") or "unknown",
    )


def _resolve_git(root: Path, component: Component, version: str, commit) -> str:
    """The commit of the request: `commit` checked against the remote, or
    the version resolved on it."""
    remote = component.remote
    try:
        refs = gitutil.version_refs(remote, version, cwd=root, timeout=GIT_TIMEOUT)
    except gitutil.GitError as e:
        raise ConvoyError(f"component '{component.name}': cannot reach remote {remote} (git: {e.detail}); "
                          "check your network or the remote in the manifest") from None
    tagged, found = refs.tagged, refs.found
    if commit is None:
        if found is None:
            raise ConvoyError(f"component '{component.name}': version {version} is neither a tag nor a branch of "
                              f"{remote}; push the tag first, or fix --version")
        return found
    if tagged is not None and tagged != commit:
        raise ConvoyError(f"component '{component.name}': tag {version} of {remote} is commit {tagged}, not "
                          f"--commit={commit}; fix --commit or --version")
    if commit != found:
        try:
            present = remote_has_commit(remote, commit, root=root, timeout=GIT_TIMEOUT)
        except gitutil.GitError as e:
            raise ConvoyError(f"component '{component.name}': cannot fetch remote {remote} (git: {e.detail}); "
                              "check your network or the remote in the manifest") from None
        if not present:
            raise ConvoyError(f"component '{component.name}': commit {commit} does not exist in {remote} (on none "
                              "of its branches or tags); push it first, or fix --commit")
    return commit


def _check_archive(name: str, url: str, strip_prefix) -> None:
    with tempfile.TemporaryDirectory(prefix="convoy-submit-") as tmp:
        try:
            download = fetch.download(url, tmp, timeout=GIT_TIMEOUT)
        except fetch.FetchError as e:
            raise ConvoyError(f"component '{name}': cannot download {untrusted.redact_userinfo(url)} ({e}); check the "
                              "URL or your network") from None
        if strip_prefix is None:
            return
        try:
            names = fetch.archive_names(download.path)
        except fetch.FetchError as e:
            raise ConvoyError(f"component '{name}': {url}: {e}; pass a tar or zip archive") from None
        if not fetch.has_entries_under(names, strip_prefix):
            raise ConvoyError(f"component '{name}': {url} has nothing under strip prefix '{strip_prefix}'; "
                              "fix --strip_prefix")


def enqueue(store, submission: requests.Submission) -> tuple[Request, bool, list[int]]:
    """Queues the request (or finds the same one queued); supersedes older
    queued requests of the component. Returns (request, existing, superseded ids)."""
    with store.transaction() as tx:
        return requests.queue(tx, submission)
