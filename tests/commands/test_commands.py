"""Every bad input to every queue command: one line with the fix, exit 2, nothing lost.

One integration repository (nothing is built here: no Bazel), commands run
in-process through convoy.main.
"""

from __future__ import annotations

import json

import pytest

from convoy.models import RequestState
from convoy.queue import ProcessLock

from tests.support.integration import CONVOY, Integration


@pytest.fixture(scope="module")
def commands_repo(make_integration) -> Integration:
    return make_integration("commands")


@pytest.fixture
def repo(commands_repo, monkeypatch) -> Integration:
    """The repository, as the current directory (as people run convoy)."""
    monkeypatch.chdir(commands_repo.checkout)
    return commands_repo


def requests(it: Integration) -> list[dict]:
    run = it.convoy("status", "--json")
    assert run.code == 0, run
    return json.loads(run.out)


def error(it: Integration, *args: str) -> str:
    """Runs a command that must fail; returns its one error line (without the prefix)."""
    run = it.convoy(*args)
    assert run.code == 2, run
    assert run.out == "", run
    lines = run.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("convoy: error: "), run
    return lines[0][len("convoy: error: "):]


# `{remote}` stands for the messages component's remote.
SUBMIT_CASES = {
    "no-component": (("submit", "--version=v1.5.0"),
                     "--component is required: the component to bump; for example --component=messages"),
    "no-version": (("submit", "--component=messages"),
                   "--version is required: the component's new version; for example --version=v1.5.0"),
    "unknown-component": (("submit", "--component=mesages", "--version=v1.5.0"), (
        "--component=mesages: no such component in manifests/manifest.yaml (known: controller, firmware, messages, "
        "planner); fix the name")),
    "bad-version": (("submit", "--component=messages", "--version=1.5"), (
        "--version=1.5 is not a version (expected v1.2.3 or v1.2.3-rc.1: v, then MAJOR.MINOR.PATCH, then an "
        "optional -prerelease); fix --version")),
    "unknown-configuration": (("submit", "--component=messages", "--version=v1.5.0", "--configuration=boat"), (
        "--configuration=boat: no such configuration (known: drone, rover); fix the name or leave it out for "
        "all of them")),
    "configuration-without-component": (
        ("submit", "--component=planner", "--version=v2.2.0", "--configuration=drone"), (
            "--configuration=drone does not include planner (these do: rover); pick one of them or leave "
            "--configuration out")),
    "short-commit": (("submit", "--component=messages", "--version=v1.5.0", "--commit=abc123"), (
        "--commit=abc123 is not a commit id (40 lowercase hex digits); pass the full id (git rev-parse <ref>)")),
    "commit-not-on-remote": (("submit", "--component=messages", "--version=v1.7.0", f"--commit={'a' * 40}"), (
        f"component 'messages': commit {'a' * 40} does not exist in {{remote}} (on none of its branches or tags); "
        "push it first, or fix --commit")),
    "version-not-on-remote": (("submit", "--component=messages", "--version=v9.9.9"), (
        "component 'messages': version v9.9.9 is neither a tag nor a branch of {remote}; push the tag first, "
        "or fix --version")),
    "strip-prefix-alone": (("submit", "--component=planner", "--version=v2.2.0", "--strip_prefix=planner"), (
        "--strip_prefix needs --archive_url (it names a directory inside the archive); add --archive_url or "
        "drop --strip_prefix")),
    "archive-url-scheme": (
        ("submit", "--component=planner", "--version=v2.2.0", "--archive_url=ftp://example.com/p.tgz"),
        "--archive_url=ftp://example.com/p.tgz must start with https://, http://, file://; fix it"),
    "positional": (("submit", "extra", "--component=planner", "--version=v2.2.0"),
                   "convoy submit takes no arguments, got: extra; run: convoy help"),
}


@pytest.mark.parametrize("args, message", SUBMIT_CASES.values(), ids=SUBMIT_CASES.keys())
def test_submit_bad_inputs(repo, args, message):
    before = requests(repo)
    assert error(repo, *args) == message.replace("{remote}", repo.remotes["messages"])
    assert requests(repo) == before  # nothing was queued


def test_submit_a_commit_that_is_not_the_tags(repo):
    remote = repo.remotes["messages"]
    before = requests(repo)
    tagged = repo.tag_commit("messages", "v1.5.0")
    older = repo.tag_commit("messages", "v1.4.0")
    assert error(repo, "submit", "--component=messages", "--version=v1.5.0", f"--commit={older}") == (
        f"component 'messages': tag v1.5.0 of {remote} is commit {tagged}, not --commit={older}; fix --commit or "
        "--version")
    assert requests(repo) == before  # nothing was queued


def test_submit_an_archive_that_cannot_be_downloaded(repo):
    before = requests(repo)
    missing = error(repo, "submit", "--component=planner", "--version=v2.2.0",
                    "--archive_url=file:///nonexistent/planner-2.2.0.tar.gz")
    assert missing.startswith("component 'planner': cannot download file:///nonexistent/planner-2.2.0.tar.gz (")
    assert missing.endswith("); check the URL or your network")
    assert requests(repo) == before  # nothing was queued


def test_submit_same_request_twice_and_supersede(repo):
    tagged = repo.tag_commit("controller", "v1.3.0")
    first = repo.convoy("submit", "--component=controller", "--version=v1.3.0", "--requested_by=ci@controller")
    assert first.code == 0, first
    first_id = int(first.out.splitlines()[-1])
    assert first.out.splitlines()[0] == (f"queued request #{first_id}: controller v1.3.0 at {tagged[:12]} "
                                         "(by ci@controller); run: convoy process")
    again = repo.convoy("submit", "--component=controller", "--version=v1.3.0", f"--commit={tagged}", "--json")
    assert again.code == 0, again
    assert json.loads(again.out) == {"id": first_id, "state": "queued", "existing": True, "superseded": []}
    newer = repo.convoy("submit", "--component=controller", "--version=v1.2.0", "--json")
    data = json.loads(newer.out)
    assert (data["existing"], data["superseded"], data["state"]) == (False, [first_id], "queued")
    states = {r["id"]: r["state"] for r in requests(repo)}
    assert (states[first_id], states[data["id"]]) == ("superseded", "queued")
    # Clean up for the other tests: nothing queued.
    assert repo.convoy("cancel", str(data["id"])).code == 0


ID_CASES = {
    "show-no-id": (("show",), "convoy show takes one request id (got none); for example: convoy show 3"),
    "show-not-a-number": (("show", "abc"), (
        "'abc' is not a request id (a number from 1 to 9223372036854775807); see them with: convoy status")),
    "show-two-ids": (("show", "1", "2"), "convoy show takes one request id (got: 1 2); for example: convoy show 3"),
    "show-unknown": (("show", "999"), "no request #999 in this checkout's queue; see them with: convoy status"),
    "cancel-unknown": (("cancel", "999"), "no request #999 in this checkout's queue; see them with: convoy status"),
    "cancel-zero": (("cancel", "0"), (
        "'0' is not a request id (a number from 1 to 9223372036854775807); see them with: convoy status")),
    "retry-unknown": (("retry", "999"), "no request #999 in this checkout's queue; see them with: convoy status"),
    "events-request-zero": (("events", "--request=0"),
                            "--request=0 is not a request id (a positive number); see: convoy status"),
    "events-request-unknown": (("events", "--request=999"),
                               "no request #999 in this checkout's queue; see them with: convoy status"),
    "status-positional": (("status", "now"), "convoy status takes no arguments, got: now; run: convoy help"),
}


@pytest.mark.parametrize("args, message", ID_CASES.values(), ids=ID_CASES.keys())
def test_show_cancel_retry_events_bad_inputs(repo, args, message):
    assert error(repo, *args) == message


def test_retry_or_cancel_of_a_request_in_the_wrong_state(repo):
    queued = repo.submit("--component=firmware", "--version=v3.1.0", "--configuration=rover")
    assert error(repo, "retry", str(queued)) == (
        f"request #{queued} (firmware v3.1.0 [rover]) is queued; only a rejected or errored request can be retried")
    assert repo.convoy("cancel", str(queued)).code == 0
    assert error(repo, "cancel", str(queued)) == (
        f"request #{queued} (firmware v3.1.0 [rover]) is already cancelled; only a queued or testing request can "
        "be cancelled")
    assert repo.request(queued).state == RequestState.CANCELLED
    events = repo.convoy("events", f"--request={queued}", "--json")
    assert [json.loads(line)["type"] for line in events.out.splitlines()] == ["REQUEST_QUEUED", "REQUEST_CANCELLED"]


def test_process_bad_inputs_and_the_process_lock(repo):
    assert error(repo, "process", "--once", "--all") == (
        "--once and --all exclude each other; pass one of --once, --all, --forever")
    assert error(repo, "process", "--poll_interval=0") == (
        "--poll_interval=0 must be more than 0 and at most 86400 seconds; e.g. --poll_interval=10")
    with ProcessLock(repo.checkout):
        message = error(repo, "process", "--once")
    assert message.startswith("another convoy process is already processing this queue (pid ")
    assert message.endswith(f"lock {repo.checkout / '.convoy' / 'process.lock'}); wait for it to finish, or stop it")
    run = repo.convoy("process", "--once")
    assert (run.code, run.out) == (0, "convoy: the queue is empty\n")


def test_missing_config_and_checkout(repo, tmp_path):
    config = repo.checkout / "convoy.yaml"
    text = config.read_text()
    config.unlink()
    try:
        assert error(repo, "process") == (
            f"convoy.yaml not found at {config}; create it (see docs/driver.md) or run: convoy demo")
    finally:
        config.write_text(text)
    run = repo.convoy("status", f"--repo={tmp_path}")
    assert run.code == 2
    assert run.err == (f"convoy: error: --repo={tmp_path}: manifests/manifest.yaml not found there; pass the "
                       "integration checkout's root\n")


def test_tag_refuses_an_untested_tip(repo):
    head = repo.origin("rev-parse", "main")
    assert error(repo, "tag") == (
        f"origin/main is at {head[:12]}, which was never tested (no build that passed had it as its candidate); "
        "convoy tags only tested commits: submit a request instead")
    assert repo.origin_tags() == {}


BUMP_CASES = {
    "no-component": (("bump", "--version=v2.2.0"),
                     "--component is required: the component to bump; for example --component=messages"),
    "no-version": (("bump", "--component=planner"),
                   "--version is required: the component's new version; for example --version=v1.5.0"),
    "bad-version": (("bump", "--component=planner", "--version=2.2"), (
        "--version=2.2 is not a version (expected v1.2.3 or v1.2.3-rc.1: v, then MAJOR.MINOR.PATCH, then an "
        "optional -prerelease); fix --version")),
    "unknown-component": (("bump", "--component=plan", "--version=v2.2.0"), (
        "--component=plan: no such component in manifests/manifest.yaml (known: controller, firmware, messages, "
        "planner); fix the name")),
}


def _manifest_and_lock(repo: Integration) -> tuple[str, str]:
    return ((repo.checkout / "manifests" / "manifest.yaml").read_text(),
            (repo.checkout / "manifests" / "manifest.lock.json").read_text())


@pytest.mark.parametrize("args, message", BUMP_CASES.values(), ids=BUMP_CASES.keys())
def test_bump_bad_inputs(repo, args, message):
    before = _manifest_and_lock(repo)
    assert error(repo, *args) == message
    assert _manifest_and_lock(repo) == before  # nothing written on an error


def test_bump_edits_the_manifest_and_relocks_only_that_component(repo):
    manifest = repo.checkout / "manifests" / "manifest.yaml"
    lock_path = repo.checkout / "manifests" / "manifest.lock.json"
    text, lock_text = manifest.read_text(), lock_path.read_text()
    missing = error(repo, "bump", "--component=planner", "--version=v9.9.9")
    assert missing.startswith("component 'planner': version v9.9.9 is neither a tag nor a branch of ")
    assert (manifest.read_text(), lock_path.read_text()) == (text, lock_text)  # nothing written on an error
    try:
        run = repo.convoy("bump", "--component=planner", "--version=v2.2.0")
        assert run.code == 0, run
        assert run.out == ("bumped planner to v2.2.0: wrote manifests/manifest.yaml and manifest.lock.json "
                           "(not committed)\n")
        old_lines, new_lines = text.splitlines(), manifest.read_text().splitlines()
        changed = [(a, b) for a, b in zip(old_lines, new_lines) if a != b]
        assert len(old_lines) == len(new_lines) and changed == [("    version: v2.1.0", "    version: v2.2.0")]
        old, new = json.loads(lock_text), json.loads(lock_path.read_text())
        assert new["configurations"]["rover"]["components"]["planner"]["commit"] == repo.tag_commit("planner",
                                                                                                     "v2.2.0")
        del old["configurations"]["rover"]["components"]["planner"], new["configurations"]["rover"]["components"][
            "planner"]
        assert old["configurations"] == new["configurations"]
        assert repo.git("status", "--porcelain") == "M manifests/manifest.lock.json\n M manifests/manifest.yaml"
        again = repo.convoy("bump", "--component=planner", "--version=v2.2.0")
        assert again.out == "manifests/manifest.yaml already pins planner v2.2.0; nothing to do\n"
    finally:
        manifest.write_text(text)
        lock_path.write_text(lock_text)


def test_a_bump_that_changes_nothing_is_rejected_before_any_build(repo):
    request_id = repo.submit("--component=messages", "--version=v1.4.0")  # what main already pins
    run = repo.convoy("process", "--once")
    assert run.code == 0, run
    request = repo.request(request_id)
    head = repo.origin("rev-parse", "main")
    assert request.state == RequestState.REJECTED
    assert request.detail == f"nothing to change: manifests/manifest.yaml at {head[:10]} already pins messages v1.4.0"
    assert repo.show(request_id)["builds"] == []
    status = {r["id"]: r for r in requests(repo)}[request_id]
    assert (status["state"], status["stage"]) == ("rejected", "candidate")
    assert repo.origin("rev-parse", "main") == head


def test_events_follow_prints_new_events_as_they_come(repo):
    import subprocess
    import time

    proc = subprocess.Popen([str(CONVOY), "events", "--follow"], cwd=repo.checkout, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        request_id = repo.submit("--component=planner", "--version=v2.3.0", "--requested_by=follow")
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline and "by follow" not in line:
            line = proc.stdout.readline()
        assert f"#{request_id} queued: planner v2.3.0 @ " in line and line.endswith("(by follow)\n")
    finally:
        proc.terminate()
        proc.wait(10)
    assert repo.convoy("cancel", str(request_id)).code == 0


def test_submit_checks_an_archive_and_its_strip_prefix(repo, tmp_path):
    archive = tmp_path / "planner-2.2.0.tar.gz"
    repo.git("archive", "--format=tar.gz", "--prefix=planner-2.2.0/", f"--output={archive}", "v2.2.0",
             cwd=repo.remotes["planner"].removeprefix("file://"))
    assert error(repo, "submit", "--component=planner", "--version=v2.2.0", f"--archive_url={archive.as_uri()}",
                 "--strip_prefix=planner-2.1.0") == (
        f"component 'planner': {archive.as_uri()} has nothing under strip prefix 'planner-2.1.0'; fix --strip_prefix")
    assert error(repo, "submit", "--component=planner", "--version=v2.2.0", f"--archive_url={archive.as_uri()}",
                 f"--commit={'a' * 40}") == (
        "--commit and --archive_url exclude each other (an archive has no commit); drop one")
    request_id = repo.submit("--component=planner", "--version=v2.2.0", f"--archive_url={archive.as_uri()}",
                             "--strip_prefix=planner-2.2.0")
    request = repo.request(request_id)
    assert (request.archive_url, request.strip_prefix, request.commit) == (archive.as_uri(), "planner-2.2.0", None)
    assert repo.convoy("cancel", str(request_id)).code == 0
