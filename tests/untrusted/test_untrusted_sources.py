"""A manifest or a lock is data, never a command: remotes, urls and local paths
that would make git (or Bazel's fetch of a hand-edited lock) run a command or
read outside the integration repository are refused with one line, and the
command never runs.

The commands are `touch <tmp>/marker`: each test asserts that the marker was
never made. Git's own default refuses `ext::`, so the tests that use it give
git a config that allows every protocol (a CI host may have one); convoy's
GIT_ALLOW_PROTOCOL must win over it.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from convoy import candidate, gitutil, release, sample, untrusted
from convoy.errors import ConvoyError
from convoy.main import main as convoy_main

from tests.support import REPO
from tests.support.bazel import Bazel, make_workspace

LOCK = "manifests/manifest.lock.json"
MANIFEST = "manifests/manifest.yaml"
# git config that lets every transport run, ext:: included (git's default is "never" for ext).
ALLOW_ALL = "[protocol]\n\tallow = always\n"
STARTS_WITH_DASH = "starts with '-' (git would read it as an option)"
EXT_HELPER = "uses a git remote helper ('ext::'), which can run commands"


def injections(marker: Path) -> list[tuple[str, str]]:
    """(remote, why it is refused) of the remotes that would run `touch marker`."""
    return [
        (f"--upload-pack=touch {marker}", STARTS_WITH_DASH),
        (f"ext::sh -c touch% {marker}", EXT_HELPER),
    ]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """A file that only the injected command would make; git may run ext:: here."""
    (Path.home() / ".gitconfig").write_text(ALLOW_ALL)
    return tmp_path / "marker"


# -- untrusted.py ------------------------------------------------------------------


@pytest.mark.parametrize("remote", [
    "https://git.example.com/robot/messages.git",
    "http://git.example.com/messages",
    "ssh://git@git.example.com:2222/robot/messages.git",
    "git://git.example.com/messages",
    "file:///srv/git/messages.git",
    "/srv/git/messages.git",
    "git@git.example.com:robot/messages.git",
    "[::1]:messages.git",
])
def test_remote_accepted(remote):
    assert untrusted.remote_problem(remote) is None


RELATIVE = ("is neither a URL (https://, ssh://, git://, file://), scp-like user@host:path, nor an absolute path "
            "(a relative path would mean something else in every checkout)")


@pytest.mark.parametrize("remote, problem", [
    ("--upload-pack=touch /tmp/marker", STARTS_WITH_DASH),
    ("-oProxyCommand=touch /tmp/marker", STARTS_WITH_DASH),
    ("ext::sh -c touch% /tmp/marker", EXT_HELPER),
    ("fd::17", "uses a git remote helper ('fd::'), which can run commands"),
    ("EXT::sh", "uses a git remote helper ('EXT::'), which can run commands"),
    ("ftp://git.example.com/messages.git",
     "uses the scheme 'ftp://' (allowed: https://, http://, ssh://, git://, file://)"),
    ("ssh://-oProxyCommand=touch%20x/messages.git", "has no host"),
    ("ssh://git@-oProxyCommand=x/messages.git",
     "has a user or host starting with '-' (ssh would read it as an option)"),
    ("file://messages.git", "is a file:// URL without an absolute path (write file:///path/to/repo.git)"),
    ("../codec.git", RELATIVE),
    ("host:-messages.git", RELATIVE),
    ("/srv/messages\n.git", "contains control characters (\\n)"),
    ("/srv/\x1b[2Jmessages.git", "contains control characters (\\x1b)"),
    ("/srv/messages.git\u202e", "contains control characters (\\u202e)"),
    (" /srv/messages.git", "has leading or trailing white space"),
    ("", "is empty"),
    ("/" + "x" * 5000, "is longer than 4096 characters"),
])
def test_remote_refused(remote, problem):
    assert untrusted.remote_problem(remote) == problem


@pytest.mark.parametrize("url", [
    "https://pkg.example.com/planner-v2.1.0.tar.gz",
    "http://pkg.example.com:8080/planner.tar.gz?x=1",
    "file:///srv/pkg/planner.tar.gz",
    "file://localhost/srv/pkg/planner.tar.gz",
])
def test_url_accepted(url):
    assert untrusted.url_problem(url) is None


@pytest.mark.parametrize("url, problem", [
    ("ftp://pkg.example.com/planner.tar.gz", "must start with https://, http://, file://"),
    ("-o/etc/passwd", "must start with https://, http://, file://"),
    ("/etc/passwd", "must start with https://, http://, file://"),
    ("data:text/plain,x", "must start with https://, http://, file://"),
    ("https:///planner.tar.gz", "has no host"),
    ("file://planner.tar.gz", "is a file:// URL without an absolute path (write file:///path/to/file)"),
    ("file://host/planner.tar.gz", "is a file:// URL without an absolute path (write file:///path/to/file)"),
    ("https://pkg.example.com/a b.tar.gz", "contains white space (percent-encode it as %20)"),
    ("https://pkg.example.com/a\r\n.tar.gz", "contains control characters (\\n, \\r)"),
])
def test_url_refused(url, problem):
    assert untrusted.url_problem(url) == problem


@pytest.mark.parametrize("path", ["examples/components/firmware/v3.0.1", "./components/x", "a/../b", "a/b/"])
def test_local_path_accepted(path):
    assert untrusted.local_path_problem(path) is None


@pytest.mark.parametrize("path, problem", [
    ("/etc", "is absolute (it must be relative to the integration repository)"),
    ("../../..", "leaves the integration repository ('..')"),
    ("..", "leaves the integration repository ('..')"),
    ("components/../../x", "leaves the integration repository ('..')"),
    ("components/\x00", "contains control characters (\\x00)"),
    ("", "is empty"),
])
def test_local_path_refused(path, problem):
    assert untrusted.local_path_problem(path) == problem


# -- release tags: a tag format from a lock or convoy.yaml is bounded before it is applied --


@pytest.mark.parametrize("apply", [
    lambda tag_format: release.parse_tag(tag_format, "v3"),
    lambda tag_format: release.next_tag(tag_format, ["v3"], datetime.date(2026, 11, 5)),
], ids=["parse_tag", "next_tag"])
@pytest.mark.parametrize("tag_format, problem", [
    ("v{n:>20000000000}", "'v{n:>20000000000}' gives {n} a width or precision of 20000000000 (at most 20)"),
    ("v{n:{year}}", "'v{n:{year}}' has a field inside the format of {n} (nested fields are not supported)"),
])
def test_release_refuses_a_costly_tag_format(tag_format, problem, apply):
    with pytest.raises(ConvoyError) as raised:
        apply(tag_format)
    assert str(raised.value) == (
        f"release tag format {problem}; fix release.tag_format, e.g. \"v{{year}}.{{month}}.{{n}}\""
    )


def test_release_ignores_a_tag_with_a_huge_number():
    assert release.parse_tag("v{year}.{month}.{n}", "v2026.11." + "9" * 5000) is None
    assert release.next_tag("v{n}", ["v" + "9" * 5000, "v2"], datetime.date(2026, 11, 5)) == "v3"


# -- git: `--` before every remote, and never ext:: ---------------------------------


def test_git_refuses_ext_even_where_the_config_allows_it(marker):
    with pytest.raises(gitutil.GitError) as raised:
        gitutil.ls_remote(f"ext::sh -c touch% {marker}", ["refs/heads/main"])
    assert raised.value.detail == "fatal: transport 'ext' not allowed"
    assert not marker.exists()


def test_candidate_fetch_reads_the_remote_as_a_remote(marker, git_repo):
    checkout = git_repo("checkout")
    with pytest.raises(gitutil.GitError):
        candidate.fetch_branch(checkout.path, f"--upload-pack=touch {marker}", "main")
    assert not marker.exists()


# -- convoy lock: the manifest --------------------------------------------------------


def _integration(root: Path, remote: str) -> Path:
    (root / "manifests").mkdir(parents=True)
    (root / MANIFEST).write_text(
        "default_configuration: rover\n"
        "components:\n"
        "  messages:\n"
        "    source: git\n"
        f"    remote: '{remote}'\n"
        "    version: v1.4.0\n"
        "configurations:\n"
        "  rover: {components: [messages]}\n"
    )
    return root


@pytest.mark.parametrize("case", [0, 1], ids=["upload-pack", "ext"])
def test_lock_refuses_a_remote_that_runs_a_command(case, marker, tmp_path, monkeypatch, convoy, capsys):
    remote, problem = injections(marker)[case]
    monkeypatch.chdir(_integration(tmp_path / "integration", remote))

    assert convoy("lock") == 2

    assert capsys.readouterr().err == (
        f"convoy: error: {MANIFEST}:5: components.messages.remote: '{remote}' {problem}; "
        "write an absolute path or a URL (https://, ssh://, git://, file://)\n"
    )
    assert not marker.exists()
    assert not (tmp_path / "integration" / LOCK).exists()


def test_lock_refuses_a_relative_remote(tmp_path, monkeypatch, convoy, capsys, git_repo):
    codec = git_repo("codec")
    codec.tag("v1.4.0")
    root = tmp_path / "repos" / "integration"  # ../codec is the codec repository: it would work here only
    monkeypatch.chdir(_integration(root, "../codec"))

    assert convoy("lock") == 2

    assert capsys.readouterr().err == (
        f"convoy: error: {MANIFEST}:5: components.messages.remote: '../codec' {RELATIVE}; "
        "write an absolute path or a URL (https://, ssh://, git://, file://)\n"
    )
    assert not (root / LOCK).exists()


# -- convoy lock --check: a lock edited by hand ----------------------------------------


@pytest.fixture
def locked(tmp_path, monkeypatch, convoy, git_repo, capsys) -> Path:
    """An integration repository locked against a real git remote; returns its root."""
    messages = git_repo("messages")
    messages.tag("v1.4.0")
    root = _integration(tmp_path / "integration", messages.url)
    monkeypatch.chdir(root)
    assert convoy("lock") == 0
    capsys.readouterr()
    return root


def _edit_pin(lock: Path, configuration: str, component: str, **fields: str) -> None:
    data = json.loads(lock.read_text())
    data["configurations"][configuration]["components"][component].update(fields)
    lock.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@pytest.mark.parametrize("case", [0, 1], ids=["upload-pack", "ext"])
def test_check_refuses_a_hand_edited_remote(case, marker, locked, convoy, capsys):
    remote, problem = injections(marker)[case]
    _edit_pin(locked / LOCK, "rover", "messages", remote=remote)
    edited = (locked / LOCK).read_bytes()

    assert convoy("lock", "--check") == 2

    assert capsys.readouterr().err == (
        f"convoy: error: {LOCK}: rover/messages: remote '{remote}' {problem}; run: convoy lock\n"
    )
    assert not marker.exists()
    assert (locked / LOCK).read_bytes() == edited


def test_check_finds_a_hand_edited_remote_that_is_valid(locked, convoy, capsys, git_repo):
    elsewhere = git_repo("elsewhere")
    declared = json.loads((locked / LOCK).read_text())["configurations"]["rover"]["components"]["messages"]["remote"]
    _edit_pin(locked / LOCK, "rover", "messages", remote=elsewhere.url)

    assert convoy("lock", "--check") == 1

    assert capsys.readouterr().out == (
        f"rover/messages: manifest says remote {declared}, lock has remote {elsewhere.url}\n"
        f"{LOCK} is stale; run: convoy lock\n"
    )


# -- Bazel fetching a lock edited by hand -------------------------------------------


@pytest.fixture(scope="module")
def git_workspace(tmp_path_factory) -> Path:
    """An integration repository whose manifest pins real git repositories, locked."""
    base = tmp_path_factory.mktemp("hand-edited")
    repos = sample.make_component_repos(REPO / "examples", base / "components")
    ws = make_workspace(base / "integration")
    remotes = {name: path.as_uri() for name, path in repos.items()}
    (ws / MANIFEST).write_text(sample.git_sourced_manifest((REPO / MANIFEST).read_text(), remotes))
    assert convoy_main(["convoy", "lock", f"--manifest={ws / MANIFEST}"]) == 0
    yield ws
    Bazel(ws)("shutdown")


def _failure_line(result) -> str:
    lines = [line for line in result.output.splitlines() if "Error in fail:" in line]
    assert result.returncode != 0 and lines, result
    return lines[-1].split("Error in fail: ", 1)[1]


@pytest.mark.bazel
@pytest.mark.parametrize("case", [0, 1, 2, 3], ids=["upload-pack", "ext", "absolute-path", "path-up"])
def test_bazel_refuses_a_hand_edited_lock(case, git_workspace, tmp_path):
    marker = tmp_path / "marker"
    lock = git_workspace / LOCK
    original = lock.read_text()
    pins = [
        *({"remote": remote} for remote, _ in injections(marker)),
        {"source": "local", "path": "/etc"},
        {"source": "local", "path": "examples/../../.."},
    ]
    expected = [
        f'remote "{injections(marker)[0][0]}" {STARTS_WITH_DASH}',
        f'remote "{injections(marker)[1][0]}" {EXT_HELPER}',
        'path "/etc" is absolute (it must be relative to the integration repository)',
        "path \"examples/../../..\" leaves the integration repository ('..')",
    ]
    _edit_pin(lock, "rover", "firmware", **pins[case])
    try:
        # A git config that lets git run ext:: (Bazel's own environment, as a CI host may have it).
        result = Bazel(git_workspace)(
            "build", "--repo_env=GIT_CONFIG_COUNT=1", "--repo_env=GIT_CONFIG_KEY_0=protocol.allow",
            "--repo_env=GIT_CONFIG_VALUE_0=always", "--repo_env=CONVOY_CONFIGURATION=rover", "@firmware//...",
        )
        assert _failure_line(result) == f"{LOCK}: rover/firmware: {expected[case]}. Run: convoy lock"
        assert not marker.exists()
    finally:
        lock.write_text(original)


@pytest.mark.bazel
def test_bazel_still_fetches_the_untouched_lock(git_workspace):
    result = Bazel(git_workspace)("build", "--repo_env=CONVOY_CONFIGURATION=rover", "@firmware//...")
    assert result.returncode == 0, result
