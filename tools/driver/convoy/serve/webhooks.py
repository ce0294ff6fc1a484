"""The forges' webhooks: a tag pushed to a component's repository submits its version.

    POST /webhooks/github   push (a tag) and release (published) events, X-Hub-Signature-256 verified
    POST /webhooks/gitlab   Tag Push Hook events, X-Gitlab-Token verified

Before anything in the body is read, the request is verified: GitHub's
`X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>` with the secret of
`serve.github.secret_env`, GitLab's `X-Gitlab-Token` against the token of
`serve.gitlab.token_env`, each in constant time; a missing or wrong one is
401 and nothing else happens. A forge that is not configured is 404.

Then the event is read as a `Push` (the repository's URLs, the tag, the
pusher) or a reason to ignore it (`Ignored`: a branch push, a deleted tag,
a release that is not published, another event). The repository is mapped
to the manifest's component whose remote it is (convoy.serve.repos) and the
tag must be a version (v1.2.3); otherwise the delivery is acknowledged and
ignored: 202 with `{"ignored": true, "reason": ...}`, and a log line.

A push is submitted exactly as `convoy submit --component=C --version=TAG
--requested_by=<forge>:<pusher>` is (submit.checked, then requests.queue):
the version is resolved on the component's remote, and a tag the CLI would
refuse is 422 with the CLI's line (the forge may deliver it again later).
The delivery (X-GitHub-Delivery; GitLab's X-Gitlab-Event-UUID) is recorded
in the store's `deliveries` table in the transaction that queues the
request, so the same delivery again (a redelivery, a replay, after a
restart too) submits nothing more: 200 with `{"duplicate": true}`. A
GitHub push of a tag and the release made from it are two deliveries of
the same bump: the second finds the first's request (`existing`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any, Optional, Union

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from convoy import requests as request_states
from convoy.actions import checkout as common
from convoy.actions import submit as submit_command
from convoy.errors import ConvoyError
from convoy.manifest import load_manifest
from convoy.serve.repos import components_of
from convoy.serve.web import JSON, ApiError, credentials, from_convoy, read_body, read_json
from convoy.untrusted import printable, redact_userinfo, text_problem

DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_NAME = 100
GITHUB_URL_KEYS = ("clone_url", "ssh_url", "html_url", "git_url", "url", "svn_url")
GITLAB_URL_KEYS = ("git_http_url", "git_ssh_url", "web_url", "http_url", "ssh_url", "url", "homepage")


@dataclass(frozen=True)
class Push:
    """A tag pushed: where, which, by whom."""

    urls: tuple[str, ...]
    tag: str
    pusher: str


@dataclass(frozen=True)
class Ignored:
    reason: str


async def github(request: Request) -> JSON:
    secret = credentials(request).github_secret
    if secret is None:
        raise ApiError(404, "GitHub webhooks are off: set serve.github.secret_env in convoy.yaml")
    body = await read_body(request)
    given = request.headers.get("x-hub-signature-256", "")
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("ascii")):
        _log(request, "github", None, "refused: missing or wrong X-Hub-Signature-256")
        raise ApiError(401, "missing or wrong X-Hub-Signature-256 (HMAC-SHA256 of the body with the webhook's secret)")
    data = await read_json(request, raw=body)
    event = request.headers.get("x-github-event", "")
    if event == "ping":
        return JSON({"pong": True})
    return await _act(request, "github", _delivery(request, "x-github-delivery"), github_push(event, data))


async def gitlab(request: Request) -> JSON:
    creds = credentials(request)
    if creds.gitlab_token is None:
        raise ApiError(404, "GitLab webhooks are off: set serve.gitlab.token_env in convoy.yaml")
    if not creds.gitlab_matches(request.headers.get("x-gitlab-token")):
        _log(request, "gitlab", None, "refused: missing or wrong X-Gitlab-Token")
        raise ApiError(401, "missing or wrong X-Gitlab-Token (the webhook's secret token)")
    data = await read_json(request)
    delivery = _delivery(request, "x-gitlab-event-uuid")
    return await _act(request, "gitlab", delivery, gitlab_push(request.headers.get("x-gitlab-event", ""), data))


def _delivery(request: Request, header: str) -> Optional[str]:
    value = request.headers.get(header)
    if value is None:
        return None
    if not DELIVERY_ID.fullmatch(value):
        raise ApiError(400, f"{header} is not a delivery id (letters, digits, . _ : -; at most 128)")
    return value


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value.strip() else None


def _urls(repository: Any, keys: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(repository, dict):
        return ()
    return tuple(v for v in (_text(repository.get(k)) for k in keys) if v)


def _who(*names: Any) -> str:
    name = next((n for n in (_text(n) for n in names) if n), "unknown")
    return name[:MAX_NAME] if not text_problem(name) else printable(name)[:MAX_NAME]


def _tag_of(ref: Any) -> Optional[str]:
    ref = _text(ref)
    return ref[len("refs/tags/"):] if ref and ref.startswith("refs/tags/") else None


def github_push(event: str, data: dict[str, Any]) -> Union[Push, Ignored]:
    """GitHub's `push` of a tag, or its `release` published; anything else ignored."""
    sender = data.get("sender") if isinstance(data.get("sender"), dict) else {}
    urls = _urls(data.get("repository"), GITHUB_URL_KEYS)
    if event == "push":
        tag = _tag_of(data.get("ref"))
        if tag is None:
            return Ignored(f"not a tag push (ref {printable(str(data.get('ref')))[:200]})")
        if data.get("deleted") is True:
            return Ignored(f"tag {printable(tag)} was deleted")
        pusher = data.get("pusher") if isinstance(data.get("pusher"), dict) else {}
        return Push(urls, tag, _who(pusher.get("name"), sender.get("login")))
    if event == "release":
        action = data.get("action")
        release = data.get("release") if isinstance(data.get("release"), dict) else {}
        if action != "published":
            return Ignored(f"release action {printable(str(action))[:50]} (only published releases submit)")
        tag = _text(release.get("tag_name"))
        if tag is None:
            return Ignored("release without a tag_name")
        return Push(urls, tag, _who(sender.get("login")))
    return Ignored(f"event {printable(event)[:50] or 'without X-GitHub-Event'} is not a tag push or a release")


def gitlab_push(event: str, data: dict[str, Any]) -> Union[Push, Ignored]:
    """GitLab's Tag Push Hook (a tag created); anything else ignored."""
    if event != "Tag Push Hook" and data.get("object_kind") != "tag_push":
        return Ignored(f"event {printable(event)[:50] or 'without X-Gitlab-Event'} is not a tag push")
    tag = _tag_of(data.get("ref"))
    if tag is None:
        return Ignored(f"not a tag (ref {printable(str(data.get('ref')))[:200]})")
    if data.get("checkout_sha") is None or data.get("after") == "0" * 40:
        return Ignored(f"tag {printable(tag)} was deleted")
    urls = _urls(data.get("project"), GITLAB_URL_KEYS) + _urls(data.get("repository"), GITLAB_URL_KEYS)
    return Push(urls, tag, _who(data.get("user_username"), data.get("user_name")))


async def _act(request: Request, forge: str, delivery: Optional[str], hook: Union[Push, Ignored]) -> JSON:
    try:
        status, data = await run_in_threadpool(act, request.app.state.root, forge, delivery, hook)
    except ConvoyError as e:
        _log(request, forge, delivery, f"refused: {printable(str(e))}")
        raise from_convoy(422, e) from None
    what = (f"ignored: {data['reason']}" if data.get("ignored") else
            f"duplicate of request #{data.get('request_id')}" if data.get("duplicate") else
            f"request #{data['id']} ({'existing' if data['existing'] else 'submitted'})")
    _log(request, forge, delivery, what)
    return JSON(data, status_code=status)


def act(root, forge: str, delivery: Optional[str], hook: Union[Push, Ignored]) -> tuple[int, dict[str, Any]]:
    """What a verified delivery does: (HTTP status, the JSON answer)."""
    with common.store(root, create=True) as store:
        if delivery is not None:
            with store.read() as tx:
                seen = tx.delivery(forge, delivery)
            if seen is not None:
                return 200, _duplicate(seen)
        if isinstance(hook, Push):
            hook = _component(root, hook)
        if isinstance(hook, Ignored):
            with store.transaction() as tx:
                if delivery is not None:
                    tx.record_delivery(forge, delivery, request_id=None, outcome="ignored")
            return 202, {"ignored": True, "reason": hook.reason}
        component, push = hook
        args = submit_command.BumpArgs(component=component, version=push.tag, requested_by=f"{forge}:{push.pusher}")
        submission = submit_command.combine(submit_command.checked(root, args))  # as convoy submit checks it
        with store.transaction() as tx:
            seen = tx.delivery(forge, delivery) if delivery is not None else None
            if seen is not None:  # the same delivery, acted on meanwhile
                return 200, _duplicate(seen)
            request, existing, superseded = request_states.queue(tx, submission)
            if delivery is not None:
                tx.record_delivery(forge, delivery, request_id=request.id,
                                   outcome="existing" if existing else "submitted")
    return (200 if existing else 201), {"id": request.id, "state": request.state.value, "existing": existing,
                                        "superseded": superseded, "component": component, "version": push.tag,
                                        "requested_by": request.requested_by}


def _duplicate(seen) -> dict[str, Any]:
    return {"duplicate": True, "outcome": seen.outcome, "request_id": seen.request_id}


def _component(root, push: Push) -> Union[Ignored, tuple[str, Push]]:
    """The component the push is of, or why there is none."""
    shown = printable(redact_userinfo(push.urls[0]))[:300] if push.urls else "(no repository URL)"
    if common.version_problem(push.tag) is not None:
        return Ignored(f"tag {printable(push.tag)[:100]} is not a version (v1.2.3 or v1.2.3-rc.1)")
    found = components_of(load_manifest(common.manifest_path(root)), push.urls)
    if not found:
        return Ignored(f"repository {shown} is not the remote of any component in manifests/manifest.yaml")
    if len(found) > 1:
        return Ignored(f"repository {shown} is the remote of several components ({', '.join(found)}); submit "
                       "them with POST /api/requests")
    return found[0], push


def _log(request: Request, forge: str, delivery: Optional[str], what: str) -> None:
    request.app.state.log.info("%s delivery %s: %s", forge, delivery or "-", what)
