"""The commands' plain functions (convoy.actions): called with arguments, not flags.

The HTTP service calls the same functions `convoy <command>` calls; here
they run with no command line parsed. Real git repositories (a component remote
with tags) and the real SQLite state of a small integration checkout.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convoy import requests
from convoy.actions import change
from convoy.actions import checkout as common
from convoy.actions import events as events_action
from convoy.actions import show as show_command
from convoy.actions import status as status_command
from convoy.actions import submit as submit_command
from convoy.actions.submit import BumpArgs
from convoy.commands import bump as bump_command
from convoy.commands import events as events_command
from convoy.commands import lab as lab_command
from convoy.commands import lock as lock_command
from convoy.errors import ConvoyError
from convoy.manifest import load_manifest
from convoy.models import RequestState
from convoy.store import checkout_store


@pytest.fixture
def unparsed():
    """As a library caller finds convoy: no command line parsed (flags are
    per command now, so there is no global flag state a function could read)."""
    yield


@pytest.fixture
def checkout(tmp_path: Path, git_repo, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An integration checkout whose manifest pins `messages` (a git remote
    with tags v1.0.0 and v1.1.0) in configurations rover and drone. The
    current directory is elsewhere: nothing may depend on it."""
    messages = git_repo("messages", {"BUILD.bazel": "# messages 1.0.0\n"})
    messages.tag("v1.0.0")
    messages.commit({"BUILD.bazel": "# messages 1.1.0\n"})
    messages.tag("v1.1.0")
    root = tmp_path / "integration"
    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "manifest.yaml").write_text(f"""\
default_configuration: rover
components:
  messages:
    source: git
    remote: {messages.url}
    version: v1.0.0   # the wire format
configurations:
  rover:
    components: [messages]
  drone:
    components: [messages]
""")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return root


def _args(**fields) -> BumpArgs:
    return BumpArgs(**{"component": "messages", "version": "v1.1.0", "requested_by": "ci@messages", **fields})


def test_submit_validates_and_queues_without_flags(unparsed, checkout, git_repo):
    manifest = load_manifest(str(checkout / "manifests" / "manifest.yaml"))
    submission = submit_command.validate(checkout, manifest, _args(configuration="drone"))
    tag_commit = submission.commit
    assert submission == requests.Submission(
        component="messages", version="v1.1.0", commit=tag_commit, commit_given=False, archive_url=None,
        strip_prefix=None, configuration="drone", requested_by="ci@messages")
    assert len(tag_commit) == 40

    request, existing, superseded = submit_command.submit(checkout, _args())
    assert (request.id, request.state, request.commit, existing, superseded) == (
        1, RequestState.QUEUED, tag_commit, False, [])
    again = submit_command.submit(checkout, _args())
    assert (again[0].id, again[1], again[2]) == (1, True, [])


# `{manifest}` stands for the checkout's manifest, `{remote}` for the messages component's remote.
BUMP_CHECKS = {
    "no-component": (dict(component=None),
                     "--component is required: the component to bump; for example --component=messages"),
    "bad-version": (dict(version="1.1"), "--version=1.1 is not a version (expected v1.2.3 or v1.2.3-rc.1: v, then "
                                         "MAJOR.MINOR.PATCH, then an optional -prerelease); fix --version"),
    "short-commit": (dict(commit="abc"), "--commit=abc is not a commit id (40 lowercase hex digits); pass the full id "
                                         "(git rev-parse <ref>)"),
    "control-characters": (dict(requested_by="ci\n"),
                           "--requested_by=ci\\n contains control characters (\\n); pass it without them"),
    "unknown-component": (dict(component="nope"),
                          "--component=nope: no such component in {manifest} (known: messages); fix the name"),
    "unknown-configuration": (dict(configuration="boat"), "--configuration=boat: no such configuration (known: drone, "
                                                          "rover); fix the name or leave it out for all of them"),
    "version-not-on-remote": (dict(version="v9.9.9"), "component 'messages': version v9.9.9 is neither a tag nor a "
                                                      "branch of {remote}; push the tag first, or fix --version"),
}


@pytest.mark.parametrize("fields, message", BUMP_CHECKS.values(), ids=BUMP_CHECKS.keys())
def test_bump_checks_say_the_flags_names(unparsed, checkout, fields, message):
    manifest = load_manifest(str(checkout / "manifests" / "manifest.yaml"))
    with pytest.raises(ConvoyError) as info:
        submit_command.validate(checkout, manifest, _args(**fields))
    assert str(info.value) == message.replace("{manifest}", str(checkout / "manifests" / "manifest.yaml")).replace(
        "{remote}", manifest.components["messages"].remote)


def test_convoy_bump_makes_the_same_checks(unparsed, checkout):
    with pytest.raises(ConvoyError) as info:
        bump_command.bump(checkout, _args(component=None))  # convoy bump: the same checks
    assert str(info.value) == BUMP_CHECKS["no-component"][1]


def test_status_show_cancel_retry_and_events_without_flags(unparsed, checkout):
    assert status_command.status(checkout) == []  # nothing submitted: no state, none created
    assert not (checkout / ".convoy").exists()
    first, _, _ = submit_command.submit(checkout, _args(configuration="rover"))

    rows = status_command.status(checkout)
    assert [(r["id"], r["state"], r["configuration"], r["stage"], r["note"]) for r in rows] == [
        (1, "queued", "rover", None, None)]
    json.dumps(rows)  # what --json prints

    shown = show_command.show(checkout, first.id)
    assert set(shown) == {"request", "builds", "releases", "timings"}
    assert (shown["request"]["id"], shown["request"]["version"], shown["builds"]) == (1, "v1.1.0", [])
    with pytest.raises(ConvoyError, match=r"^no request #9 in this checkout's queue; see them with: convoy status$"):
        show_command.show(checkout, 9)

    with checkout_store(checkout) as store, store.transaction() as tx:  # what the queue would do: an error
        started = requests.start(tx, tx.request(first.id))
        requests.error(tx, started, "Bazel crashed", attempts=2, limit=1)
    assert change.retry(checkout, first.id) == (
        "request #1 (messages v1.1.0 [rover]) is queued again; run: convoy process")
    with pytest.raises(ConvoyError, match="only a rejected or errored request can be retried"):
        change.retry(checkout, first.id)

    second, existing, superseded = submit_command.submit(checkout, _args(configuration="drone", version="v1.0.0"))
    assert (second.id, existing, superseded) == (2, False, [1])
    assert change.cancel(checkout, second.id) == "request #2 (messages v1.0.0 [drone]) cancelled"
    with pytest.raises(ConvoyError, match="only a queued or testing request can be cancelled"):
        change.cancel(checkout, second.id)
    assert [(r["id"], r["state"], r["note"]) for r in status_command.status(checkout)] == [
        (1, "superseded", "superseded by #2"), (2, "cancelled", "cancelled")]

    assert [(e.type, e.request_id) for e in events_action.events(checkout)] == [
        ("REQUEST_QUEUED", 1), ("REQUEST_ERROR", 1), ("REQUEST_QUEUED", 1), ("REQUEST_QUEUED", 2),
        ("REQUEST_SUPERSEDED", 1), ("REQUEST_CANCELLED", 2)]
    mine = events_action.events(checkout, request_id=1, after=1, limit=1)
    assert [(e.type, e.request_id) for e in mine] == [("REQUEST_ERROR", 1)]
    assert json.loads(events_command.line(mine[0], as_json=True))["type"] == "REQUEST_ERROR"
    with pytest.raises(ConvoyError, match=r"^no request #7 "):
        events_action.events(checkout, request_id=7)


def test_bump_edits_and_relocks_without_flags(unparsed, checkout):
    lock_command.resolve(lock_command.find_paths(str(checkout), None, None))
    message = bump_command.bump(checkout, _args())
    assert message == (f"bumped messages to v1.1.0: wrote {checkout / 'manifests' / 'manifest.yaml'} and "
                       "manifest.lock.json (not committed)")
    text = (checkout / "manifests" / "manifest.yaml").read_text()
    assert "    version: v1.1.0   # the wire format\n" in text
    lock = json.loads((checkout / "manifests" / "manifest.lock.json").read_text())
    assert {c["components"]["messages"]["version"] for c in lock["configurations"].values()} == {"v1.1.0"}
    assert lock_command.resolve(lock_command.find_paths(str(checkout), None, None), check=True) == 0


# --- the one function that finds the integration checkout -----------------------------


def test_checkout_is_found_from_below_from_repo_or_from_a_manifest(unparsed, checkout, monkeypatch):
    (checkout / "integration" / "deep").mkdir(parents=True)
    monkeypatch.chdir(checkout / "integration" / "deep")
    assert common.checkout(None) == checkout
    assert lab_command.lab_directory(None) == checkout / ".convoy" / "lab"
    assert lab_command.lab_directory("/tmp/lab") == Path("/tmp/lab")
    assert common.checkout(str(checkout)) == checkout
    other = checkout.parent / "other" / "manifests" / "manifest.yaml"
    assert common.checkout(str(checkout), manifest=str(other)) == checkout.parent / "other"  # --manifest wins
    paths = lock_command.find_paths(None, None, None)
    assert (paths.root, paths.manifest, paths.manifest_name, paths.lock) == (
        checkout, "../../manifests/manifest.yaml", "manifests/manifest.yaml", "../../manifests/manifest.lock.json")


def test_no_checkout_messages_say_what_each_command_takes(unparsed, tmp_path, monkeypatch):
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    monkeypatch.chdir(nowhere)
    with pytest.raises(ConvoyError) as info:
        common.checkout(None)
    assert str(info.value) == (f"manifests/manifest.yaml not found in {nowhere} or any directory above it; run "
                               "convoy from the integration checkout or pass --repo")
    with pytest.raises(ConvoyError) as info:
        lab_command.lab_directory(None)
    assert str(info.value) == (f"no integration repository (manifests/manifest.yaml) in {nowhere} or above; run "
                               "convoy there or pass --lab_dir")
    with pytest.raises(ConvoyError) as info:
        common.checkout(str(nowhere))
    assert str(info.value) == (f"--repo={nowhere}: manifests/manifest.yaml not found there; pass the integration "
                               "checkout's root")
