"""convoy.changes: a component's commits between two pins, from real git
repositories (file:// remotes) cached under tmp_path; compare links; the
grouping of pin changes; the text and Markdown renderings, as exact text."""

from __future__ import annotations

import subprocess
import threading

import pytest

from convoy.changes import (ComponentChange, ComponentLog, Commit, PinSide, append_changelog, changelog_entry,
                            changes_for, compare_link, component_log, markdown, md_escape, text_section)
from convoy.release import pin_changes

OLD, NEW = "1a2b3c4d5e6f" + "0" * 28, "5e6f7a8b9c0d" + "f" * 28
SHA_A, SHA_B = "a" * 64, "b" * 64
MALICIOUS = "[x](javascript:alert(1)) <script>"


@pytest.fixture
def messages(git_repo):
    """A component repository: v1.4.0, three commits (by two authors), v1.5.0."""
    repo = git_repo("messages", {"README": "messages\n"})
    repo.tag("v1.4.0")
    repo.commit({"a.py": "1\n"}, "Add battery field")
    repo.git("-c", "user.name=Ada Lovelace", "commit", "--quiet", "--allow-empty", "--author",
             "Ada Lovelace <ada@example.com>", "-m", "Speak protocol 3")
    repo.commit({"b.py": "2\n"}, "Fix the clock")
    repo.tag("v1.5.0")
    return repo


def _sha(repo, ref):
    return repo.rev_parse(ref)


# -- component_log -----------------------------------------------------------------------


def test_commits_between_two_tags_newest_first(messages, tmp_path):
    log = component_log(messages.url, _sha(messages, "v1.4.0"), _sha(messages, "v1.5.0"), cache_dir=tmp_path / "c")

    assert [(c.subject, c.author) for c in log.commits] == [
        ("Fix the clock", "Convoy Test"), ("Speak protocol 3", "Ada Lovelace"), ("Add battery field", "Convoy Test")]
    assert log.commits[0] == Commit(_sha(messages, "v1.5.0"), _sha(messages, "v1.5.0")[:12], "Fix the clock",
                                    "Convoy Test")
    assert (log.truncated, log.note, log.problem) == (0, None, None)


def test_without_an_old_pin_just_the_new_commit(messages, tmp_path):
    log = component_log(messages.url, None, _sha(messages, "v1.4.0"), cache_dir=tmp_path / "c")
    assert [c.subject for c in log.commits] == ["initial"]
    assert log.truncated == 0


def test_the_cache_is_reused_and_a_new_commit_fetched_later(messages, tmp_path):
    cache = tmp_path / "c"
    old, new = _sha(messages, "v1.4.0"), _sha(messages, "v1.5.0")
    component_log(messages.url, old, new, cache_dir=cache)
    [git_dir] = cache.glob("*.git")
    objects = sorted(p for p in (git_dir / "objects").rglob("*") if p.is_file())

    # The remote gone: the cache alone answers, and fetches nothing.
    hidden = messages.path.with_name("hidden")
    messages.path.rename(hidden)
    again = component_log(messages.url, old, new, cache_dir=cache)
    assert (len(again.commits), again.problem) == (3, None)
    assert sorted(p for p in (git_dir / "objects").rglob("*") if p.is_file()) == objects
    hidden.rename(messages.path)

    latest = messages.commit({"c.py": "3\n"}, "Add a field")
    log = component_log(messages.url, new, latest, cache_dir=cache)
    assert [c.subject for c in log.commits] == ["Add a field"]
    assert list(cache.glob("*.git")) == [git_dir]


def test_concurrent_calls_share_the_cache(messages, tmp_path):
    old, new = _sha(messages, "v1.4.0"), _sha(messages, "v1.5.0")
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        component_log(messages.url, old, new, cache_dir=tmp_path / "c"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [(len(r.commits), r.problem) for r in results] == [(3, None)] * 4


def test_an_unreachable_remote_is_a_problem_line(tmp_path):
    remote = (tmp_path / "nowhere.git").as_uri()
    log = component_log(remote, OLD, NEW, cache_dir=tmp_path / "c")
    assert log.commits == ()
    assert log.problem.startswith(f"commits unavailable: git fetch from {remote} failed: ")
    assert "\n" not in log.problem


def test_a_refused_remote_is_a_problem_line_and_never_run(tmp_path):
    log = component_log("ext::sh -c touch% /tmp/pwned", None, NEW, cache_dir=tmp_path / "c")
    assert log.problem == ("commits unavailable: the remote ext::sh -c touch% /tmp/pwned uses a git remote "
                           "helper ('ext::'), which can run commands")


def test_a_commit_not_on_the_remote(messages, tmp_path):
    log = component_log(messages.url, _sha(messages, "v1.4.0"), NEW, cache_dir=tmp_path / "c")
    assert (log.commits, log.problem) == ((), f"commits unavailable: commit {NEW[:12]} is not on {messages.url}")


def test_truncated_at_the_limit(messages, tmp_path):
    log = component_log(messages.url, _sha(messages, "v1.4.0"), _sha(messages, "v1.5.0"), cache_dir=tmp_path / "c",
                        limit=2)
    assert [c.subject for c in log.commits] == ["Fix the clock", "Speak protocol 3"]
    assert log.truncated == 1


def test_a_downgrade_is_noted(messages, tmp_path):
    old, new = _sha(messages, "v1.5.0"), _sha(messages, "v1.4.0")
    log = component_log(messages.url, old, new, cache_dir=tmp_path / "c", old_name="v1.5.0", new_name="v1.4.0")
    assert log.commits == ()
    assert log.note == "v1.4.0 is not a descendant of v1.5.0; a downgrade or rewritten history"


def test_rewritten_history_is_noted(messages, tmp_path):
    old = _sha(messages, "v1.5.0")
    messages.git("reset", "--quiet", "--hard", "v1.4.0")
    new = messages.commit({"x.py": "x\n"}, "Rewritten")
    log = component_log(messages.url, old, new, cache_dir=tmp_path / "c")
    assert [c.subject for c in log.commits] == ["Rewritten"]
    assert log.note == f"{new[:12]} is not a descendant of {old[:12]}; a downgrade or rewritten history"


def test_a_server_that_refuses_commits_by_id_is_fetched_by_branches_and_tags(messages, tmp_path, monkeypatch):
    # Protocol v0 serves only the commits its refs point at (unless uploadpack.allow*SHA1InWant).
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "protocol.version")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "0")
    middle = _sha(messages, "v1.5.0~1")
    log = component_log(messages.url, _sha(messages, "v1.4.0"), middle, cache_dir=tmp_path / "c")
    assert [c.subject for c in log.commits] == ["Speak protocol 3", "Add battery field"]
    [git_dir] = (tmp_path / "c").glob("*.git")
    refs = subprocess.run(["git", f"--git-dir={git_dir}", "for-each-ref", "--format=%(refname)"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert refs == ["refs/remotes/origin/main", "refs/tags/v1.4.0", "refs/tags/v1.5.0"]


def test_not_a_full_commit_id_is_never_fetched(messages, tmp_path):
    log = component_log(messages.url, None, "HEAD", cache_dir=tmp_path / "c")
    assert log.problem == "commits unavailable: 'HEAD' is not a full commit id"


def test_a_long_subject_is_cut(git_repo, tmp_path):
    repo = git_repo("long")
    sha = repo.commit({}, "x" * 500)
    [commit] = component_log(repo.url, None, sha, cache_dir=tmp_path / "c").commits
    assert commit.subject == "x" * 199 + "…"


# -- compare links -----------------------------------------------------------------------


@pytest.mark.parametrize("remote, link", [
    ("https://github.com/o/r", f"https://github.com/o/r/compare/{OLD}...{NEW}"),
    ("https://github.com/o/r.git", f"https://github.com/o/r/compare/{OLD}...{NEW}"),
    ("git@github.com:o/r.git", f"https://github.com/o/r/compare/{OLD}...{NEW}"),
    ("ssh://git@github.com/o/r", f"https://github.com/o/r/compare/{OLD}...{NEW}"),
    ("https://gitlab.com/group/sub/r.git", f"https://gitlab.com/group/sub/r/-/compare/{OLD}...{NEW}"),
    ("git@gitlab.com:group/sub/r.git", f"https://gitlab.com/group/sub/r/-/compare/{OLD}...{NEW}"),
    ("ssh://git@gitlab.com/group/r", f"https://gitlab.com/group/r/-/compare/{OLD}...{NEW}"),
    ("file:///srv/git/r.git", None),
    ("/srv/git/r.git", None),
    ("https://git.example.com/o/r.git", None),
    ("https://user:token@github.com/o/r.git", None),
    ("https://token@github.com/o/r.git", None),
    ("ssh://git:pw@github.com/o/r", None),
    ("https://github.com/o/r/extra", None),
    ("https://github.com/o", None),
    ("https://github.com/o/r?x=1", None),
    ("https://github.com/o/<script>", None),
    ("https://github.com/o/..", None),
    ("https://github.com/o/r%2e", None),
])
def test_compare_link(remote, link):
    assert compare_link(remote, OLD, NEW) == link


def test_no_compare_link_for_odd_refs():
    assert compare_link("https://github.com/o/r", "a..b", NEW) is None
    assert compare_link("https://github.com/o/r", OLD, "-x") is None


# -- changes_for -------------------------------------------------------------------------


def _lock(**configurations) -> dict:
    return {"configurations": {name: {"components": comps} for name, comps in configurations.items()}}


def _git(repo, ref, version):
    return {"source": "git", "remote": repo.url, "version": version, "commit": _sha(repo, ref)}


def test_changes_group_configurations_and_fetch_each_remote_once(messages, git_repo, tmp_path):
    planner = git_repo("planner")
    planner.tag("v2.1.0")
    planner.commit({"p": "1\n"}, "Plan faster")
    planner.tag("v2.2.0")
    archive = {"source": "archive", "version": "1.3", "url": "https://example.com/zlib-1.3.tar.gz", "sha256": SHA_A}
    local = {"source": "local", "version": "0.1.0", "path": "third_party/tools"}
    old = _lock(rover={"messages": _git(messages, "v1.4.0", "v1.4.0"), "planner": _git(planner, "v2.1.0", "v2.1.0"),
                       "zlib": archive},
                drone={"messages": _git(messages, "v1.4.0", "v1.4.0"), "zlib": archive})
    new = _lock(rover={"messages": _git(messages, "v1.5.0", "v1.5.0"), "planner": _git(planner, "v2.2.0", "v2.2.0"),
                       "zlib": dict(archive, version="1.3.1", url="https://example.com/zlib-1.3.1.tar.gz",
                                    sha256=SHA_B), "tools": local},
                drone={"messages": _git(messages, "v1.4.0", "v1.4.0"), "zlib": archive})
    new["configurations"]["drone"]["components"]["messages"] = _git(messages, "v1.5.0", "v1.5.0")

    changes = changes_for(pin_changes(old, new), new, old, cache_dir=tmp_path / "c")

    assert [(c.component, c.configurations, c.old_version, c.new_version, c.source) for c in changes] == [
        ("messages", ("drone", "rover"), "v1.4.0", "v1.5.0", "git"),
        ("planner", ("rover",), "v2.1.0", "v2.2.0", "git"),
        ("tools", ("rover",), None, "0.1.0", "local"),
        ("zlib", ("rover",), "1.3", "1.3.1", "archive"),
    ]
    assert len(list((tmp_path / "c").glob("*.git"))) == 2
    msgs, plan, tools, zlib = changes
    assert [c.subject for c in msgs.log.commits] == ["Fix the clock", "Speak protocol 3", "Add battery field"]
    assert [c.subject for c in plan.log.commits] == ["Plan faster"]
    assert msgs.compare is None  # a file:// remote
    assert (msgs.old_pin, msgs.new_pin) == (_sha(messages, "v1.4.0"), _sha(messages, "v1.5.0"))
    assert (zlib.log, zlib.new.urls, zlib.old.sha256, zlib.new.sha256) == (
        None, ("https://example.com/zlib-1.3.1.tar.gz",), SHA_A, SHA_B)
    assert (tools.log, tools.new.path, tools.new_pin) == (None, "third_party/tools", "third_party/tools")

    assert text_section(changes) == [
        "messages v1.4.0 -> v1.5.0 (drone, rover):",
        *(f"  {c.short}  {c.subject} ({c.author})" for c in msgs.log.commits),
        "planner v2.1.0 -> v2.2.0 (rover):",
        f"  {plan.log.commits[0].short}  Plan faster (Convoy Test)",
        "tools (none) -> 0.1.0 (rover):",
        "  local path third_party/tools",
        "zlib 1.3 -> 1.3.1 (rover):",
        f"  archive https://example.com/zlib-1.3.1.tar.gz sha256 {SHA_B}",
        f"  was archive https://example.com/zlib-1.3.tar.gz sha256 {SHA_A}",
    ]


def test_a_new_git_component_lists_its_commit_and_a_removed_one_nothing(messages, tmp_path):
    old = _lock(rover={"gone": {"source": "local", "version": "1", "path": "x"}})
    new = _lock(rover={"messages": _git(messages, "v1.4.0", "v1.4.0")})
    changes = changes_for(pin_changes(old, new), new, old, cache_dir=tmp_path / "c")
    assert text_section(changes) == [
        "gone 1 -> (none) (rover):", "  removed", "  was local path x",
        "messages (none) -> v1.4.0 (rover):", f"  {_sha(messages, 'v1.4.0')[:12]}  initial (Convoy Test)",
    ]


def test_an_unreachable_remote_still_makes_notes(tmp_path):
    remote = (tmp_path / "gone.git").as_uri()
    old = _lock(rover={"m": {"source": "git", "remote": remote, "version": "v1", "commit": OLD}})
    new = _lock(rover={"m": {"source": "git", "remote": remote, "version": "v2", "commit": NEW}})
    [change] = changes_for(pin_changes(old, new), new, old, cache_dir=tmp_path / "c")
    lines = text_section([change])
    assert lines[0] == "m v1 -> v2 (rover):"
    assert lines[1].startswith(f"  commits unavailable: git fetch from {remote} failed: ")
    assert len(lines) == 2


def test_same_version_new_commit_shows_the_pins(messages, tmp_path):
    old = _lock(rover={"messages": _git(messages, "v1.4.0", "v1.5.0")})
    new = _lock(rover={"messages": _git(messages, "v1.5.0", "v1.5.0")})
    [change] = changes_for(pin_changes(old, new), new, old, cache_dir=tmp_path / "c")
    old_short, new_short = _sha(messages, "v1.4.0")[:12], _sha(messages, "v1.5.0")[:12]
    assert text_section([change])[0] == f"messages v1.5.0 ({old_short}) -> v1.5.0 ({new_short}) (rover):"


def test_a_missing_commit_spoils_only_its_own_component(messages, tmp_path):
    one = {"source": "git", "remote": messages.url, "version": "v1", "commit": _sha(messages, "v1.4.0")}
    old = _lock(rover={"a": one, "b": one})
    new = _lock(rover={"a": dict(one, version="v2", commit=_sha(messages, "v1.5.0")),
                       "b": dict(one, version="v2", commit=NEW)})
    a, b = changes_for(pin_changes(old, new), new, old, cache_dir=tmp_path / "c")
    assert (len(a.log.commits), a.log.problem) == (3, None)
    assert b.log.problem == f"commits unavailable: commit {NEW[:12]} is not on {messages.url}"


def test_a_moved_remote_lists_the_new_commit(messages, git_repo, tmp_path):
    elsewhere = git_repo("elsewhere")
    old = _lock(rover={"messages": _git(elsewhere, "HEAD", "v1.4.0")})
    new = _lock(rover={"messages": _git(messages, "v1.5.0", "v1.5.0")})
    [change] = changes_for(pin_changes(old, new), new, old, cache_dir=tmp_path / "c")
    assert [c.subject for c in change.log.commits] == ["Fix the clock"]
    assert change.log.note == f"the remote moved from {elsewhere.url}; only the new commit is shown"


def test_a_new_version_of_the_same_commit(messages, tmp_path):
    old = _lock(rover={"messages": _git(messages, "v1.5.0", "v1.5.0")})
    new = _lock(rover={"messages": _git(messages, "v1.5.0", "v1.5.1")})
    [change] = changes_for(pin_changes(old, new), new, old, cache_dir=tmp_path / "c")
    assert text_section([change]) == ["messages v1.5.0 -> v1.5.1 (rover):", "  (the same commit)"]


# -- rendering ---------------------------------------------------------------------------


def _change(**log) -> ComponentChange:
    remote = "https://github.com/o/messages.git"
    return ComponentChange(
        "messages", ("drone", "rover"),
        PinSide("git", "v1.4.0", OLD, remote=remote),
        PinSide("git", "v1.5.0", NEW, remote=remote),
        ComponentLog(remote, OLD, NEW, **log), compare_link(remote, OLD, NEW))


def test_text_section_of_an_untrusted_subject():
    change = _change(commits=(Commit(NEW, NEW[:12], "Evil\x1b[31m\nsubject", "Mallory\u202e"),), truncated=4)
    assert text_section([change]) == [
        "messages v1.4.0 -> v1.5.0 (drone, rover):",
        "  5e6f7a8b9c0d  Evil\\x1b[31m\\nsubject (Mallory\\u202e)",
        "  ... and 4 older commits",
        f"  compare: https://github.com/o/messages/compare/{OLD}...{NEW}",
    ]


def test_markdown_notes():
    changes = [
        _change(commits=(Commit(NEW, NEW[:12], MALICIOUS, "Ada *Lovelace*"),), note="a note"),
        ComponentChange("zlib", ("rover",), PinSide("archive", "1.3", SHA_A, urls=("https://x.org/z-1.3.tgz",),
                                                     sha256=SHA_A),
                        PinSide("archive", "1.3.1", SHA_B, urls=("https://u:secret@x.org/z_1.tgz",), sha256=SHA_B)),
    ]
    text = markdown("v2026.11.3", "messages v1.4.0 -> v1.5.0 (request 8, by ci)", changes,
                    requests_lines=["request 8 by <b>ci</b>:", "  messages v1.4.0 -> v1.5.0, commit 5e6f7a8b9c0d"],
                    tests_lines=["build: 2 tasks passed"], previous="v2026.11.2")
    assert text == f"""# v2026.11.3

messages v1.4.0 -> v1.5.0 (request 8, by ci)

## Requests

- request 8 by \\<b>ci\\</b>:
  - messages v1.4.0 -> v1.5.0, commit 5e6f7a8b9c0d

## Components

Changes since v2026.11.2.

### messages v1.4.0 -> v1.5.0 (drone, rover)

- `5e6f7a8b9c0d` \\[x\\](javascript:alert(1)) \\<script> — Ada \\*Lovelace\\*
- note: a note
- compare: <https://github.com/o/messages/compare/{OLD}...{NEW}>

### zlib 1.3 -> 1.3.1 (rover)

- archive `https://u:***@x.org/z_1.tgz` sha256 `{SHA_B}`
- was archive `https://x.org/z-1.3.tgz` sha256 `{SHA_A}`

## Tests

- build: 2 tasks passed
"""


def test_markdown_without_requests_or_previous_release():
    text = markdown("v1", "first", [], requests_lines=[], tests_lines=[], previous=None)
    assert text == "# v1\n\nfirst\n\n## Components\n\nChanges since the start.\n\n" \
                   "No component changed.\n\n" \
                   "## Tests\n\nNone.\n"


@pytest.mark.parametrize("text, escaped", [
    (MALICIOUS, "\\[x\\](javascript:alert(1)) \\<script>"),
    ("- item", "\\- item"),
    ("> quote -> b", "\\> quote -> b"),
    ("+ item", "\\+ item"),
    ("1. item", "1\\. item"),
    ("# title | a `b` _c_ \\ &amp;", "\\# title \\| a \\`b\\` \\_c\\_ \\\\ \\&amp;"),
    ("two\nlines", "two\\\\nlines"),
])
def test_md_escape(text, escaped):
    assert md_escape(text) == escaped


def test_a_code_span_holding_backticks():
    change = ComponentChange("z", ("r",), None, PinSide("archive", "1", SHA_A, urls=("https://x.org/`a``b",),
                                                        sha256=SHA_A))
    assert "- archive ```https://x.org/`a``b``` sha256" in changelog_entry("h", [change])


def test_changelog_created_then_appended(tmp_path):
    path = tmp_path / "CHANGELOG.md"
    first = changelog_entry("v2026.11.1", [_change(commits=(Commit(NEW, NEW[:12], "First", "Ada"),))])
    append_changelog(path, first)
    append_changelog(path, changelog_entry("v2026.11.2", []))
    assert path.read_text() == f"""# Changelog

## v2026.11.1

### messages v1.4.0 -> v1.5.0 (drone, rover)

- `5e6f7a8b9c0d` First — Ada
- compare: <https://github.com/o/messages/compare/{OLD}...{NEW}>

## v2026.11.2

No component changed.
"""


def test_a_changelog_without_a_final_newline(tmp_path):
    path = tmp_path / "CHANGELOG.md"
    path.write_text("# Changelog\n\n## old")
    append_changelog(path, "## new")
    assert path.read_text() == "# Changelog\n\n## old\n\n## new\n"


def test_an_unwritable_cache_is_a_problem_line(messages, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = component_log(messages.url, None, _sha(messages, "v1.4.0"), cache_dir=blocker / "c")
    assert log.problem.startswith(f"commits unavailable: cannot use the cache {blocker / 'c'} (")

