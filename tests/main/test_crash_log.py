"""A bug in convoy is one line naming a crash log, and exit status 3.

The crash is real: `convoy tag` reaches the `after_tag` failpoint, which
CONVOY_FAILPOINT=raise:after_tag turns into an unexpected exception
(convoy.failpoints), in a small integration repository (a checkout, its
bare origin, a state whose build passed on the branch's tip). It runs once
in-process (convoy.main.main) and once as the real `convoy` command. The
log holds the traceback, convoy's version, Python's version and the
command line. A ConvoyError still exits 2 with its message and no log.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

import convoy
from convoy.models import BuildState
from convoy.store import checkout_store, now

CONVOY = Path(sys.executable).parent / "convoy"
REPO = Path(__file__).resolve().parents[2]  # convoy's checkout: the rules `convoy init --rules` points at
CRASH_LINE = re.compile(r"convoy: internal error \(FailpointError: failpoint after_tag raised\); a bug in convoy, "
                        r"details in (?P<log>/\S+/crash-\d{8}-\d{6}-\d+\.log)\n")


@pytest.fixture
def tested(tmp_path: Path, git_repo, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An integration checkout whose origin's main passed a build: `convoy tag` would tag it."""
    repo = git_repo("integration", {"manifests/manifest.yaml": "components: {}\n", "convoy.yaml": "",
                                    "manifests/manifest.lock.json": '{"configurations": {}}\n',
                                    ".gitignore": ".convoy/\n"})
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(repo.path), str(origin)], check=True)
    repo.git("remote", "add", "origin", str(origin))
    tip = repo.rev_parse("HEAD")
    with checkout_store(repo.path, create=True) as store, store.transaction() as tx:
        request = tx.insert_request(component="messages", version="v1.1.0", commit="a" * 40, commit_given=False,
                                    archive_url=None, strip_prefix=None, configuration=None,
                                    requested_by="ci@messages")
        build = tx.insert_build(request.id, base_commit=tip, candidate_commit=tip)
        tx.update_build(build.id, state=BuildState.SUCCEEDED, finished_at=now())
    monkeypatch.setenv("CONVOY_FAILPOINT", "raise:after_tag")
    monkeypatch.chdir(tmp_path)
    return repo.path


def _assert_crash_log(log: Path, command_line: str) -> None:
    text = log.read_text()
    assert text.startswith(f"convoy {convoy.__version__} crashed: FailpointError: failpoint after_tag raised\n")
    assert "context: convoy tag\n" in text
    assert f"command line: {command_line}\n" in text
    assert f"python: {platform.python_version()} " in text
    assert "Traceback (most recent call last):\n" in text
    assert 'failpoints.hit("after_tag")' in text  # the frame that raised
    assert text.endswith("convoy.failpoints.FailpointError: failpoint after_tag raised\n")
    assert log.stat().st_mode & 0o077 == 0


def test_a_crash_in_process_is_one_line_naming_the_log_and_exit_3(tested, convoy, capsys):
    assert convoy("tag", f"--repo={tested}") == 3
    out, err = capsys.readouterr()
    assert out == ""
    crash = CRASH_LINE.fullmatch(err)
    assert crash, err
    log = Path(crash["log"])
    assert log.parent == tested / ".convoy" / "logs"  # in the checkout's own logs
    _assert_crash_log(log, f"convoy tag --repo={tested}")


def test_a_crash_of_the_real_command_is_one_line_and_exit_3(tested):
    proc = subprocess.run([str(CONVOY), "tag"], cwd=tested / "manifests", env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc
    assert proc.stdout == ""
    crash = CRASH_LINE.fullmatch(proc.stderr)
    assert crash, proc.stderr
    log = Path(crash["log"])
    assert log.parent == tested / ".convoy" / "logs"  # found from the current directory, as the command does
    _assert_crash_log(log, f"{CONVOY} tag")


def test_outside_a_checkout_the_log_goes_to_the_state_directory(convoy, capsys, tmp_path, monkeypatch):
    from convoy import scaffold

    def broken(*args, **kwargs):
        raise RuntimeError("scaffold\nbroke")

    monkeypatch.setattr(scaffold, "scaffold_files", broken)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    assert convoy("init", "product", f"--rules={REPO}") == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    line = re.fullmatch(r"convoy: internal error \(RuntimeError: scaffold broke\); a bug in convoy, details in "
                        r"(?P<log>\S+)\n", err)
    assert line, err
    log = Path(line["log"])
    assert log.parent == tmp_path / "state" / "convoy"
    assert f"command line: convoy init product --rules={REPO}\n" in log.read_text()
    assert not (tmp_path / "product").exists()

    monkeypatch.delenv("XDG_STATE_HOME")  # the default: ~/.local/state/convoy
    assert convoy("init", "product", f"--rules={REPO}") == 3
    log = Path(capsys.readouterr().err.rsplit("details in ", 1)[1].rstrip("\n"))
    assert log.parent == Path.home() / ".local" / "state" / "convoy"


def test_a_convoy_error_still_exits_2_with_its_message_and_no_log(tested, convoy, capsys):
    assert convoy("show", "9", f"--repo={tested}") == 2
    assert capsys.readouterr().err == (
        "convoy: error: no request #9 in this checkout's queue; see them with: convoy status\n")
    proc = subprocess.run([str(CONVOY), "show", "9"], cwd=tested, env=dict(os.environ), capture_output=True,
                          text=True, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2, "", "convoy: error: no request #9 in this checkout's queue; see them with: convoy status\n")
    assert not (tested / ".convoy" / "logs").exists()


def test_a_git_remote_that_cannot_be_reached_is_one_line_and_exit_2(tested, convoy, capsys):
    """A failing git command is the world's refusal, not a bug: no crash log."""
    subprocess.run(["git", "remote", "set-url", "origin", str(tested.parent / "gone.git")], cwd=tested, check=True)
    assert convoy("tag", f"--repo={tested}") == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert re.fullmatch(r"convoy: error: git fetch failed: .+; check the remote, the network and the checkout, "
                        r"then run the command again\n", err), err
    assert not list((tested / ".convoy" / "logs").glob("crash-*.log"))


def test_a_reader_that_goes_away_ends_the_command_quietly(tested):
    """`convoy events | head -1` style: no traceback, no crash log, status 141."""
    os.environ.pop("CONVOY_FAILPOINT", None)
    with checkout_store(tested) as store, store.transaction() as tx:
        for n in range(2000):
            tx.add_event("REQUEST_QUEUED", data={"n": n})
    proc = subprocess.run(f"'{CONVOY}' events --repo='{tested}' | head -1", shell=True, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.stdout.count("\n") == 1, proc
    assert proc.stderr == "", proc
    assert not list((tested / ".convoy" / "logs").glob("crash-*.log"))
