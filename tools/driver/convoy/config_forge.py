"""convoy.yaml's `forge-status` plugins: commit statuses on GitHub or GitLab.

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
kept as the spec's `secret_env`, so that Config.secret_env withholds it
from Bazel and from command plugins like a webhook's secret. `events` may
name only the events in STATUS_EVENTS ("*": all of them); convoy.plugins_forge
says which state each one reports. `check_forge_status` is a step of
convoy.config's plugin check.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, Mapping, Optional

from convoy import models
from convoy.config_values import ENV_NAME, ValueChecker, line_of_item
from convoy.untrusted import WEBHOOK_SCHEMES, printable, redact_userinfo, url_problem
from convoy.yamlcheck import key_line

FORGES = ("github", "gitlab")
DEFAULT_API_URLS = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}
DEFAULT_CONTEXT = "convoy/integration"
FORGE_STATUS_KEYS = ("name", "type", "events", "forge", "api_url", "host", "token_env", "link_base", "context",
                     "timeout", "retries", "replay")
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


def check_forge_status(checker: ValueChecker, spec: Mapping, where: str, line: int) -> dict[str, Any]:
    """The forge-status settings of the plugin `spec` (PluginSpec fields),
    its problems reported to `checker`."""
    forge = checker.string(spec, "forge", where, missing_at=line, example="github")
    if forge is not None and forge not in FORGES:
        checker.problem(key_line(spec, "forge"), f"{where}.forge",
                        f"unknown forge '{printable(forge)}' (expected: {', '.join(FORGES)})",
                        "write forge: github or forge: gitlab")
        forge = None
    api_url = checker.optional_string(spec, "api_url", where, "https://api.github.com")
    if api_url is None and forge is not None:
        api_url = DEFAULT_API_URLS[forge]
    elif api_url is not None:
        api_url = _url(checker, spec, "api_url", where, api_url, DEFAULT_API_URLS.get(forge or "github", ""))
    host = checker.optional_string(spec, "host", where, "github.com")
    if host is not None and not _HOST.fullmatch(host):
        checker.problem(key_line(spec, "host"), f"{where}.host", f"'{printable(host)}' is not a host name",
                        "write the host of the component remotes, like host: github.com")
        host = None
    token_env = checker.string(spec, "token_env", where, missing_at=line, example="CONVOY_FORGE_TOKEN")
    if token_env is not None and not ENV_NAME.fullmatch(token_env):
        checker.problem(key_line(spec, "token_env"), f"{where}.token_env",
                        f"'{printable(token_env)}' is not an environment variable name",
                        "write a name like token_env: CONVOY_FORGE_TOKEN (the variable, not the token)")
    link_base = checker.optional_string(spec, "link_base", where, "https://convoy.example.com")
    if link_base is not None:
        link_base = _url(checker, spec, "link_base", where, link_base, "https://convoy.example.com")
    context = checker.optional_string(spec, "context", where, DEFAULT_CONTEXT) or DEFAULT_CONTEXT
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
        "forge": forge, "url": api_url, "host": host or (default_host(api_url) if api_url else None),
        "secret_env": token_env, "link_base": link_base, "context": context,
        "retries": checker.number(spec, "retries", where, 3, integer=True, above=False),
    }


def _url(checker: ValueChecker, spec: Mapping, key: str, where: str, url: str, example: str) -> Optional[str]:
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
