"""The `forge-status` plugin kind: a request's progress as a commit status on its component's forge.

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
checkout's store (read-only, like `convoy show`: make_plugins's
`open_store`, given by `convoy process`) and each bumped
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
answer that quotes it is shown with ***). The POST is convoy.plugins.base's
`post`: the webhooks' budget, backoff and watchdog; an answer 4xx other
than 408 and 429 (bad credentials, no such repository or commit) is not
retried. A failure is a PluginError, so a PLUGIN_ERROR event, and the
queue goes on.

In convoy.yaml:
    plugins:
      - name: status
        type: forge-status
        forge: github                          # github or gitlab
        api_url: https://api.github.com        # default per forge (GitHub Enterprise: https://<host>/api/v3)
        host: github.com                       # the host of the component remotes it reports on
        token_env: CONVOY_FORGE_TOKEN          # the variable holding the token, never the token
        link_base: https://convoy.example.com  # target_url: <link_base>/requests/<id> (none if unset)
        context: convoy/integration            # GitHub's context, GitLab's name
        events: [REQUEST_QUEUED, BUILD_START, MANIFEST_UPDATED, REQUEST_REJECTED]   # default: STATUS_EVENTS
        timeout: 10                            # one delivery, retries included
        retries: 3

`host` defaults to the API's host without a leading `api.` (api.github.com
-> github.com, gitlab.example.com -> gitlab.example.com). `token_env` is
one of the spec's `secrets`, so that Config.secret_env withholds it from
Bazel and from command plugins like a webhook's secret. `events` may
name only the events in STATUS_EVENTS ("*": all of them); the table above
says which state each one reports.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Optional, Sequence

from convoy import models
from convoy.config_values import ENV_NAME, line_of_item
from convoy.errors import ConvoyError
from convoy.models import Request, RequestBump
from convoy.plugins.base import Answer, Plugin, PluginError, post
from convoy.plugins.registry import REPLAY, RETRIES, TIMEOUT, Key, PluginContext, PluginKind, PluginSpec, read
from convoy.untrusted import WEBHOOK_SCHEMES, printable, redact_userinfo, url_problem
from convoy.yamlcheck import key_line

log = logging.getLogger("convoy.plugins.forge")

FORGES = ("github", "gitlab")
DEFAULT_API_URLS = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}
DEFAULT_CONTEXT = "convoy/integration"
# The events that report a commit status (the default `events:`), in a request's order.
STATUS_EVENTS = (
    models.REQUEST_QUEUED, models.BUILD_START, models.REQUEST_REQUEUED, models.MANIFEST_UPDATED,
    models.RELEASE_TAGGED, models.REQUEST_REJECTED, models.REQUEST_SUPERSEDED, models.REQUEST_CANCELLED,
    models.REQUEST_ERROR,
)
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_CONTEXT_MAX = 100


def default_host(api_url: str) -> str:
    """The host of the remotes a forge's API serves: the API's host without `api.`."""
    host = (urllib.parse.urlsplit(api_url).hostname or "").lower()
    return host[len("api."):] if host.startswith("api.") and host.count(".") >= 2 else host


@dataclass(frozen=True)
class ForgeStatusSpec(PluginSpec):
    """A checked `forge-status` entry (see the module docstring); `api_url`
    and `host` are filled in from `forge` when not set."""

    kind: ClassVar[str] = "forge-status"

    forge: str = "github"
    api_url: Optional[str] = None
    host: Optional[str] = None
    token_env: str = ""
    link_base: Optional[str] = None
    context: str = DEFAULT_CONTEXT
    retries: int = 3

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.token_env,) if self.token_env else ()


_FORGE = Key("forge", required=True, example="github")
_API_URL = Key("api_url", example="https://api.github.com")
_HOST_KEY = Key("host", example="github.com")
_TOKEN_ENV = Key("token_env", required=True, example="CONVOY_FORGE_TOKEN")
_LINK_BASE = Key("link_base", example="https://convoy.example.com")
_CONTEXT = Key("context", example=DEFAULT_CONTEXT)


def _check(checker: Any, spec: Mapping, where: str, line: int) -> dict[str, Any]:
    """The forge-status settings of the plugin `spec` (ForgeStatusSpec's
    fields), its problems reported to `checker` (a convoy.config_values.ValueChecker)."""
    forge = read(checker, spec, where, line, _FORGE)
    if forge is not None and forge not in FORGES:
        checker.problem(key_line(spec, "forge"), f"{where}.forge",
                        f"unknown forge '{printable(forge)}' (expected: {', '.join(FORGES)})",
                        "write forge: github or forge: gitlab")
        forge = None
    api_url = read(checker, spec, where, line, _API_URL)
    if api_url is None and forge is not None:
        api_url = DEFAULT_API_URLS[forge]
    elif api_url is not None:
        api_url = _url(checker, spec, "api_url", where, api_url, DEFAULT_API_URLS.get(forge or "github", ""))
    host = read(checker, spec, where, line, _HOST_KEY)
    if host is not None and not _HOST.fullmatch(host):
        checker.problem(key_line(spec, "host"), f"{where}.host", f"'{printable(host)}' is not a host name",
                        "write the host of the component remotes, like host: github.com")
        host = None
    token_env = read(checker, spec, where, line, _TOKEN_ENV)
    if token_env is not None and not ENV_NAME.fullmatch(token_env):
        checker.problem(key_line(spec, "token_env"), f"{where}.token_env",
                        f"'{printable(token_env)}' is not an environment variable name",
                        "write a name like token_env: CONVOY_FORGE_TOKEN (the variable, not the token)")
    link_base = read(checker, spec, where, line, _LINK_BASE)
    if link_base is not None:
        link_base = _url(checker, spec, "link_base", where, link_base, "https://convoy.example.com")
    context = read(checker, spec, where, line, _CONTEXT) or DEFAULT_CONTEXT
    if not context.isprintable() or context != context.strip() or len(context) > _CONTEXT_MAX:
        checker.problem(key_line(spec, "context"), f"{where}.context",
                        f"'{printable(context)[:120]}' must be at most {_CONTEXT_MAX} printable characters "
                        "without surrounding spaces", f"write it like context: {DEFAULT_CONTEXT}")
    events = spec.get("events")
    for index, name in enumerate(events if isinstance(events, list) else ()):
        if isinstance(name, str) and name in models.EVENT_TYPES and name not in STATUS_EVENTS:
            checker.problem(line_of_item(events, index, key_line(spec, "events")), f"{where}.events",
                            f"'{name}' sets no commit status (forge-status reports: {', '.join(STATUS_EVENTS)})",
                            "remove it, or leave events: out for all of them")
    return {
        "forge": forge, "api_url": api_url, "host": host or (default_host(api_url) if api_url else None),
        "token_env": token_env, "link_base": link_base, "context": context,
        "retries": read(checker, spec, where, line, RETRIES),
    }


def _url(checker: Any, spec: Mapping, key: str, where: str, url: str, example: str) -> Optional[str]:
    problem = url_problem(url, WEBHOOK_SCHEMES)
    if problem is None and "@" in urllib.parse.urlsplit(url).netloc:
        problem = "holds credentials (the token comes from token_env)"
    if problem is None and (urllib.parse.urlsplit(url).query or urllib.parse.urlsplit(url).fragment):
        problem = "has a query or fragment"
    if problem:
        checker.problem(key_line(spec, key), f"{where}.{key}", f"'{printable(redact_userinfo(url))}' {problem}",
                        f"write it like {key}: {example}")
        return None
    return url.rstrip("/")


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
    reads them from the store its `open_store` opens and the checkout's
    manifest. `api_url` and
    `host` default as in `_check`.
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
        from convoy.serve.repos import normal_repository  # (a remote's host/path; serve/ holds it, above)

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


def store_requests(open_store: Callable[[], Any]) -> Callable[[int], Optional[Request]]:
    """A request by id, read from the store `open_store()` opens (a
    context manager; the checkout's store, read-only) at each call."""

    def request(request_id: int) -> Optional[Request]:
        try:
            with open_store() as store, store.read() as tx:
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


def _build(spec: ForgeStatusSpec, context: PluginContext) -> ForgeStatusPlugin:
    if context.open_store is None:
        raise ValueError("a forge-status plugin reads requests from the store: give make_plugins open_store")
    return ForgeStatusPlugin(
        spec.name, spec.events, forge=spec.forge, api_url=spec.api_url, host=spec.host, token_env=spec.token_env,
        link_base=spec.link_base, context=spec.context, timeout=spec.timeout, retries=spec.retries,
        replay=spec.replay, requests=store_requests(context.open_store), remotes=checkout_remotes(context.root))


KIND = PluginKind(
    name="forge-status", keys=(_FORGE, _API_URL, _HOST_KEY, _TOKEN_ENV, _LINK_BASE, _CONTEXT, TIMEOUT, RETRIES, REPLAY),
    spec=ForgeStatusSpec, factory=_build, check=_check, events=STATUS_EVENTS, position=40,
)
