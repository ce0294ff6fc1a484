"""The `forge-status` plugin: a request's progress as a commit status on its component's forge.

A component's CI asks for integration of commit C; this plugin shows the
answer where its developers look, on commit C in the component's
repository, with a link to the request's page (`<link_base>/requests/<id>`,
served by `convoy serve`). Each event of STATUS_EVENTS sets one status,
under one context (`convoy/integration` unless configured):

    event               state (GitHub / GitLab)    description
    REQUEST_QUEUED      pending / pending          queued for integration as #7
    BUILD_START         pending / running          integration build 1 running
    REQUEST_REQUEUED    pending / pending          back in the queue after an infrastructure error: ...
    MANIFEST_UPDATED    success / success          merged into main (1a2b3c4d5e)
    RELEASE_TAGGED      success / success          merged and released as v2026.5.1
    REQUEST_REJECTED    failure / failed           rejected: <the summary>
    REQUEST_SUPERSEDED  error   / canceled         superseded by #9 (messages v1.6.0)
    REQUEST_CANCELLED   error   / canceled         cancelled: <the reason>
    REQUEST_ERROR       error   / failed           error after 3 attempts: <the reason>

The event names only its request; the plugin reads the request from the
checkout's store (read-only, like `convoy show`) and each bumped
component's `remote` from manifests/manifest.yaml. A group request sets a
status on the commit of each of its bumps. A bump is skipped, with one log
line per component and reason, when its component has no git remote (an
archive or local source), its remote is not on the forge's `host`, or it
has no resolved commit.

The APIs (the base URL is `api_url`: https://api.github.com, a GitHub
Enterprise's https://<host>/api/v3, https://gitlab.com/api/v4, ...):

- GitHub: POST {api}/repos/{owner}/{repo}/statuses/{sha} with the JSON
  {state, target_url, description, context}, `Authorization: Bearer <token>`
  and `Accept: application/vnd.github+json`.
- GitLab: POST {api}/projects/{path, percent-encoded}/statuses/{sha}?state=
  ...&target_url=...&description=...&name=<context> with `PRIVATE-TOKEN`.
  GitLab answers 400 "Cannot transition status via ..." to a status it
  already has (a second BUILD_START's `running`): that is taken as set.

The token is read from the variable `token_env` names at each delivery and
sent only in that header: it is never in a URL, an event or a message (an
answer that quotes it is shown with ***). The POST is convoy.plugins'
`post`: the webhooks' budget, backoff and watchdog; an answer 4xx other
than 408 and 429 (bad credentials, no such repository or commit) is not
retried. A failure is a PluginError, so a PLUGIN_ERROR event, and the
queue goes on.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from convoy import models
from convoy.config_forge import DEFAULT_API_URLS, DEFAULT_CONTEXT, STATUS_EVENTS, default_host
from convoy.errors import ConvoyError
from convoy.models import Request, RequestBump
from convoy.plugins import Answer, Plugin, PluginError, post
from convoy.serve.repos import normal_repository
from convoy.untrusted import printable

log = logging.getLogger("convoy.plugins.forge")

MAX_DESCRIPTION = 140  # GitHub refuses a longer one (GitLab's limit is 255)
_MESSAGE_LIMIT = 200
# convoy's states -> each forge's.
STATES = {
    "github": {"pending": "pending", "running": "pending", "success": "success", "failure": "failure",
               "error": "error", "cancelled": "error"},
    "gitlab": {"pending": "pending", "running": "running", "success": "success", "failure": "failed",
               "error": "failed", "cancelled": "canceled"},
}


@dataclass(frozen=True)
class Target:
    """Where a status goes: `repository` (GitHub's owner/repo, GitLab's
    project path) at `commit`, for `component`."""

    component: str
    repository: str
    commit: str


def status_of(event: Mapping[str, Any]) -> Optional[tuple[str, str]]:
    """(convoy's state, a one-line description) that `event` reports; None
    for an event that sets no status."""
    kind, data, request = event.get("type"), event.get("data") or {}, event.get("request_id")
    if kind == models.REQUEST_QUEUED:
        return "pending", f"queued for integration as #{request}"
    if kind == models.BUILD_START:
        return "running", f"integration build {data.get('number', '?')} running"
    if kind == models.REQUEST_REQUEUED:
        return "pending", f"back in the queue after an infrastructure error: {data.get('reason', '')}"
    if kind == models.MANIFEST_UPDATED:
        return "success", f"merged into {data.get('branch', 'the branch')} ({str(data.get('commit') or '')[:10]})"
    if kind == models.RELEASE_TAGGED:
        return "success", f"merged and released as {data.get('tag')}"
    if kind == models.REQUEST_REJECTED:
        return "failure", f"rejected: {data.get('summary') or 'see the request'}"
    if kind == models.REQUEST_SUPERSEDED:
        return "cancelled", f"superseded by #{data.get('superseded_by')} ({data.get('component')} " \
                            f"{data.get('version')})"
    if kind == models.REQUEST_CANCELLED:
        return "cancelled", "cancelled" + (f": {data['reason']}" if data.get("reason") else "")
    if kind == models.REQUEST_ERROR:
        return "error", f"error after {data.get('attempts')} attempts: {data.get('reason', '')}"
    return None


def description(text: str) -> str:
    """`text` as a status description: one line, control characters
    escaped, at most MAX_DESCRIPTION characters."""
    text = printable(" ".join(str(text).split()))
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 3] + "..."


class ForgeStatusPlugin(Plugin):
    """Sets commit statuses on GitHub or GitLab; see the module docstring.

    `requests(id)` gives a request (None: there is none) and `remotes()`
    each component's git remote (None: not a git source); make_plugins
    reads them from the checkout's store and manifest. `api_url` and
    `host` default as in convoy.config_forge.
    """

    def __init__(self, name: str, events: Sequence[str], *, forge: str, api_url: Optional[str],
                 host: Optional[str], token_env: str,
                 requests: Callable[[int], Optional[Request]], remotes: Callable[[], Mapping[str, Optional[str]]],
                 link_base: Optional[str] = None, context: str = DEFAULT_CONTEXT, timeout: float = 10.0,
                 retries: int = 3, replay: bool = False) -> None:
        super().__init__(name, events, replay=replay)
        if forge not in STATES:
            raise ValueError(f"unknown forge {forge!r}")
        self.forge, self.api_url = forge, (api_url or DEFAULT_API_URLS[forge]).rstrip("/")
        self.host = (host or default_host(self.api_url)).lower()
        self.token_env, self.link_base, self.context = token_env, (link_base or "").rstrip("/") or None, context
        self.timeout, self.retries = timeout, retries
        self._requests, self._remotes = requests, remotes
        self._skipped: set[tuple[str, str]] = set()

    def wants(self, event_type: str) -> bool:
        return event_type in STATUS_EVENTS and super().wants(event_type)

    def deliver(self, event: Mapping[str, Any]) -> None:
        status = status_of(event)
        request_id = event.get("request_id")
        if status is None or request_id is None:  # a tag made by hand has no request
            return
        token = os.environ.get(self.token_env)
        if not token:
            raise PluginError(f"environment variable {self.token_env} (the {self.forge} token) is not set")
        request = self._requests(int(request_id))
        if request is None:
            self._skip("-", f"request #{request_id} is not in the store")
            return
        if request.is_try:  # a try's build (convoy try) must not set the integration status of its commit
            return
        state, text = status
        remotes = self._remotes()
        targets = [t for t in (self._target(bump, remotes) for bump in request.all_bumps) if t is not None]
        deadline = time.monotonic() + self.timeout
        errors = []
        for target in targets:
            error = self._send(target, state, description(text), request.id, token, deadline)
            if error:
                errors.append(error)
        if errors:
            message = "; ".join(errors)
            raise PluginError(message.replace(token, "***") if len(token) >= 4 else message)

    def url(self, target: Target) -> str:
        """The statuses endpoint of `target` (without GitLab's query)."""
        sha = urllib.parse.quote(target.commit, safe="")
        if self.forge == "github":
            owner, repo = (urllib.parse.quote(p, safe="") for p in target.repository.split("/"))
            return f"{self.api_url}/repos/{owner}/{repo}/statuses/{sha}"
        return f"{self.api_url}/projects/{urllib.parse.quote(target.repository, safe='')}/statuses/{sha}"

    def _target(self, bump: RequestBump, remotes: Mapping[str, Optional[str]]) -> Optional[Target]:
        if bump.component not in remotes:
            return self._skip(bump.component, "it is not in manifests/manifest.yaml")
        remote = remotes[bump.component]
        if not remote:
            return self._skip(bump.component, "it has no git remote (an archive or local source)")
        host, _, path = (normal_repository(remote) or "").partition("/")
        if host != self.host or not path:
            return self._skip(bump.component, f"its remote is not on {self.host}")
        if self.forge == "github" and path.count("/") != 1:
            return self._skip(bump.component, f"its remote is not a {self.host}/<owner>/<repository>")
        if not bump.commit:
            return self._skip(bump.component, "the request has no resolved commit of it")
        return Target(bump.component, path, bump.commit)

    def _skip(self, component: str, why: str) -> None:
        if (component, why) not in self._skipped:
            self._skipped.add((component, why))
            log.warning("plugin %s: no commit status for %s: %s", self.name, printable(component), why)
        return None

    def _send(self, target: Target, state: str, text: str, request_id: int, token: str,
              deadline: float) -> Optional[str]:
        """Sets one status; None, or why it was not set (one line)."""
        url, forge_state = self.url(target), STATES[self.forge][state]
        link = f"{self.link_base}/requests/{request_id}" if self.link_base else None
        if self.forge == "github":
            fields = {"state": forge_state, "description": text, "context": self.context}
            if link:
                fields["target_url"] = link
            body = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                       "X-GitHub-Api-Version": "2022-11-28", "Content-Type": "application/json"}
            target_url = url
        else:
            query = {"state": forge_state, "description": text, "name": self.context}
            if link:
                query["target_url"] = link
            body, headers = b"", {"PRIVATE-TOKEN": token}
            target_url = f"{url}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"
        headers["User-Agent"] = "convoy-forge-status"
        budget = deadline - time.monotonic()
        answer, attempts = post(target_url, body, headers, timeout=budget, retries=self.retries, final=_final)
        if answer.ok or self._already(answer):
            return None
        said = _message(answer.body)
        reason = " ".join(answer.reason.split()) + (f": {said}" if said else "")
        return f"POST {url}: {reason} ({attempts} attempt{'' if attempts == 1 else 's'} in {self.timeout:g} s)"

    def _already(self, answer: Answer) -> bool:
        """GitLab's answer to a status the commit has already."""
        return self.forge == "gitlab" and answer.status == 400 and b"Cannot transition status" in answer.body


def _final(answer: Answer) -> bool:
    """An answer not worth retrying: the forge refused the request itself."""
    return answer.status is not None and 400 <= answer.status < 500 and answer.status not in (408, 429)


def _message(body: bytes) -> str:
    """The forge's own one-line reason in an error answer (GitHub's and
    GitLab's `message`, GitLab's `error`), escaped and cut short."""
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return ""
    said = data.get("message") or data.get("error") if isinstance(data, dict) else None
    if not said:
        return ""
    text = printable(" ".join((said if isinstance(said, str) else json.dumps(said, sort_keys=True)).split()))
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


def checkout_requests(root: Path) -> Callable[[int], Optional[Request]]:
    """A request of the checkout `root`, read from its store (read-only)."""
    from convoy.store import checkout_store

    def request(request_id: int) -> Optional[Request]:
        try:
            with checkout_store(root, create=False, readonly=True) as store, store.read() as tx:
                return tx.request(request_id)
        except ConvoyError as e:
            raise PluginError(str(e).splitlines()[0]) from None
    return request


def checkout_remotes(root: Path) -> Callable[[], Mapping[str, Optional[str]]]:
    """The git remote of each component of the checkout's manifest (None: not a git source)."""
    from convoy.manifest import load_manifest

    def remotes() -> Mapping[str, Optional[str]]:
        try:
            manifest = load_manifest(Path(root) / "manifests" / "manifest.yaml")
        except ConvoyError as e:
            raise PluginError(str(e).splitlines()[0]) from None
        return {name: c.remote if c.source == "git" else None for name, c in manifest.components.items()}
    return remotes
