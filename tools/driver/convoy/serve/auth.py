"""Who may do what with `convoy serve`: tokens, the forges' secrets, and the checks.

The values come from where convoy.yaml's `serve:` section says
(convoy.config_serve), never from the command line:

- `serve.tokens`: each a name, the environment variable that holds its
  value, and its scope (`components: [...]` or `admin: true`);
- `serve.tokens_file`: a file of one token a line, `NAME SCOPE TOKEN`,
  where SCOPE is `admin` or `components=messages,planner`; `#` starts a
  comment. It must be readable by its owner only (chmod 600), like an ssh key:

      # name        scope                          token
      ci-messages   components=messages            3b9d1c...
      ops           admin                          f00d4e...

- `serve.github.secret_env`, `serve.gitlab.token_env`: the variables that
  hold the forges' webhook secrets.

`load_credentials` reads them once, when `convoy serve` starts, and raises
a one-line ConvoyError for a variable that is not set, a token shorter
than MIN_TOKEN characters, a token file line it cannot read (by its line
number: the line itself may hold a token), a file others may read, a
token value used twice, or a scope naming a component the manifest does
not have. A value is never part of a message, a log line or a `repr`.

A request presents a token as `Authorization: Bearer <token>`.
`Credentials.token_of` compares it with every token in constant time
(hmac.compare_digest, each one, whichever matches), and the checks
(`may_submit`, `may_administer`) say what the token may do.
"""

from __future__ import annotations

import hmac
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

from convoy.config_serve import TOKEN_NAME, ServeSpec
from convoy.errors import ConvoyError
from convoy.untrusted import printable

MIN_TOKEN = 16  # characters; a shorter token is guessable
MAX_TOKEN = 4096
MAX_TOKENS_FILE = 1024 * 1024


@dataclass(frozen=True)
class Token:
    """A token and what it may do; `value` never shows in a repr."""

    name: str
    value: str = field(repr=False)
    components: tuple[str, ...] = ()
    admin: bool = False

    def may_submit(self, component: str) -> bool:
        return self.admin or component in self.components

    @property
    def scope(self) -> str:
        return "admin" if self.admin else "components=" + ",".join(self.components)


@dataclass(frozen=True)
class Credentials:
    """Every token and secret `convoy serve` checks requests with."""

    tokens: tuple[Token, ...] = ()
    reads_need_token: bool = False
    github_secret: Optional[bytes] = field(default=None, repr=False)
    gitlab_token: Optional[str] = field(default=None, repr=False)

    def token_of(self, authorization: Optional[str]) -> Optional[Token]:
        """The token an `Authorization: Bearer <token>` header presents, or
        None (no header, another scheme, or no token matches)."""
        if not authorization:
            return None
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        given = presented.strip().encode("utf-8", "surrogateescape")
        found = None
        for token in self.tokens:  # every one compared: the time does not tell which matched
            if hmac.compare_digest(given, token.value.encode("utf-8")):
                found = token
        return found

    def gitlab_matches(self, presented: Optional[str]) -> bool:
        """Whether X-Gitlab-Token is the configured token (constant time)."""
        if self.gitlab_token is None or presented is None:
            return False
        return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), self.gitlab_token.encode("utf-8"))

    @property
    def values(self) -> tuple[str, ...]:
        """Every secret value (for tests that check none leaks)."""
        found = [t.value for t in self.tokens] + [self.gitlab_token or ""]
        if self.github_secret:
            found.append(self.github_secret.decode("utf-8", "replace"))
        return tuple(v for v in found if v)


def load_credentials(root: Path, spec: ServeSpec, components: Sequence[str],
                     environ: Optional[Mapping[str, str]] = None) -> Credentials:
    """The tokens and secrets `spec` names, read from `environ` (default:
    os.environ) and the tokens file (relative to the checkout `root`);
    `components` are the manifest's. ConvoyError (one line) for anything
    missing or wrong (see the module docstring)."""
    environ = os.environ if environ is None else environ
    tokens = []
    for token in spec.tokens:
        value = _env_value(environ, token.env, f"serve.tokens.{token.name}")
        tokens.append(Token(token.name, value, token.components, token.admin))
    if spec.tokens_file:
        tokens += _read_tokens_file(root / spec.tokens_file)  # an absolute tokens_file stays itself
    _check_tokens(tokens, components)
    github = spec.github_secret_env and _env_value(environ, spec.github_secret_env, "serve.github.secret_env")
    gitlab = spec.gitlab_token_env and _env_value(environ, spec.gitlab_token_env, "serve.gitlab.token_env")
    return Credentials(tokens=tuple(tokens), reads_need_token=spec.reads == "token",
                       github_secret=github.encode("utf-8") if github else None, gitlab_token=gitlab or None)


def _env_value(environ: Mapping[str, str], name: str, where: str) -> str:
    value = environ.get(name, "")
    if not value.strip():
        raise ConvoyError(f"convoy.yaml {where}: environment variable {name} is not set (or empty); set it to the "
                          "secret before starting convoy serve")
    value = value.strip()
    if len(value) < MIN_TOKEN or len(value) > MAX_TOKEN or not value.isprintable() or " " in value:
        raise ConvoyError(f"convoy.yaml {where}: the value of {name} must be {MIN_TOKEN} to {MAX_TOKEN} printable "
                          "characters without spaces; make one with: openssl rand -hex 32")
    return value


def _read_tokens_file(path: Path) -> list[Token]:
    shown = printable(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConvoyError(f"serve.tokens_file {shown} is not a file; point it at the file of tokens")
        if info.st_mode & 0o077:
            raise ConvoyError(f"serve.tokens_file {shown} may be read by other users (mode "
                              f"{stat.S_IMODE(info.st_mode):o}); run: chmod 600 {shown}")
        if info.st_size > MAX_TOKENS_FILE:
            raise ConvoyError(f"serve.tokens_file {shown} is larger than {MAX_TOKENS_FILE // 1024} KiB; it holds one "
                              "token a line")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConvoyError(f"serve.tokens_file {shown} does not exist; create it (chmod 600) or remove "
                          "serve.tokens_file from convoy.yaml") from None
    except UnicodeDecodeError:
        raise ConvoyError(f"serve.tokens_file {shown} is not UTF-8 text; write it as NAME SCOPE TOKEN lines") from None
    except OSError as e:
        raise ConvoyError(f"serve.tokens_file {shown}: cannot read it ({e.strerror}); make it readable by the user "
                          "that runs convoy serve") from None
    tokens = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split() if not line.lstrip().startswith("#") else []
        if not words:
            continue
        where = f"serve.tokens_file {shown}:{number}"  # never the line itself: it may hold a token
        if len(words) != 3:
            raise ConvoyError(f"{where}: expected NAME SCOPE TOKEN (three words), found {len(words)}; fix the line")
        name, scope, value = words
        if not TOKEN_NAME.fullmatch(name):
            raise ConvoyError(f"{where}: the name is not a token name (a letter or digit, then letters, digits, "
                              ". _ @ -); rename it")
        if scope == "admin":
            components, admin = (), True
        elif scope.startswith("components=") and all(scope[len("components="):].split(",")):
            components, admin = tuple(scope[len("components="):].split(",")), False
        else:
            raise ConvoyError(f"{where}: the scope must be admin or components=NAME[,NAME...]; fix it")
        if len(value) < MIN_TOKEN or len(value) > MAX_TOKEN or not value.isprintable():
            raise ConvoyError(f"{where}: the token must be {MIN_TOKEN} to {MAX_TOKEN} printable characters; make "
                              "one with: openssl rand -hex 32")
        tokens.append(Token(name, value, components, admin))
    return tokens


def _check_tokens(tokens: Sequence[Token], components: Sequence[str]) -> None:
    names: set[str] = set()
    values: list[str] = []
    for token in tokens:
        if token.name in names:
            raise ConvoyError(f"serve: two tokens are named {token.name}; give each its own name")
        names.add(token.name)
        if any(hmac.compare_digest(token.value.encode(), v.encode()) for v in values):
            raise ConvoyError(f"serve: token {token.name} has the value of another token; give each its own")
        values.append(token.value)
        unknown = [c for c in token.components if c not in components]
        if unknown:
            raise ConvoyError(f"serve: token {token.name} names {', '.join(printable(c) for c in unknown)}, not a "
                              f"component of the manifest (known: {', '.join(sorted(components))}); fix its scope")
