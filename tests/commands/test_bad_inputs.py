"""Every bad input is one line, exit status 2, no damage, and the queue goes on.

A table of bad inputs over every queue command and every file convoy reads
(manifest.yaml, manifest.lock.json, convoy.yaml, the state under .convoy).
For each case, against one real integration repository (real git, real
Bazel), the test asserts:

1. one line on stderr, exit status 2, no traceback, and the words that say
   what is wrong;
2. nothing damaged: the manifest, the lock and convoy.yaml as they were (or
   exactly as the case wrote them), state.db passing `PRAGMA
   integrity_check` with the same requests in the same states, and origin's
   branch and tags where they were;
3. the queue still processes the next good request: once the case's files
   are put back, a good bump is submitted and `convoy process --once`
   merges and tags it (after each case that damaged the state or ran
   convoy as a process, and after every fourth case of each file family
   and its last; the other cases are covered by 2., and by the next good
   request, which goes on from the same state).

The integration repository's only stage builds one small target, so step 3
stays about a second per case.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

import pytest

from convoy.models import RequestState
from convoy.store import checkout_store

from tests.support.integration import CONVOY, Integration, config_text

MANIFEST = "manifests/manifest.yaml"
LOCK = "manifests/manifest.lock.json"
CONFIG = "convoy.yaml"
WATCHED = (MANIFEST, LOCK, CONFIG)
ONE_STAGE = """\
stages:
  - {name: build, command: build, targets: ["//integration:hub"], timeout: 300}
"""
# The good request that follows every case: messages in rover, back and forth.
GOOD_VERSIONS = ("v1.4.0", "v1.5.0")

Edit = Union[str, bytes, Callable[[str], str]]


@dataclass(frozen=True)
class Case:
    """A bad input: `files` replaced (text, bytes, or a function of the old
    text), `damage` done to the checkout's state (put back after the case by
    restoring .convoy/state.db), then `convoy <argv>` run."""

    id: str
    argv: tuple[str, ...]
    expect: str
    files: Mapping[str, Edit] = field(default_factory=dict)
    damage: Optional[Callable[["Bad"], None]] = None
    process: bool = False  # run as a real process (convoy process, or a held lock)


def sub(pattern: str, replacement: str, count: int = 1) -> Callable[[str], str]:
    """An edit of the old text: re.sub that must match."""

    def edit(text: str) -> str:
        new, n = re.subn(pattern, replacement, text, count=count, flags=re.M)
        assert n, f"{pattern!r} not in the file"
        return new

    return edit


def append(extra: str) -> Callable[[str], str]:
    return lambda text: text + extra


def lock_edit(change: Callable[[dict], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        data = json.loads(text)
        change(data)
        return json.dumps(data, indent=2)

    return edit


def _first_pin(data: dict, configuration: str = "rover", component: str = "messages") -> dict:
    return data["configurations"][configuration]["components"][component]


# --- the cases -----------------------------------------------------------------------

SUBMIT = ("submit", "--component=planner", "--version=v2.2.0", "--configuration=rover")

submit_cases = [
    Case("submit-no-component", ("submit", "--version=v1.5.0"), "--component is required"),
    Case("submit-no-version", ("submit", "--component=messages"), "--version is required"),
    Case("submit-unknown-component", ("submit", "--component=nosuch", "--version=v1.5.0"), "no such component"),
    Case("submit-component-newline", ("submit", "--component=messages\nx", "--version=v1.5.0"), "control characters"),
    *[Case(f"submit-version-{i}", ("submit", "--component=messages", f"--version={v}"), "--version")
      for i, v in enumerate(["1.5", "v1.5.0.0", "latest", "v1.5.0 ", "-v1.5.0", "v1.5.0\x1b[31m", "v1..5.0",
                             "v" + "9" * 300 + ".0.0x"])],
    Case("submit-unknown-configuration", (*SUBMIT[:3], "--configuration=boat"), "no such configuration"),
    Case("submit-configuration-without-component", ("submit", "--component=planner", "--version=v2.2.0",
                                                    "--configuration=drone"), "does not include planner"),
    *[Case(f"submit-commit-{i}", ("submit", "--component=messages", "--version=v1.5.0", f"--commit={c}"),
           "--commit")
      for i, c in enumerate(["abc", "G" * 40, "a" * 39, "a" * 41, "--upload-pack=x", "A" * 40])],
    Case("submit-commit-not-on-remote", ("submit", "--component=messages", "--version=v1.5.0",
                                         "--commit=" + "1" * 40), "commit"),
    Case("submit-version-not-on-remote", ("submit", "--component=messages", "--version=v9.9.9"),
         "neither a tag nor a branch"),
    Case("submit-strip-prefix-alone", (*SUBMIT, "--strip_prefix=planner"), "--strip_prefix needs --archive_url"),
    Case("submit-commit-and-archive", ("submit", "--component=messages", "--version=v1.5.0", "--commit=" + "a" * 40,
                                       "--archive_url=https://example.com/m.tar.gz"), "exclude each other"),
    *[Case(f"submit-archive-url-{i}", (*SUBMIT[:3], f"--archive_url={u}"), "--archive_url")
      for i, u in enumerate(["ftp://example.com/p.tar.gz", "file:///tmp/p.tar.gz\nrelease: {}", "https://a b/p.tgz",
                             "https:///p.tgz", "file://relative/p.tgz", "-o/tmp/x", "javascript:alert(1)",
                             "https://example.com/\x00p.tgz", "http://" + "a" * 5000])],
    Case("submit-archive-unreachable", (*SUBMIT[:3], "--archive_url=file:///nonexistent/p.tar.gz"),
         "cannot download"),
    *[Case(f"submit-strip-prefix-{i}", (*SUBMIT[:3], "--archive_url=https://example.com/p.tgz", f"--strip_prefix={p}"),
           "--strip_prefix")
      for i, p in enumerate(["../../etc", "/etc", "a/../../b"])],
    *[Case(f"submit-requested-by-{i}", (*SUBMIT, f"--requested_by={r}"), "--requested_by")
      for i, r in enumerate(["ci\nconvoy: error: forged", "ci\x1b]0;title\x07", "ci\r", "\u202ecod.exe",
                             "x" * 201, "ci\x7f"])],
    Case("submit-positional", (*SUBMIT, "extra"), "takes no arguments"),
    Case("submit-unknown-flag", (*SUBMIT, "--colour=yes"), "unknown flag --colour=yes; usage: convoy submit"),
    Case("submit-bad-bool", (*SUBMIT, "--json=maybe"), "--json=maybe is not a boolean"),
]

ids_cases = [
    *[Case(f"{command}-id-{i}", (command, value), expect)
      for command in ("show", "cancel", "retry")
      for i, (value, expect) in enumerate([
          ("abc", "not a request id"), ("0", "not a request id"), ("-3", "unknown flag -3; usage: convoy"),
          ("99999999999999999999", "request"), ("1.5", "not a request id"), ("999999", "no request #999999"),
          ("#", "not a request id")])],
    Case("show-two-ids", ("show", "1", "2"), "takes one request id"),
    Case("cancel-no-id", ("cancel",), "takes one request id"),
    Case("retry-merged", ("retry", "1"), "only a rejected or errored request can be retried"),
    Case("cancel-merged", ("cancel", "1"), "only a queued or testing request can be cancelled"),
    Case("events-request-0", ("events", "--request=0"), "not a request id"),
    Case("events-request-huge", ("events", "--request=99999999999999999999"), "request"),
    Case("events-positional", ("events", "x"), "takes no arguments"),
    Case("status-positional", ("status", "x"), "takes no arguments"),
    Case("tag-positional", ("tag", "x"), "takes no arguments"),
    Case("process-two-modes", ("process", "--once", "--forever"), "exclude each other"),
    Case("process-poll-zero", ("process", "--forever", "--poll_interval=0"), "--poll_interval"),
    Case("process-poll-nan", ("process", "--forever", "--poll_interval=nan"), "--poll_interval"),
    Case("unknown-command", ("frobnicate",), "unknown command"),
    Case("repo-missing", ("status", "--repo=/nonexistent/checkout"), "--repo"),
    Case("bump-no-component", ("bump", "--version=v1.5.0"), "--component is required"),
    Case("bump-bad-version", ("bump", "--component=messages", "--version=latest"), "--version"),
    Case("bump-unknown-component", ("bump", "--component=nosuch", "--version=v1.5.0"), "no such component"),
    Case("bump-archive-newline", ("bump", "--component=planner", "--version=v2.2.0",
                                  "--archive_url=file:///tmp/p.tgz\nx: y"), "control characters"),
]

# Nine values, each level nine of the one before: 9**6 values from six lines.
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcde", "bcdef"))
REMOTE = r"(  messages:.*\n    source: git\n    remote: ).*"
manifest_cases = [
    *[Case(f"manifest-remote-{i}", ("lock",), expect, files={MANIFEST: sub(REMOTE, r"\g<1>" + remote)})
      for i, (remote, expect) in enumerate([
          ("--upload-pack=touch /tmp/convoy-pwned", "remote"), ("'ext::sh -c touch% /tmp/convoy-pwned'", "remote"),
          ("fd::3", "remote"), ("../messages.git", "remote"), ("ftp://example.com/m.git", "remote"),
          ("'https://example.com/m.git\\n--upload-pack=x'", "remote"), ("''", "remote"),
          ("'  /tmp/m.git'", "remote"), ("host:-oProxyCommand=x", "remote")])],
    *[Case(f"manifest-{name}", ("lock",), expect, files={MANIFEST: edit})
      for name, edit, expect in [
          ("empty", "", "empty"),
          ("list", "- a\n- b\n", "mapping"),
          ("not-yaml", "components: [\n", "manifest"),
          ("tabs", "components:\n\tmessages: {}\n", "manifest"),
          ("nul-bytes", b"schema_version: 1\x00\x00\n", "manifest"),
          ("invalid-utf8", b"schema_version: 1\n# \xff\xfe\n", "UTF-8"),
          ("conflict-markers", append("<<<<<<< HEAD\nx: 1\n=======\nx: 2\n>>>>>>> other\n"), "conflict"),
          ("duplicate-key", sub(r"^default_configuration: rover$", "default_configuration: rover\n"
                                "default_configuration: drone"), "duplicate"),
          ("unknown-top-key", append("colour: blue\n"), "unknown key"),
          ("schema-2", sub(r"^schema_version: 1$", "schema_version: 2"), "schema_version"),
          ("schema-nan", sub(r"^schema_version: 1$", "schema_version: .nan"), "schema_version"),
          ("schema-huge", sub(r"^schema_version: 1$", "schema_version: " + "9" * 400), "schema_version"),
          ("default-unknown", sub(r"^default_configuration: rover$", "default_configuration: boat"), "boat"),
          ("tag-format-pad", sub(r'tag_format: ".*"', 'tag_format: "v{n:>20000000000}"'), "tag_format"),
          ("tag-format-precision", sub(r'tag_format: ".*"', 'tag_format: "v{n:.999999999}"'), "tag_format"),
          ("tag-format-field", sub(r'tag_format: ".*"', 'tag_format: "v{n}{__class__}"'), "tag_format"),
          ("tag-format-attr", sub(r'tag_format: ".*"', 'tag_format: "v{n.__class__}"'), "tag_format"),
          ("tag-format-no-n", sub(r'tag_format: ".*"', 'tag_format: "v{year}"'), "tag_format"),
          ("tag-format-bad-tag", sub(r'tag_format: ".*"', 'tag_format: "v {n}"'), "tag_format"),
          ("component-name", sub(r"^configurations:", "  'mess ages': {source: git, remote: /tmp/m.git, "
                                 "version: v1.0.0}\nconfigurations:"), "name"),
          ("component-reserved", sub(r"^configurations:", "  bazel_tools: {source: git, remote: /tmp/m.git, "
                                     "version: v1.0.0}\nconfigurations:"), "reserved"),
          ("unknown-source", sub(r"source: git", "source: svn"), "unknown source"),
          ("version-dotdot", sub(r"version: v1\.4\.0", "version: v1..4"), "version"),
          ("version-list", sub(r"version: v1\.4\.0", "version: [1, 4]"), "version"),
          ("commit-short", sub(r"(    version: v1\.4\.0)", r"\1\n    commit: abc123"), "commit"),
          ("unknown-component-key", sub(r"(    version: v1\.4\.0)", r"\1\n    branch: main"), "unknown key"),
          ("configuration-unknown-component", sub(r"components: \[messages, planner", "components: [messages, "
                                                  "nosuch, planner"), "unknown component"),
          ("configuration-twice", sub(r"components: \[messages, planner", "components: [messages, messages, "
                                      "planner"), "twice"),
          ("configuration-empty", sub(r"components: \[messages, planner, controller, firmware\]", "components: []"),
           "at least one"),
          ("pin-unknown", sub(r"pins:\n      firmware: v2\.9\.4", "pins:\n      nosuch: v1.5.0"), "unknown component"),
          ("pin-not-member", sub(r"pins:\n      firmware: v2\.9\.4", "pins:\n      planner: v2.2.0"), "planner"),
          ("no-configurations", sub(r"^configurations:(.|\n)*", ""), "configurations"),
          ("billion-laughs", LAUGHS, "alias"),
          ("deep-nesting", "components: " + "[" * 100000 + "]" * 100000 + "\n", "manifest"),
          ("deep-mapping", "components:" + "".join("\n" + " " * i + "a:" for i in range(1, 3000)) + " 1\n",
           "manifest"),
          ("local-etc", sub(r"(  planner:.*\n)    source: git\n    remote: .*", r"\1    source: local\n    path: /etc"),
           "path"),
          ("local-escape", sub(r"(  planner:.*\n)    source: git\n    remote: .*",
                               r"\1    source: local\n    path: ../../../../etc"), "path"),
          ("archive-url-scheme", sub(r"(  planner:.*\n)    source: git\n    remote: .*",
                                     r"\1    source: archive\n    url: ftp://example.com/p.tgz"), "url"),
          ("archive-sha-short", sub(r"(  planner:.*\n)    source: git\n    remote: .*",
                                    r"\1    source: archive\n    url: https://example.com/p.tgz\n    sha256: abc"),
           "sha256"),
      ]],
    Case("manifest-huge", ("lock",), "MiB", files={MANIFEST: append(("#" + "x" * 1023 + "\n") * (9 * 1024))}),
    Case("manifest-missing-submit", ("submit", "--component=messages", "--version=v1.5.0"), "manifest",
         files={MANIFEST: b"\xff\xfe"}),
    Case("manifest-bad-bump", ("bump", "--component=messages", "--version=v1.5.0"), "remote",
         files={MANIFEST: sub(REMOTE, r"\g<1>--upload-pack=touch /tmp/convoy-pwned")}),
]

lock_cases = [
    Case(f"lock-{name}", ("lock", "--check"), expect, files={LOCK: edit})
    for name, edit, expect in [
        ("empty", "", "lock"),
        ("not-json", "{\n", "lock"),
        ("list", "[]", "lock"),
        ("truncated", lambda text: text[: len(text) // 2], "lock"),
        ("deep-nesting", "[" * 100000 + "]" * 100000, "lock"),
        ("nul", b"\x00" * 64, "lock"),
        ("invalid-utf8", b"{\"a\": \"\xff\"}", "lock"),
        ("format-99", lock_edit(lambda d: d.update(format_version=99)), "lock"),
        ("remote-option", lock_edit(lambda d: _first_pin(d).update(remote="--upload-pack=touch /tmp/convoy-pwned")),
         "remote"),
        ("remote-ext", lock_edit(lambda d: _first_pin(d).update(remote="ext::sh -c touch% /tmp/convoy-pwned")),
         "remote"),
        ("commit-short", lock_edit(lambda d: _first_pin(d).update(commit="abc")), "commit"),
        ("commit-option", lock_edit(lambda d: _first_pin(d).update(commit="--output=/tmp/x")), "commit"),
        ("path-etc", lock_edit(lambda d: _first_pin(d).update(source="local", path="/etc")), "path"),
        ("url-scheme", lock_edit(lambda d: _first_pin(d).update(source="archive", url="ftp://x/y.tgz",
                                                                sha256="a" * 64)), "url"),
        ("sha-bad", lock_edit(lambda d: _first_pin(d).update(source="archive", url="https://x/y.tgz", sha256="z")),
         "sha256"),
        ("source-unknown", lock_edit(lambda d: _first_pin(d).update(source="svn")), "source"),
        ("configurations-list", lock_edit(lambda d: d.update(configurations=[])), "lock"),
        ("pin-string", lock_edit(lambda d: d["configurations"]["rover"]["components"].update(messages="v1.5.0")), "lock"),
    ]
]

CONFIG_SECTION = r"^queue: .*$"
config_cases = [
    Case(f"config-{name}", ("process", "--once"), expect, files={CONFIG: edit}, process=True)
    for name, edit, expect in [
        ("empty-list", "- 1\n", "mapping"),
        ("not-yaml", "queue: {\n", CONFIG),
        ("poll-nan", sub(CONFIG_SECTION, "queue: {mode: serial, poll_interval: .nan}"), "poll_interval"),
        ("poll-inf", sub(CONFIG_SECTION, "queue: {mode: serial, poll_interval: .inf}"), "poll_interval"),
        ("poll-negative", sub(CONFIG_SECTION, "queue: {mode: serial, poll_interval: -1}"), "poll_interval"),
        ("poll-string", sub(CONFIG_SECTION, "queue: {mode: serial, poll_interval: soon}"), "poll_interval"),
        ("mode-unknown", sub(CONFIG_SECTION, "queue: {mode: chaotic}"), "mode"),
        ("timeout-nan", sub(r"timeout: 300", "timeout: .nan"), "timeout"),
        ("timeout-inf", sub(r"timeout: 300", "timeout: .inf"), "timeout"),
        ("parallelism-zero", sub(r"^parallelism: 2$", "parallelism: 0"), "parallelism"),
        ("parallelism-huge", sub(r"^parallelism: 2$", "parallelism: 1e300"), "parallelism"),
        ("retries-negative", sub(r"infrastructure: 1", "infrastructure: -1"), "infrastructure"),
        ("unknown-key", append("colour: blue\n"), "unknown key"),
        ("stage-command", sub(r"command: build", "command: run"), "command"),
        ("stage-name", sub(r"name: build", "name: 'Build Me'"), "name"),
        ("stage-flag-form", sub(r"timeout: 300}", "timeout: 300, flags: [config=x]}"), "flags"),
        ("plugin-type", append("  - {name: x, type: carrier-pigeon}\n"), "type"),
        ("plugin-url-scheme", append("  - {name: hook, type: webhook, url: 'ftp://example.com/x', "
                                     "secret_env: HOOK_SECRET}\n"), "url"),
        ("plugin-url-newline", append("  - {name: hook, type: webhook, url: \"https://example.com/x\\nHost: y\", "
                                      "secret_env: HOOK_SECRET}\n"), "url"),
        ("plugin-event", append("  - {name: x, type: log, path: x.jsonl, events: [NOT_AN_EVENT]}\n"), "NOT_AN_EVENT"),
        ("plugin-duplicate", append("  - {name: event-log, type: log, path: y.jsonl}\n"), "duplicate"),
        ("plugin-forge-unknown", append("  - {name: st, type: forge-status, forge: bitbucket, "
                                        "token_env: FORGE_TOKEN}\n"), "unknown forge"),
        ("plugin-forge-api-scheme", append("  - {name: st, type: forge-status, forge: github, "
                                           "api_url: 'ftp://api.github.com', token_env: FORGE_TOKEN}\n"), "api_url"),
        ("plugin-forge-no-token", append("  - {name: st, type: forge-status, forge: gitlab}\n"), "token_env"),
        ("tag-format-pad", append("release: {tag_format: 'v{n:>20000000000}'}\n"), "tag_format"),
        ("billion-laughs", LAUGHS, "alias"),
        ("deep-nesting", "queue: " + "[" * 100000 + "]" * 100000 + "\n", CONFIG),
        ("conflict-markers", append("<<<<<<< HEAD\n=======\n>>>>>>> x\n"), "conflict"),
        ("huge", append(("#" + "x" * 1023 + "\n") * (9 * 1024)), "MiB"),
    ]
]


def _db(bad: "Bad") -> Path:
    return bad.it.checkout / ".convoy" / "state.db"


def _replace_db(content: bytes) -> Callable[["Bad"], None]:
    def damage(bad: "Bad") -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{_db(bad)}{suffix}").unlink(missing_ok=True)
        _db(bad).write_bytes(content)

    return damage


def _truncate_db(bad: "Bad") -> None:
    data = _db(bad).read_bytes()
    _replace_db(data[: len(data) // 3])(bad)


def _foreign_db(bad: "Bad") -> None:
    _replace_db(b"")(bad)
    with sqlite3.connect(_db(bad)) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")


def _convoy_is_a_file(bad: "Bad") -> None:
    shutil.rmtree(bad.it.checkout / ".convoy")
    (bad.it.checkout / ".convoy").write_text("not a directory\n")


def _lock_is_a_directory(bad: "Bad") -> None:
    lock = bad.it.checkout / ".convoy" / "process.lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()


def _held(bad: "Bad") -> None:
    bad.holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time\n"
         "c = sqlite3.connect(sys.argv[1], isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\n"
         "print('held', flush=True)\ntime.sleep(120)\n", str(_db(bad))],
        stdout=subprocess.PIPE, text=True)
    assert bad.holder.stdout.readline().strip() == "held"


state_cases = [
    *[Case(f"state-{name}-{command}", (command, *extra), expect, damage=damage, process=command == "process")
      for name, damage, expect in [
          ("garbage", _replace_db(b"this is not a database\n" * 100), "state"),
          ("truncated", _truncate_db, "state"),
          ("foreign", _foreign_db, "state"),
          ("convoy-file", _convoy_is_a_file, ".convoy"),
      ]
      for command, extra in [("status", ()), ("submit", SUBMIT[1:]), ("process", ("--once",))]],
    Case("state-lock-dir-process", ("process", "--once"), "process lock", damage=_lock_is_a_directory, process=True),
    *[Case(f"state-held-{command}", (command, *extra), "database", damage=_held, process=True)
      for command, extra in [("submit", SUBMIT[1:]), ("cancel", ("1",)), ("process", ("--once",))]],
]

CASES = submit_cases + ids_cases + manifest_cases + lock_cases + config_cases + state_cases
# The file cases (manifest, lock, convoy.yaml) after which a good request is processed (3. in
# the module docstring): every fourth of each family and its last. The others are covered by 2.
# (each watched file byte for byte, state.db's integrity and requests, origin), and by the next
# good request, which goes on from the same state.
GOOD_AFTER = {family[i].id for family in (manifest_cases, lock_cases, config_cases)
              for i in range(len(family)) if i % 4 == 0 or i == len(family) - 1}


def test_there_are_enough_cases():
    assert len(CASES) >= 150, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


# --- the harness ----------------------------------------------------------------------


class Bad:
    """The integration repository all cases run against."""

    def __init__(self, it: Integration) -> None:
        self.it = it
        self.good = 0
        self.holder: Optional[subprocess.Popen] = None
        self.backup = it.checkout.parent / "state-backup"

    def read(self, name: str) -> bytes:
        return (self.it.checkout / name).read_bytes()

    def requests(self) -> list[tuple[int, str]]:
        with checkout_store(self.it.checkout) as store, store.read() as tx:
            return [(r.id, r.state.value) for r in tx.requests()]

    def integrity(self) -> str:
        with sqlite3.connect(f"file:{_db(self)}?mode=ro", uri=True) as conn:
            return conn.execute("PRAGMA integrity_check").fetchone()[0]

    def origin(self) -> tuple[str, dict[str, str]]:
        return self.it.origin("rev-parse", "main"), self.it.origin_tags()

    def save_state(self) -> None:
        if self.backup.exists():
            shutil.rmtree(self.backup)
        shutil.copytree(self.it.checkout / ".convoy", self.backup, symlinks=True,
                        ignore=shutil.ignore_patterns("bazel", "worktrees"))

    def restore_state(self) -> None:
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()
            self.holder = None
        convoy_dir = self.it.checkout / ".convoy"
        if convoy_dir.is_file():
            convoy_dir.unlink()
        lock = convoy_dir / "process.lock"
        if lock.is_dir():
            lock.rmdir()
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            (convoy_dir / name).unlink(missing_ok=True)
        shutil.copytree(self.backup, convoy_dir, symlinks=True, dirs_exist_ok=True)

    def run(self, case: Case):
        if case.process:
            env = {k: v for k, v in os.environ.items() if k != "CONVOY_FAILPOINT"}
            if case.damage is _held:
                env["CONVOY_STATE_WAIT"] = "2"  # not 30 s: the wait is the same code either way
            proc = subprocess.run([str(CONVOY), *case.argv], cwd=self.it.checkout, env=env, capture_output=True,
                                  text=True, timeout=300)
            return proc.returncode, proc.stdout, proc.stderr
        run = self.it.convoy(*case.argv)
        return run.code, run.out, run.err

    def good_request(self) -> None:
        version = GOOD_VERSIONS[self.good % 2]
        if self.it.origin_pin("rover", "messages") == version:
            self.good += 1
            version = GOOD_VERSIONS[self.good % 2]
        self.good += 1
        request_id = self.it.submit("--component=messages", f"--version={version}", "--configuration=rover",
                                    "--requested_by=bad-inputs")
        run = self.it.convoy("process", "--once")  # in this process: no interpreter start per case
        assert run.code == 0, run
        request = self.it.request(request_id)
        assert request.state == RequestState.MERGED and request.tag, (request, run)


@pytest.fixture(scope="module")
def bad(make_integration):
    it = make_integration("bad-inputs", config_text(stages=ONE_STAGE))
    bad = Bad(it)
    bad.good_request()  # a merged request #1, and the Bazel server warm
    yield bad
    it.shutdown_bazel()


@pytest.mark.bazel
@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_is_one_line_and_harms_nothing(bad, case):
    before_files = {name: bad.read(name) for name in WATCHED}
    before_requests, before_origin = bad.requests(), bad.origin()
    bad.save_state()
    given = {}
    for name, edit in case.files.items():
        if callable(edit):
            edit = edit(before_files[name].decode())
        given[name] = edit.encode() if isinstance(edit, str) else edit
        (bad.it.checkout / name).write_bytes(given[name])
    damaged = None
    if case.damage is not None:
        case.damage(bad)
        if _db(bad).is_file():
            damaged = _db(bad).read_bytes()
    try:
        code, out, err = bad.run(case)
        # 1. one line, status 2, no traceback, says what is wrong
        assert (code, len(err.splitlines())) == (2, 1), f"exit {code}\nstdout:\n{out}\nstderr:\n{err}"
        assert "Traceback" not in out + err and err.startswith("convoy: error: "), err
        assert case.expect.lower() in err.lower(), err
        # 2. nothing damaged: each file as it was, or exactly as the case wrote it
        for name in WATCHED:
            assert bad.read(name) == given.get(name, before_files[name]), f"{name} changed"
        if damaged is not None:
            assert _db(bad).read_bytes() == damaged, "convoy wrote to a damaged state.db"
    finally:
        for name in given:
            (bad.it.checkout / name).write_bytes(before_files[name])
        if case.damage is not None:
            bad.restore_state()
    assert bad.integrity() == "ok"
    assert bad.requests() == before_requests
    assert bad.origin() == before_origin
    assert not Path("/tmp/convoy-pwned").exists()
    # 3. the queue still processes the next good request: after every case
    # that damaged the state or ran a process, and after a quarter of those
    # that wrote a file (GOOD_AFTER); a case that only gave bad arguments
    # or wrote a file changed nothing else (2. compared it byte for byte),
    # so it is enough that the next good request, and the last test of the
    # module, go on from the same state.
    if case.damage is not None or case.process or case.id in GOOD_AFTER:
        bad.good_request()


@pytest.mark.bazel
@pytest.mark.slow
def test_after_all_the_bad_inputs_a_good_request_still_merges(bad):
    bad.good_request()
