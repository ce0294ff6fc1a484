"""Groups: several bumps in one request (`convoy submit --bump ...`, and open
groups, `--group NAME` then `--group NAME --close`), what supersedes what,
and every bad input as one line; `convoy show`, `status` and the events
name each bump.

One integration repository of the sample (nothing is built: no Bazel),
commands run in-process through convoy.main. Each test starts from an
empty queue (its queued requests are cancelled after it).
"""

from __future__ import annotations

import json

import pytest

from convoy import models
from convoy.models import RequestBump, RequestState
from convoy.store import checkout_store

from tests.support.integration import Integration


@pytest.fixture(scope="module")
def groups_repo(make_integration) -> Integration:
    return make_integration("groups")


@pytest.fixture
def repo(groups_repo, monkeypatch) -> Integration:
    monkeypatch.chdir(groups_repo.checkout)
    yield groups_repo
    with checkout_store(groups_repo.checkout) as store, store.read() as tx:
        queued = [r.id for r in tx.requests([RequestState.QUEUED])]
        groups = [g.name for g in tx.open_groups()]
    for request_id in queued:
        assert groups_repo.convoy("cancel", str(request_id)).code == 0
    with checkout_store(groups_repo.checkout) as store, store.transaction() as tx:
        for name in groups:
            tx.delete_open_group(name)


def error(it: Integration, *args: str) -> str:
    """Runs a command that must fail; returns its one error line (without the prefix)."""
    run = it.convoy(*args)
    assert run.code == 2, run
    assert run.out == "", run
    lines = run.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("convoy: error: "), run
    return lines[0][len("convoy: error: "):]


def submitted(it: Integration, *args: str) -> dict:
    run = it.convoy("submit", "--json", *args)
    assert run.code == 0, run
    return json.loads(run.out)


def queue_state(it: Integration) -> tuple[list, list]:
    """(every request's id, state and title; the open groups), to check that nothing changed."""
    with checkout_store(it.checkout) as store, store.read() as tx:
        return ([(r.id, r.state.value, r.title) for r in tx.requests()],
                [(g.name, g.bumps) for g in tx.open_groups()])


def put_group(it: Integration, name: str, bumps) -> None:
    with checkout_store(it.checkout) as store, store.transaction() as tx:
        tx.put_open_group(name, bumps, "t")


def test_two_bumps_make_one_request(repo):
    messages, planner = repo.tag_commit("messages", "v1.5.0"), repo.tag_commit("planner", "v2.2.0")
    run = repo.convoy("submit", "--bump=messages=v1.5.0", "--bump=planner=v2.2.0", "--requested_by=ci@release")
    assert run.code == 0, run
    request_id = int(run.out.splitlines()[-1])
    assert run.out.splitlines()[0] == (
        f"queued request #{request_id}: messages v1.5.0 at {messages[:12]} + planner v2.2.0 at {planner[:12]} "
        "(by ci@release); run: convoy process")
    request = repo.request(request_id)
    assert (request.component, request.version, request.commit, request.commit_given) == (
        "messages", "v1.5.0", messages, False)
    assert request.bumps == (RequestBump("planner", "v2.2.0", commit=planner),)
    assert request.title == "messages v1.5.0 + planner v2.2.0"
    # The same bumps again: the queued request, nothing added.
    again = submitted(repo, "--component=messages", "--version=v1.5.0", f"--bump=planner=v2.2.0@{planner}")
    assert again == {"id": request_id, "state": "queued", "existing": True, "superseded": []}
    # The event: as a single bump's, and the other bumps.
    [queued] = [e for e in repo.events(request_id) if e.type == models.REQUEST_QUEUED]
    assert (queued.data["component"], queued.data["version"]) == ("messages", "v1.5.0")
    assert queued.data["bumps"] == [{"component": "planner", "version": "v2.2.0", "commit": planner,
                                     "configuration": None, "archive_url": None, "strip_prefix": None}]
    events = repo.convoy("events", f"--request={request_id}")
    assert "+ planner v2.2.0 (by ci@release)" in events.out
    # convoy show lists the bumps, in text and JSON; status names both.
    shown = repo.show(request_id)["request"]
    assert [b["component"] for b in shown["all_bumps"]] == ["messages", "planner"]
    assert shown["bumps"] == [RequestBump("planner", "v2.2.0", commit=planner).to_dict()]
    text = repo.convoy("show", str(request_id)).out.splitlines()
    assert text[:3] == [f"request #{request_id}: a group of 2 bumps, tested, merged and tagged as one:",
                        f"  bump messages v1.5.0 @ {messages}", f"  bump planner v2.2.0 @ {planner}"]
    status = repo.convoy("status").out
    assert "messages + planner  v1.5.0 + v2.2.0" in status
    row = [r for r in json.loads(repo.convoy("status", "--json").out) if r["id"] == request_id][0]
    assert [b["component"] for b in row["bumps"]] == ["planner"]


def test_a_single_bump_is_as_before(repo):
    data = submitted(repo, "--component=controller", "--version=v1.3.0")
    request = repo.request(data["id"])
    assert request.bumps == () and request.title == "controller v1.3.0"
    [queued] = [e for e in repo.events(data["id"]) if e.type == models.REQUEST_QUEUED]
    assert "bumps" not in queued.data
    assert repo.show(data["id"])["request"]["bumps"] == []
    assert repo.convoy("show", str(data["id"])).out.splitlines()[0] == (
        f"request #{data['id']}: controller v1.3.0 @ {request.commit}")


def test_a_group_supersedes_the_queued_requests_of_each_of_its_components(repo):
    messages = submitted(repo, "--component=messages", "--version=v1.5.0")["id"]
    planner = submitted(repo, "--component=planner", "--version=v2.2.0")["id"]
    controller = submitted(repo, "--component=controller", "--version=v1.3.0")["id"]
    group = submitted(repo, "--bump=messages=v1.6.0", "--bump=planner=v2.3.0")
    assert group["superseded"] == [messages, planner]
    states = {r: repo.request(r).state for r in (messages, planner, controller)}
    assert states == {messages: RequestState.SUPERSEDED, planner: RequestState.SUPERSEDED,
                      controller: RequestState.QUEUED}
    assert repo.request(messages).superseded_by == group["id"]
    # A single bump of one of the group's components supersedes the whole group.
    single = submitted(repo, "--component=planner", "--version=v2.2.0")
    assert single["superseded"] == [group["id"]]
    assert repo.request(group["id"]).state == RequestState.SUPERSEDED
    # A group supersedes a group it shares a component with.
    first = submitted(repo, "--bump=firmware=v3.0.1", "--bump=controller=v1.2.0")
    assert controller in first["superseded"]
    second = submitted(repo, "--bump=messages=v1.5.0", "--bump=firmware=v2.9.4")
    assert set(second["superseded"]) == {first["id"]}
    assert repo.request(single["id"]).state == RequestState.QUEUED  # planner: not in the second group


def test_an_open_group_is_held_then_closed_into_one_request(repo):
    queued = submitted(repo, "--component=messages", "--version=v1.5.0")["id"]
    run = repo.convoy("submit", "--component=messages", "--version=v1.6.0", "--group=release-7",
                      "--requested_by=ci@release")
    assert run.code == 0, run
    assert run.out == ("added messages v1.6.0 to group 'release-7', now messages v1.6.0; held until it is closed: "
                       "convoy submit --group=release-7 --close\n")
    added = repo.convoy("submit", "--bump=planner=v2.2.0", "--bump=controller=v1.3.0", "--group=release-7",
                        "--json")
    assert added.code == 0, added
    data = json.loads(added.out)
    assert (data["group"], data["state"]) == ("release-7", "open")
    assert [b["component"] for b in data["bumps"]] == ["messages", "planner", "controller"]
    assert repo.request(queued).state == RequestState.QUEUED  # held: it supersedes nothing yet
    closed = submitted(repo, "--group=release-7", "--close")
    assert (closed["state"], closed["existing"], closed["superseded"], closed["group"]) == (
        "queued", False, [queued], "release-7")
    request = repo.request(closed["id"])
    assert request.title == "messages v1.6.0 + planner v2.2.0 + controller v1.3.0"
    assert request.requested_by == "ci@release"
    assert request.commit == repo.tag_commit("messages", "v1.6.0")
    assert [b.commit for b in request.bumps] == [repo.tag_commit("planner", "v2.2.0"),
                                                 repo.tag_commit("controller", "v1.3.0")]
    assert queue_state(repo)[1] == []  # the group is gone
    assert error(repo, "submit", "--group=release-7", "--close") == (
        "no open group 'release-7' (open: none); start it by adding a bump: convoy submit --component=<name> "
        "--version=<version> --group=release-7")


def test_group_errors_are_one_line_and_change_nothing(repo):
    remote = repo.remotes["planner"]
    assert submitted(repo, "--component=messages", "--version=v1.5.0", "--group=g1")
    put_group(repo, "empty", [])
    put_group(repo, "twice", [RequestBump("planner", "v2.2.0"), RequestBump("planner", "v2.3.0")])
    put_group(repo, "stale", [RequestBump("planner", "v9.9.9")])
    put_group(repo, "gone", [RequestBump("rudder", "v1.0.0")])
    before = queue_state(repo)
    cases = {
        ("submit", "--group=nope", "--close"): (
            "no open group 'nope' (open: empty, g1, gone, stale, twice); start it by adding a bump: convoy submit "
            "--component=<name> --version=<version> --group=nope"),
        ("submit", "--group=empty", "--close"): (
            "group 'empty' has no bumps; add one (convoy submit --component=<name> --version=<version> "
            "--group=empty), then close it"),
        ("submit", "--group=twice", "--close"): (
            "two bumps of planner in group 'twice' (v2.2.0 and v2.3.0); a request bumps each component once: keep "
            "one of them"),
        ("submit", "--group=stale", "--close"): (
            f"group 'stale', bump planner v9.9.9: component 'planner': version v9.9.9 is neither a tag nor a branch "
            f"of {remote}; push the tag first, or fix --version"),
        ("submit", "--group=gone", "--close"): (
            "group 'gone', bump rudder v1.0.0: --component=rudder: no such component in manifests/manifest.yaml "
            "(known: controller, firmware, messages, planner); fix the name"),
        ("submit", "--component=messages", "--version=v1.6.0", "--group=g1"): (
            "group 'g1' already has messages v1.5.0; a group bumps each component once: leave messages v1.6.0 out, "
            "or gather it in another group"),
        ("submit", "--component=rudder", "--version=v1.0.0", "--group=g1"): (
            "--component=rudder: no such component in manifests/manifest.yaml (known: controller, firmware, "
            "messages, planner); fix the name"),
        ("submit", "--bump=planner=v9.9.9", "--group=g1"): (
            f"--bump=planner=v9.9.9: component 'planner': version v9.9.9 is neither a tag nor a branch of {remote}; "
            "push the tag first, or fix --version"),
        ("submit", "--group=g1"): (
            "--group=g1 adds a bump to the group: give --component and --version (or --bump=COMPONENT=VERSION), or "
            "pass --close to queue the group"),
        ("submit", "--group=g1", "--close", "--bump=planner=v2.2.0"): (
            "--close queues group 'g1' as it is and takes no bump (--bump); add the bump first (convoy submit ... "
            "--group=g1), then close the group"),
        ("submit", "--close"): (
            "--close needs --group=NAME, the open group to queue; for example: convoy submit --group=release-7 "
            "--close"),
        ("submit", "--group=no good", "--close"): (
            "--group=no good is not a group name (1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit); for example --group=release-7"),
        ("submit", "--bump=messages=v1.5.0", "--bump=messages=v1.6.0"): (
            "two bumps of messages in one request (v1.5.0 and v1.6.0); a request bumps each component once: keep "
            "one of them"),
        ("submit", "--component=planner", "--version=v2.2.0", "--bump=planner=v2.3.0"): (
            "two bumps of planner in one request (v2.2.0 and v2.3.0); a request bumps each component once: keep "
            "one of them"),
        ("submit", "--bump=messages"): (
            "--bump=messages is not COMPONENT=VERSION (or COMPONENT=VERSION@COMMIT); for example "
            "--bump=planner=v2.2.0"),
        ("submit", "--bump=messages=v1.5.0@"): (
            "--bump=messages=v1.5.0@ is not COMPONENT=VERSION (or COMPONENT=VERSION@COMMIT); for example "
            "--bump=planner=v2.2.0"),
        ("submit", "--bump=messages=v1.5.0@abc"): (
            "--bump=messages=v1.5.0@abc: --commit=abc is not a commit id (40 lowercase hex digits); pass the full "
            "id (git rev-parse <ref>)"),
        ("submit", "--bump=messages=1.5"): (
            "--bump=messages=1.5: --version=1.5 is not a version (expected v1.2.3 or v1.2.3-rc.1: v, then "
            "MAJOR.MINOR.PATCH, then an optional -prerelease); fix --version"),
        ("submit", "--component=messages", "--version=v1.5.0", "--bump=rudder=v1.0.0"): (
            "--bump=rudder=v1.0.0: --component=rudder: no such component in manifests/manifest.yaml (known: "
            "controller, firmware, messages, planner); fix the name"),
        ("submit", "--bump=messages=v1.5.0", "--configuration=rover"): (
            "--configuration belongs to the bump of --component and --version; give that bump with them (a --bump "
            "takes only COMPONENT=VERSION or COMPONENT=VERSION@COMMIT)"),
    }
    for args, message in cases.items():
        assert error(repo, *args) == message, args
    assert queue_state(repo) == before  # nothing was queued, no group changed


def test_submit_help_names_the_group_flags(repo):
    run = repo.convoy("submit", "--help")
    assert run.code == 0, run
    assert "--bump=messages=v2.0.0 --bump=planner=v3.0.0" in run.out
    assert "convoy submit --group=release-7 --close" in run.out
