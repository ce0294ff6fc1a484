"""`convoy submit`: ask for a component bump; it joins the queue.

    convoy submit --component=messages --version=v1.5.0                      # commit from the tag
    convoy submit --component=messages --version=v1.5.0 --commit=<40 hex> --requested_by=ci@messages
    convoy submit --component=firmware --version=v3.1.0 --configuration=rover
    convoy submit --component=planner --version=v2.2.0 --archive_url=https://.../planner-2.2.0.tar.gz \\
        --strip_prefix=planner-2.2.0
    convoy submit ... --json     # {"id": 3, "state": "queued", "existing": false, "superseded": [2]}
    convoy submit ... --priority=high    # goes first (the default: normal); later: convoy promote N

Several bumps as ONE request (a group: tested, merged and tagged as one;
rejected as a whole if any of them breaks the build):

    convoy submit --bump=messages=v2.0.0 --bump=planner=v3.0.0             # COMPONENT=VERSION
    convoy submit --component=messages --version=v2.0.0 --bump=planner=v3.0.0@<40 hex>   # ...@COMMIT

A group gathered over time (say, by each component's CI): each bump is
checked now and held in the open group NAME; --close queues them all as one
request (each checked again; the group is then gone):

    convoy submit --component=messages --version=v2.0.0 --group=release-7    # held until closed
    convoy submit --bump=planner=v3.0.0 --group=release-7
    convoy submit --group=release-7 --close                                   # one queued request

Checked before anything is queued, each a one-line error: the component is
in the manifest, the version looks like v1.2.3, the configuration exists and
has the component, the commit is 40 hex and is on a branch or tag of the
component's remote (without --commit, the version is resolved on the
remote), an archive can be downloaded and has the strip prefix.

The manifest is read as far as these checks need (convoy.manifest's
read_component: the component's entry, the names of the others, the
configurations' members and pins, each checked as `convoy lock` checks
them); a mistake elsewhere in it is reported by `convoy lock`, and by the
queue when it makes the candidate from the branch tip's manifest.

Each bump of a group is checked exactly as a single one, and a request
(or group) bumps each component once.

The same bumps at the same commits (same scopes and archives) already
queued: its id is printed, nothing is added. A newer request supersedes the
older *queued* requests of every component it bumps: a group supersedes a
queued single bump of one of its components, and a single bump a queued
group that has its component.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional, Sequence, Union

from absl import flags

from convoy import fetch
from convoy import gitutil
from convoy import models
from convoy import requests
from convoy import untrusted
from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.resolve import remote_has_commit
from convoy.manifest import Component, Manifest, ManifestView, read_component
from convoy.models import Request, RequestBump

FLAGS = flags.FLAGS
flags.DEFINE_string("requested_by", None, "Who asks for the bump (default: $USER), e.g. ci@messages.")
flags.DEFINE_multi_string("bump", None, "convoy submit: another bump of the same request, COMPONENT=VERSION or "
                          "COMPONENT=VERSION@COMMIT (repeat it); all the request's bumps are tested, merged and "
                          "tagged as one.")
flags.DEFINE_string("group", None, "convoy submit: add the bump(s) to the open group NAME, held until it is "
                    "closed; with --close: queue the group's bumps as one request.")
flags.DEFINE_bool("close", False, "convoy submit --group=NAME --close: queue the open group as one request.")
flags.DEFINE_string("priority", "normal", "convoy submit: high or normal; the queue takes the highest priority "
                    "first, then the oldest.")

GIT_TIMEOUT = 60.0


def run(args: list[str]) -> int:
    bump, as_json, repo = BumpArgs.from_flags(), FLAGS.json, FLAGS.repo
    extra, group, close = list(FLAGS.bump or ()), FLAGS.group, FLAGS.close
    priority = priority_of(FLAGS.priority)
    common.no_arguments("submit", args)
    if group is not None or close:
        from convoy.commands import submit_groups

        if priority != models.PRIORITY_NORMAL:
            raise ConvoyError("--priority does not apply to --group; after --close, put the group's request "
                              "first with: convoy promote N")
        return submit_groups.run(common.checkout(repo), bump, extra, group, close=close, as_json=as_json)
    request, existing, superseded = submit(common.checkout(repo), bump, extra, priority=priority)
    print_queued(request, existing, superseded, as_json=as_json)
    return 0


def print_queued(request: Request, existing: bool, superseded: list[int], *, as_json: bool,
                 **extra_json: object) -> None:
    """What `convoy submit` prints for a queued (or already queued) request."""
    if as_json:
        print(json.dumps({"id": request.id, "state": request.state.value, "existing": existing,
                          "superseded": superseded, **extra_json}))
    elif existing:
        what = (f"{request.component} {request.version} at {(request.commit or '-')[:12]}" if not request.bumps
                else _at(request))
        print(f"request #{request.id} already queues {what}; nothing added")
        print(request.id)
    else:
        for old in superseded:
            print(f"request #{old} superseded by #{request.id}")
        high = ", high priority" if request.priority >= models.PRIORITY_HIGH else ""
        print(f"queued request #{request.id}: {_at(request)} (by {request.requested_by}{high}); run: convoy process")
        print(request.id)


def _at(request: Request) -> str:
    """"messages v1.5.0 at 1a2b3c4d5e6f" (+ a group's other bumps, each at its commit)."""
    return " + ".join(f"{b.title} at {(b.commit or '-')[:12]}" for b in request.all_bumps)


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
    with common.store(root, create=True) as store:
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
            found.append(validate(root, read_component(common.shown_manifest(root), args.component or ""), args))
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
    def from_flags(cls) -> BumpArgs:
        """The parsed absl flags (only a command's run() calls this)."""
        return cls(**{f.name: getattr(FLAGS, f.name) for f in fields(cls)})


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
    problem = common.version_problem(bump.version)
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
            f"--component={name}: no such component in {common.shown_manifest(root)} (known: "
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
