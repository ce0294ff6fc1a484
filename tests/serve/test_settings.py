"""What `convoy serve` checks before it listens: convoy.yaml's serve
section, the tokens (environment and tokens file), --listen; and the pure
pieces: a forge's repository URL against the manifest's remotes, and the
token comparison. A mistake is one line that names where it is and never
holds the secret."""

from __future__ import annotations

import textwrap

import pytest

from convoy.config import ServeSpec, TokenSpec, parse_config
from convoy.commands.serve import parse_listen
from convoy.errors import ConvoyError
from convoy.serve.auth import load_credentials
from convoy.serve.repos import normal_repository, same_repository

from tests.serve.conftest import make_checkout, server_env

GOOD = "0123456789abcdef-good"


def problems(text: str) -> list[str]:
    with pytest.raises(ConvoyError) as info:
        parse_config(textwrap.dedent(text), "convoy.yaml")
    return list(info.value.problems)


def test_the_serve_section_loads():
    config = parse_config(textwrap.dedent("""\
        serve:
          reads: token
          max_body_kib: 16
          tokens_file: /etc/convoy/serve-tokens
          tokens:
            - {name: ci-messages, env: CONVOY_TOKEN_MESSAGES, components: [messages]}
            - {name: ops, env: CONVOY_TOKEN_OPS, admin: true}
          github: {secret_env: CONVOY_GITHUB_SECRET}
          gitlab: {token_env: CONVOY_GITLAB_TOKEN}
        """), "convoy.yaml")
    assert config.serve == ServeSpec(
        reads="token", max_body_kib=16, tokens_file="/etc/convoy/serve-tokens",
        tokens=(TokenSpec("ci-messages", "CONVOY_TOKEN_MESSAGES", ("messages",)),
                TokenSpec("ops", "CONVOY_TOKEN_OPS", (), admin=True)),
        github_secret_env="CONVOY_GITHUB_SECRET", gitlab_token_env="CONVOY_GITLAB_TOKEN")
    assert config.serve.max_body_bytes == 16384
    assert "CONVOY_TOKEN_OPS" in config.secret_env and "CONVOY_GITHUB_SECRET" in config.secret_env  # kept from Bazel
    assert parse_config("", "convoy.yaml").serve == ServeSpec()


def test_every_mistake_in_the_serve_section_is_a_line():
    found = problems("""\
        serve:
          read: token
          reads: everyone
          max_body_kib: 0
          tokens:
            - {name: "bad name", env: CONVOY_X, components: [messages]}
            - {name: ci, env: "3b9d1c0a", components: [messages]}
            - {name: nothing, env: CONVOY_Y}
            - {name: ci2, env: CONVOY_Z, admin: true, token: s3cr3t}
          github: {secret: abc}
          gitlab: {token_env: "not a name"}
        """)
    assert found == [
        "convoy.yaml:2: serve: unknown key 'read' (expected: reads, max_body_kib, tokens_file, tokens, github, "
        "gitlab); fix or remove it",
        "convoy.yaml:3: serve.reads: 'everyone' is not one of open, token; write reads: open (anyone may read) or "
        "reads: token",
        "convoy.yaml:4: serve.max_body_kib: must be at least 1, not 0; write it like max_body_kib: 1024",
        "convoy.yaml:6: serve.tokens.bad name: 'bad name' is not a token name (a letter or digit, then letters, "
        "digits, . _ @ -; at most 64); rename it, e.g. name: ci-messages",
        "convoy.yaml:7: serve.tokens.ci.env: '3b9d1c0a' is not an environment variable name; write the variable's "
        "name, like env: CONVOY_TOKEN_MESSAGES (never the token itself)",
        "convoy.yaml:8: serve.tokens.nothing: a token needs components (what it may submit for) or admin: true; "
        "add components: [<component>, ...] or admin: true",
        "convoy.yaml:9: serve.tokens.ci2: unknown key 'token' (expected: name, env, components, admin); fix or "
        "remove it",
        "convoy.yaml:10: serve.github: unknown key 'secret' (expected: secret_env); fix or remove it",
        "convoy.yaml:11: serve.gitlab.token_env: 'not a name' is not an environment variable name; write a name "
        "like CONVOY_GITLAB_TOKEN (the variable, not the secret)",
    ]
    assert not any("s3cr3t" in line for line in found)


def spec(**values) -> ServeSpec:
    return ServeSpec(tokens=(TokenSpec("ci", "CONVOY_T", ("messages",)),), **values)


@pytest.mark.parametrize("environ, message", [
    ({}, "convoy.yaml serve.tokens.ci: environment variable CONVOY_T is not set (or empty)"),
    ({"CONVOY_T": "short"}, "the value of CONVOY_T must be 16 to 4096 printable characters without spaces"),
])
def test_a_token_missing_from_the_environment_is_one_line(tmp_path, environ, message):
    with pytest.raises(ConvoyError) as info:
        load_credentials(tmp_path, spec(), ["messages"], environ)
    assert message in str(info.value) and "=short" not in str(info.value)


@pytest.mark.parametrize("text, mode, message", [
    ("ci-a components=messages " + GOOD + "\n", 0o644, "may be read by other users (mode 644); run: chmod 600"),
    ("ci-a messages " + GOOD + "\n", 0o600, ":1: the scope must be admin or components=NAME[,NAME...]"),
    ("# a comment\nci-a components=messages\n", 0o600, ":2: expected NAME SCOPE TOKEN (three words), found 2"),
    ("ci-a components=messages tooshort\n", 0o600, ":1: the token must be 16 to 4096 printable characters"),
    ("ci-a components=nosuch " + GOOD + "\n", 0o600, "token ci-a names nosuch, not a component of the manifest"),
    ("ci-a admin " + GOOD + "\nci-b admin " + GOOD + "\n", 0o600, "token ci-b has the value of another token"),
    ("ci admin " + GOOD + "x\n", 0o600, "two tokens are named ci"),
])
def test_a_bad_tokens_file_is_one_line_without_the_token(tmp_path, text, mode, message):
    path = tmp_path / "tokens"
    path.write_text(text)
    path.chmod(mode)
    with pytest.raises(ConvoyError) as info:
        load_credentials(tmp_path, spec(tokens_file="tokens"), ["messages"], {"CONVOY_T": GOOD + "-env"})
    assert message in str(info.value) and "\n" not in str(info.value)
    assert GOOD not in str(info.value) and "tooshort" not in str(info.value)


def test_tokens_are_found_by_value_only_as_a_bearer(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"ops admin {GOOD}\n")
    path.chmod(0o600)
    credentials = load_credentials(tmp_path, spec(tokens_file=str(path)), ["messages"], {"CONVOY_T": GOOD + "-ci"})
    assert credentials.token_of(f"Bearer {GOOD}").name == "ops"
    assert credentials.token_of(f"bearer {GOOD}-ci").components == ("messages",)
    for header in (None, "", f"Basic {GOOD}", f"Bearer {GOOD}x", "Bearer ", GOOD):
        assert credentials.token_of(header) is None
    assert GOOD not in repr(credentials) and GOOD not in repr(credentials.tokens)


@pytest.mark.parametrize("url, normal", [
    ("https://forge.test/acme/messages.git", "forge.test/acme/messages"),
    ("https://FORGE.test/acme/messages/", "forge.test/acme/messages"),
    ("ssh://git@forge.test:22/acme/messages.git", "forge.test/acme/messages"),
    ("git@forge.test:acme/messages.git", "forge.test/acme/messages"),
    ("https://user:pw@forge.test//acme/messages.git/", "forge.test/acme/messages"),
    ("file:///srv/git/messages.git", "/srv/git/messages"),
    ("/srv/git/messages", "/srv/git/messages"),
    ("https://forge.test/Acme/Messages", "forge.test/Acme/Messages"),  # the path keeps its case
    ("not a url", None), ("", None), ("https://forge.test/", None),
])
def test_repository_urls_in_their_normal_form(url, normal):
    assert normal_repository(url) == normal


def test_same_repository():
    assert same_repository("https://github.com/acme/messages", "git@github.com:acme/messages.git")
    assert not same_repository("https://github.com/acme/messages", "https://github.com/acme/messages-extra")
    assert not same_repository("https://github.com/acme/messages", "https://gitlab.com/acme/messages")


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:0", ("::1", 0)), ("localhost:9000", ("localhost", 9000)),
])
def test_listen(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", "127.0.0.1:", "127.0.0.1:99999", "example.com:80", ":80", "1.2.3.4:x"])
def test_a_bad_listen_is_one_line(text):
    with pytest.raises(ConvoyError, match=r"; for example --listen=127\.0\.0\.1:8080$"):
        parse_listen(text)


def test_serve_will_not_start_without_its_secrets(forge, tmp_path):
    import subprocess
    import sys

    root = make_checkout(forge, tmp_path)
    env = server_env(forge)
    del env["CONVOY_GITLAB_TOKEN"]
    done = subprocess.run([sys.executable, "-m", "convoy", "serve", "--listen=127.0.0.1:0", f"--repo={root}"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("convoy: error: convoy.yaml serve.gitlab.token_env: environment variable "
                           "CONVOY_GITLAB_TOKEN is not set (or empty); set it to the secret before starting "
                           "convoy serve\n")
