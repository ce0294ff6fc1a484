"""The `webhook` plugin kind: each event POSTed as signed JSON.

    plugins:
      - {name: hook, type: webhook, url: https://ci.example.com/hook, secret_env: CONVOY_HOOK_SECRET,
         timeout: 10, retries: 3}

The body is compact JSON (keys sorted), with the headers X-Convoy-Event,
X-Convoy-Delivery (the event id) and X-Convoy-Signature: sha256=<hex
HMAC-SHA256 of the body> (`sign`; receivers check it with `verify`), the
secret read from the variable `secret_env` names at each delivery. A
non-2xx answer or a connection error is retried (convoy.plugins.base's
`post`: backoff, a watchdog per attempt, no redirects) while the timeout
budget lasts; `retries` counts attempts after the first. Userinfo in the
URL (https://user:password@host/...) is sent as HTTP Basic authorization
and shown as user:*** in every message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import urllib.parse
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional, Sequence

from convoy.config_values import ENV_NAME
from convoy.plugins.base import Plugin, PluginError, post
from convoy.plugins.registry import REPLAY, RETRIES, TIMEOUT, Key, PluginContext, PluginKind, PluginSpec, read
from convoy.untrusted import WEBHOOK_SCHEMES, printable, redact_userinfo, url_problem
from convoy.yamlcheck import key_line

_URL = Key("url", "string", required=True, example="https://ci.example.com/convoy-hook")
_SECRET_ENV = Key("secret_env", "string", example="CONVOY_WEBHOOK_SECRET")


@dataclass(frozen=True)
class WebhookSpec(PluginSpec):
    """A checked `webhook` entry: where to POST, the variable holding the
    HMAC secret, and the retries after the first attempt."""

    kind: ClassVar[str] = "webhook"

    url: str = ""
    secret_env: str = ""
    retries: int = 3

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.secret_env,) if self.secret_env else ()


class WebhookPlugin(Plugin):
    """POSTs each event to `url`, signed; see the module docstring."""

    def __init__(self, name: str, events: Sequence[str], url: str, secret_env: str, *, timeout: float = 10.0,
                 retries: int = 3, replay: bool = False) -> None:
        super().__init__(name, events, replay=replay)
        self.url = url
        self.secret_env = secret_env
        self.timeout = timeout
        self.retries = retries
        self.shown_url = redact_userinfo(url)  # what messages say
        self._target, self._authorization, self._credential = _split_userinfo(url)

    def deliver(self, event: Mapping[str, Any]) -> None:
        secret = os.environ.get(self.secret_env)
        if not secret:
            raise PluginError(f"environment variable {self.secret_env} (the webhook's HMAC secret) is not set")
        body = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "convoy-webhook",
            "X-Convoy-Event": str(event.get("type", "")),
            "X-Convoy-Delivery": str(event.get("id", "")),
            "X-Convoy-Signature": sign(secret.encode("utf-8"), body),
        }
        if self._authorization:
            headers["Authorization"] = self._authorization
        answer, attempts = post(self._target, body, headers, timeout=self.timeout, retries=self.retries)
        if answer.ok:
            return
        reason = " ".join(answer.reason.split())  # one line, whatever the server said
        if self._credential:  # never quote the URL's password, whatever the reason says
            reason = reason.replace(self._credential, "***")
        raise PluginError(f"POST {self.shown_url}: {reason} ({_count(attempts, 'attempt')} in {self.timeout:g} s)")


def _split_userinfo(url: str) -> tuple[str, Optional[str], Optional[str]]:
    """(`url` without its userinfo, the Basic Authorization header it
    means or None, the secret part of it or None: the password, or a lone
    token before '@', as redact_userinfo hides it)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    credentials = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode("utf-8")
    target = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return target, "Basic " + base64.b64encode(credentials).decode("ascii"), (password if colon else user) or None


def sign(secret: bytes, body: bytes) -> str:
    """The X-Convoy-Signature of `body`: "sha256=" + hex HMAC-SHA256 with `secret`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """Whether `signature` is sign(secret, body), compared in constant time
    (for receivers, and tests)."""
    return hmac.compare_digest(sign(secret, body), signature)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _check(checker: Any, entry: Mapping, where: str, line: int) -> dict[str, Any]:
    """url (a URL convoy may POST to), secret_env (required: a variable's name), retries."""
    url = read(checker, entry, where, line, _URL)
    problem = url_problem(url, WEBHOOK_SCHEMES) if url is not None else None
    if problem:
        checker.problem(key_line(entry, "url"), f"{where}.url", f"'{printable(redact_userinfo(url))}' {problem}",
                        "write it like url: https://ci.example.com/convoy-hook")
    secret_env = read(checker, entry, where, line, _SECRET_ENV)
    if "secret_env" not in entry:
        checker.problem(line, where, "a webhook needs secret_env (the environment variable holding its "
                        "HMAC secret)", "add it, e.g. secret_env: CONVOY_WEBHOOK_SECRET")
    elif secret_env is not None and not ENV_NAME.fullmatch(secret_env):
        checker.problem(key_line(entry, "secret_env"), f"{where}.secret_env",
                        f"'{secret_env}' is not an environment variable name",
                        "write a name like CONVOY_WEBHOOK_SECRET (the variable, not the secret)")
    return {"url": url, "secret_env": secret_env, "retries": read(checker, entry, where, line, RETRIES)}


def _build(spec: WebhookSpec, context: PluginContext) -> WebhookPlugin:
    return WebhookPlugin(spec.name, spec.events, spec.url, spec.secret_env, timeout=spec.timeout,
                         retries=spec.retries, replay=spec.replay)


KIND = PluginKind(
    name="webhook", keys=(_URL, _SECRET_ENV, TIMEOUT, RETRIES, REPLAY), spec=WebhookSpec, factory=_build,
    check=_check, position=30,
)
