"""convoy.yaml's `serve:` section: who may do what with `convoy serve`.

    serve:
      reads: open                     # open (default) or token: GETs need a token too
      max_body_kib: 1024              # a larger request body is refused (413)
      tokens_file: /etc/convoy/serve-tokens   # lines of NAME SCOPE TOKEN (see convoy.serve.auth)
      tokens:                         # tokens whose values are in environment variables
        - {name: ci-messages, env: CONVOY_TOKEN_MESSAGES, components: [messages]}
        - {name: ops, env: CONVOY_TOKEN_OPS, admin: true}
      github: {secret_env: CONVOY_GITHUB_SECRET}    # X-Hub-Signature-256's HMAC secret
      gitlab: {token_env: CONVOY_GITLAB_TOKEN}      # X-Gitlab-Token's value

The section names tokens and secrets, never holds them: a value lives in
an environment variable or in the tokens file, so that convoy.yaml can be
committed and reviewed. `convoy serve` reads the values when it starts
(convoy.serve.auth) and refuses to start, in one line, if one is missing.
`check_serve` is a step of convoy.config's checker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from convoy.config_values import ENV_NAME, ValueChecker
from convoy.yamlcheck import key_line, kind_of

SERVE_KEYS = ("reads", "max_body_kib", "tokens_file", "tokens", "github", "gitlab")
TOKEN_KEYS = ("name", "env", "components", "admin")
READS = ("open", "token")
DEFAULT_MAX_BODY_KIB = 1024
TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@dataclass(frozen=True)
class TokenSpec:
    """A token named in convoy.yaml: its value is in the variable `env`.
    `components`: the components it may submit for; `admin`: it may also
    submit for any component, cancel and retry."""

    name: str
    env: str
    components: tuple[str, ...] = ()
    admin: bool = False


@dataclass(frozen=True)
class ServeSpec:
    """The `serve:` section (every default: nothing but open reads)."""

    reads: str = "open"
    max_body_kib: int = DEFAULT_MAX_BODY_KIB
    tokens_file: Optional[str] = None
    tokens: tuple[TokenSpec, ...] = ()
    github_secret_env: Optional[str] = None
    gitlab_token_env: Optional[str] = None

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_kib * 1024

    @property
    def secret_env(self) -> tuple[str, ...]:
        """The variables that hold its tokens and secrets."""
        names = [t.env for t in self.tokens] + [self.github_secret_env or "", self.gitlab_token_env or ""]
        return tuple(dict.fromkeys(n for n in names if n))


def check_serve(checker: ValueChecker, document: Mapping) -> ServeSpec:
    """The `serve:` section of `document`, its problems reported to `checker`."""
    serve = checker.section(document, "serve", SERVE_KEYS)
    reads = checker.optional_string(serve, "reads", "serve", "open") or "open"
    if reads not in READS:
        checker.problem(key_line(serve, "reads"), "serve.reads", f"'{reads}' is not one of {', '.join(READS)}",
                        "write reads: open (anyone may read) or reads: token")
    max_body = checker.number(serve, "max_body_kib", "serve", DEFAULT_MAX_BODY_KIB, minimum=1, integer=True,
                              above=False, maximum=64 * DEFAULT_MAX_BODY_KIB)
    tokens_file = checker.optional_string(serve, "tokens_file", "serve", "/etc/convoy/serve-tokens")
    github = _subsection(checker, serve, "github", ("secret_env",))
    gitlab = _subsection(checker, serve, "gitlab", ("token_env",))
    github_env = _env_name(checker, github, "secret_env", "serve.github", "CONVOY_GITHUB_SECRET")
    gitlab_env = _env_name(checker, gitlab, "token_env", "serve.gitlab", "CONVOY_GITLAB_TOKEN")
    tokens = []
    for line, spec, duplicate in checker.named(checker.items(serve, "tokens", "{name: ci, env: CONVOY_TOKEN_CI, "
                                                                           "components: [messages]}") or [],
                                                "serve.tokens", "token"):
        token = _token(checker, spec, line)
        if token is not None and not duplicate:
            tokens.append(token)
    return ServeSpec(reads=reads, max_body_kib=int(max_body), tokens_file=tokens_file, tokens=tuple(tokens),
                     github_secret_env=github_env, gitlab_token_env=gitlab_env)


def _subsection(checker: ValueChecker, serve: Mapping, key: str, allowed: tuple[str, ...]) -> Mapping:
    section = checker.mapping(serve, key, "serve")
    if section is None:
        return {}
    checker.unknown_keys(section, f"serve.{key}", allowed)
    return section


def _env_name(checker: ValueChecker, parent: Mapping, key: str, where: str, example: str) -> Optional[str]:
    name = checker.optional_string(parent, key, where, example)
    if name is not None and not ENV_NAME.fullmatch(name):
        checker.problem(key_line(parent, key), f"{where}.{key}", f"'{name}' is not an environment variable name",
                        f"write a name like {example} (the variable, not the secret)")
        return None
    return name


def _token(checker: ValueChecker, spec: Any, line: int) -> Optional[TokenSpec]:
    if not isinstance(spec, Mapping):
        checker.problem(line, "serve.tokens", f"each token must be a mapping, not {kind_of(spec)}",
                        "write it like - {name: ci-messages, env: CONVOY_TOKEN_MESSAGES, components: [messages]}")
        return None
    errors = len(checker.problems)
    name = checker.string(spec, "name", "serve.tokens", missing_at=line, example="ci-messages")
    where = f"serve.tokens.{name}" if name else "serve.tokens"
    checker.unknown_keys(spec, where, TOKEN_KEYS)
    if name is not None and not TOKEN_NAME.fullmatch(name):
        checker.problem(key_line(spec, "name"), where, f"'{name}' is not a token name (a letter or digit, then "
                        "letters, digits, . _ @ -; at most 64)", "rename it, e.g. name: ci-messages")
    env = checker.string(spec, "env", where, missing_at=line, example="CONVOY_TOKEN_MESSAGES")
    if env is not None and not ENV_NAME.fullmatch(env):
        checker.problem(key_line(spec, "env"), f"{where}.env", f"'{env}' is not an environment variable name",
                        "write the variable's name, like env: CONVOY_TOKEN_MESSAGES (never the token itself)")
    components = checker.strings(spec, "components", where, "[messages]") or ()
    admin = checker.boolean(spec, "admin", where, False)
    if not components and not admin:
        checker.problem(line, where, "a token needs components (what it may submit for) or admin: true",
                        "add components: [<component>, ...] or admin: true")
    if len(checker.problems) > errors or name is None or env is None:
        return None
    return TokenSpec(name=name, env=env, components=tuple(components), admin=admin)
