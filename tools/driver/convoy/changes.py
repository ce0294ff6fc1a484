"""What a release changed inside each component: its commits, its archives, its paths.

A lock says which commit of a component a release pins; the release notes
say what that commit brings since the previous release. The commits come
from the component's own remote, fetched into a bare cache repository (one
per remote under `cache_dir`, named by a hash of the URL, kept between
releases and guarded by a file lock, so that two drivers share it safely):

    log = component_log("https://github.com/o/messages.git", old_commit, new_commit, cache_dir=cache)
    log.commits      # (Commit(sha, short, subject, author), ...), newest first, at most `limit`
    log.truncated    # how many older ones were left out
    log.note         # "v1.5.0 is not a descendant of v1.4.0; a downgrade or rewritten history"
    log.problem      # "commits unavailable: git fetch from ... failed: ..." (never an exception)
    compare_link("git@github.com:o/messages.git", old, new)
    # -> "https://github.com/o/messages/compare/<old>...<new>" (GitHub, GitLab; else None)

`changes_for(pins.pin_changes(old, new), new, old, cache_dir=...)`
groups the pin changes into one ComponentChange per component move (the
same move in rover and drone is one entry naming both), fetching each
remote once; `text_section` renders them for the annotated tag message:

    messages v1.4.0 -> v1.5.0 (drone, rover):
      3f2a1b4c5d6e  Add battery field (Ada Lovelace)
      compare: https://github.com/o/messages/compare/<old>...<new>

and `markdown` for NOTES.md ("# <tag>", "## Requests", "## Components" with
"### messages v1.4.0 -> v1.5.0 (drone, rover)" and "- `3f2a1b4c5d6e` Add
battery field — Ada Lovelace", "## Tests"); `changelog_entry` and
`append_changelog` keep a CHANGELOG.md. Commit subjects, author names,
remotes and URLs are untrusted: they are only ever printed, through
untrusted.printable, and backslash-escaped in Markdown (`md_escape`), so a
subject cannot inject a link or HTML. URLs are shown without a password.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

from convoy import fsutil
from convoy import gitutil
from convoy import untrusted
from convoy.lock import configuration_entries

if TYPE_CHECKING:
    from convoy.pins import PinChange

SHORT = 12  # characters of a commit id shown
DEFAULT_LIMIT = 200  # commits listed per component
DEFAULT_TIMEOUT = 60.0  # seconds, per git call
MAX_TEXT = 200  # characters of a subject or an author name kept
LOCK_WAIT = 5  # timeouts to wait for a cache another process holds (it runs a few git calls)
_UNAVAILABLE = "commits unavailable"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a forge's owner, group or repository; a ref in a link
_FORGES = {"github.com": ("{base}/compare/{old}...{new}", 2, 2),  # host: (link, min and max path segments)
           "gitlab.com": ("{base}/-/compare/{old}...{new}", 2, 20)}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<#|&])")  # and a leading >, - or +


@dataclass(frozen=True)
class Commit:
    """One commit of a component: its id, the id cut to SHORT characters, and
    its subject and author name as git printed them (untrusted)."""

    sha: str
    short: str
    subject: str
    author: str


@dataclass(frozen=True)
class ComponentLog:
    """A component's commits after `old` up to `new` (`git log old..new`),
    newest first; just `new` when `old` is None. `problem` (one line) says
    why there are none to show."""

    remote: str
    old: Optional[str]
    new: str
    commits: tuple[Commit, ...] = ()
    truncated: int = 0  # commits left out beyond the limit (the oldest)
    note: Optional[str] = None
    problem: Optional[str] = None


@dataclass(frozen=True)
class PinSide:
    """One side (before or after) of a component's move, from its lock entry."""

    source: Optional[str]  # "git", "archive" or "local" (None: not in the lock)
    version: Optional[str]
    pin: Optional[str]  # commit, sha256 or path
    remote: Optional[str] = None
    urls: tuple[str, ...] = ()
    sha256: Optional[str] = None
    path: Optional[str] = None


@dataclass(frozen=True)
class ComponentChange:
    """A component's move between two releases, in every configuration where
    it moved identically. `old` is None for a new component, `new` for a
    removed one; `log` and `compare` are set for a git component."""

    component: str
    configurations: tuple[str, ...]
    old: Optional[PinSide]
    new: Optional[PinSide]
    log: Optional[ComponentLog] = None
    compare: Optional[str] = None

    @property
    def old_version(self) -> Optional[str]:
        return self.old.version if self.old else None

    @property
    def new_version(self) -> Optional[str]:
        return self.new.version if self.new else None

    @property
    def old_pin(self) -> Optional[str]:
        return self.old.pin if self.old else None

    @property
    def new_pin(self) -> Optional[str]:
        return self.new.pin if self.new else None

    @property
    def source(self) -> Optional[str]:
        """The source now (before, for a removed component)."""
        return (self.new or self.old).source if (self.new or self.old) else None


# -- commits from a component's remote ------------------------------------------------------


def component_log(remote: str, old: Optional[str], new: str, *, cache_dir: Path, limit: int = DEFAULT_LIMIT,
                  timeout: float = DEFAULT_TIMEOUT, old_name: Optional[str] = None,
                  new_name: Optional[str] = None) -> ComponentLog:
    """The commits of `remote` after `old` up to `new` (full commit ids),
    newest first, at most `limit` of them; fetched into the cache under
    `cache_dir` unless it has them already. Never raises for a remote that
    cannot be read or a commit it lacks: the log's `problem` says so.
    `old_name` and `new_name` (versions) name the commits in its note."""
    with _opened(remote, cache_dir, timeout) as (mirror, problem):
        if mirror is None:
            return ComponentLog(remote, old, new, problem=problem)
        fetch_problem = mirror.ensure([c for c in (old, new) if c])
        return mirror.log(old, new, limit, fetch_problem, old_name, new_name)


class _Mirror:
    """The bare cache repository of one remote, while its file lock is held."""

    def __init__(self, remote: str, git_dir: Path, timeout: float) -> None:
        self.remote = remote
        self.git_dir = git_dir
        self.timeout = timeout
        self.shown = _shown(remote)

    def git(self, *args: str, check: bool = True, timeout: Optional[float] = None) -> gitutil.GitResult:
        return gitutil.run([f"--git-dir={self.git_dir}", *args], timeout=timeout or self.timeout, check=check)

    def has(self, sha: str) -> bool:
        return self.git("cat-file", "-e", "--end-of-options", f"{sha}^{{commit}}", check=False).returncode == 0

    def ensure(self, shas: Sequence[str]) -> Optional[str]:
        """Fetches those of `shas` the cache lacks: by id (kept under
        refs/convoy/pins/), or, when the server refuses that, every branch
        and tag. Returns why the fetch failed, or None."""
        missing = sorted({s for s in shas if untrusted.COMMIT_ID.fullmatch(s) and not self.has(s)})
        if not missing:
            return None
        deadline = time.monotonic() + self.timeout
        try:
            self.git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", self.remote,
                     *(f"+{sha}:refs/convoy/pins/{sha}" for sha in missing))
            return None
        except gitutil.GitError:
            pass  # a server may refuse a commit by id, or not have one of them: try its branches and tags
        try:
            self.git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", self.remote,
                     "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*",
                     timeout=max(1.0, deadline - time.monotonic()))
        except gitutil.GitError as e:
            return f"git fetch from {self.shown} failed: {untrusted.printable(e.detail)}"
        return None

    def log(self, old: Optional[str], new: str, limit: int, fetch_problem: Optional[str],
            old_name: Optional[str] = None, new_name: Optional[str] = None) -> ComponentLog:
        """The log of old..new from the cache (ensure() first)."""
        for sha in (new, old):
            if sha and not untrusted.COMMIT_ID.fullmatch(sha):
                return ComponentLog(self.remote, old, new, problem=f"{_UNAVAILABLE}: '{untrusted.printable(sha)}' "
                                    "is not a full commit id")
            if sha and not self.has(sha):
                problem = fetch_problem or f"commit {sha[:SHORT]} is not on {self.shown}"
                return ComponentLog(self.remote, old, new, problem=f"{_UNAVAILABLE}: {problem}")
        try:
            if old is None:
                total, revision = 1, new
            else:
                revision = f"{old}..{new}"
                total = int(self.git("rev-list", "--count", "--end-of-options", revision).stdout.strip() or 0)
            commits = self._commits(revision, min(limit, total)) if limit > 0 and total else ()
            note = None
            if old is not None and old != new and self.git(
                    "merge-base", "--is-ancestor", "--end-of-options", old, new, check=False).returncode != 0:
                note = (f"{untrusted.printable(new_name or new[:SHORT])} is not a descendant of "
                        f"{untrusted.printable(old_name or old[:SHORT])}; a downgrade or rewritten history")
        except (gitutil.GitError, ValueError) as e:
            detail = e.detail if isinstance(e, gitutil.GitError) else str(e)
            return ComponentLog(self.remote, old, new, problem=f"{_UNAVAILABLE}: git log failed: "
                                f"{untrusted.printable(detail)}")
        return ComponentLog(self.remote, old, new, commits, max(0, total - len(commits)), note)

    def _commits(self, revision: str, count: int) -> tuple[Commit, ...]:
        out = self.git("log", "-z", "--no-color", "--no-show-signature", "--encoding=UTF-8",
                       "--format=%H%x00%an%x00%s", f"--max-count={count}", "--end-of-options", revision).stdout
        fields = out.split("\0")
        return tuple(Commit(sha, sha[:SHORT], _cut(subject, MAX_TEXT), _cut(author, MAX_TEXT))
                     for sha, author, subject in zip(fields[0::3], fields[1::3], fields[2::3]) if sha)


@contextlib.contextmanager
def _opened(remote: str, cache_dir: Path, timeout: float) -> Iterator[tuple[Optional[_Mirror], Optional[str]]]:
    """(the remote's cache repository, locked and initialized, None) or
    (None, why it cannot be used)."""
    problem = untrusted.remote_problem(remote)
    if problem:
        yield None, f"{_UNAVAILABLE}: the remote {_shown(remote)} {problem}"
        return
    name = hashlib.sha256(remote.encode("utf-8")).hexdigest()[:32]
    git_dir = Path(cache_dir).absolute() / f"{name}.git"
    try:
        git_dir.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(git_dir.parent / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        yield None, f"{_UNAVAILABLE}: cannot use the cache {cache_dir} ({e.strerror})"
        return
    try:
        deadline = time.monotonic() + LOCK_WAIT * timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    yield None, f"{_UNAVAILABLE}: the cache {git_dir} stayed locked for {LOCK_WAIT * timeout:g} s"
                    return
                time.sleep(0.05)
        if not (git_dir / "HEAD").is_file():
            try:
                gitutil.run(["init", "--bare", "--quiet", "--", str(git_dir)], timeout=timeout)
            except gitutil.GitError as e:
                yield None, f"{_UNAVAILABLE}: cannot create the cache {git_dir} ({untrusted.printable(e.detail)})"
                return
        yield _Mirror(remote, git_dir, timeout), None
    finally:
        os.close(fd)  # releases the flock


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[:most - 1] + "…"


def _shown(url: str) -> str:
    """A remote or URL fit for a message: no password, no control character."""
    return untrusted.printable(untrusted.redact_userinfo(url))


# -- compare links ------------------------------------------------------------------------


def compare_link(remote: str, old: str, new: str) -> Optional[str]:
    """The forge's page comparing `old` with `new` (commit ids or tags) for
    a GitHub or GitLab remote (https://, ssh://git@ or git@host:), else
    None; None too for a remote with credentials or odd characters."""
    if untrusted.remote_problem(remote) or not all(_NAME.fullmatch(r) and ".." not in r for r in (old, new)):
        return None
    match = (re.fullmatch(r"https://([A-Za-z0-9.-]+)/([^?#@:]+)", remote)
             or re.fullmatch(r"ssh://git@([A-Za-z0-9.-]+)/([^?#@:]+)", remote)
             or re.fullmatch(r"git@([A-Za-z0-9.-]+):([^?#@:]+)", remote))
    if match is None or match.group(1).lower() not in _FORGES:
        return None
    host = match.group(1).lower()
    link, fewest, most = _FORGES[host]
    path = match.group(2).lstrip("/") if remote.startswith("ssh://") else match.group(2)
    path = path.removesuffix("/").removesuffix(".git")
    segments = path.split("/")
    if not fewest <= len(segments) <= most or not all(_NAME.fullmatch(s) for s in segments):
        return None
    return link.format(base=f"https://{host}/{'/'.join(segments)}", old=old, new=new)


# -- pin changes into component changes -----------------------------------------------------


def changes_for(pin_changes: Sequence["PinChange"], new_lock: Any, old_lock: Optional[Any], *, cache_dir: Path,
                limit: int = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT) -> list[ComponentChange]:
    """One ComponentChange per distinct component move of `pin_changes`
    (pins.pin_changes(old_lock, new_lock)), sorted by component, with the
    commits of every git one: each remote is fetched once, whatever number
    of components and configurations use it. Locks are Lock objects or
    their parsed JSON; old_lock None: no previous release."""
    before = configuration_entries(old_lock) if old_lock is not None else {}
    after = configuration_entries(new_lock)
    moves: dict[tuple[str, Optional[PinSide], Optional[PinSide]], list[str]] = {}
    for change in pin_changes:
        old = _pin_side(before.get(change.configuration, {}).get(change.component), change.old_version, change.old_pin)
        new = _pin_side(after.get(change.configuration, {}).get(change.component), change.new_version, change.new_pin)
        moves.setdefault((change.component, old, new), []).append(change.configuration)
    wanted: dict[str, dict[tuple[Optional[str], str], tuple[Optional[str], Optional[str]]]] = {}
    for _, old, new in moves:  # remote -> {(old commit, new commit): their versions}
        if _is_git(new):
            wanted.setdefault(new.remote, {})[(_log_base(old, new), new.pin)] = (old and old.version, new.version)
    logs: dict[tuple[str, Optional[str], str], ComponentLog] = {}
    for remote, pairs in wanted.items():
        with _opened(remote, cache_dir, timeout) as (mirror, problem):
            fetch_problem = mirror.ensure([c for pair in pairs for c in pair if c]) if mirror else None
            for (base, commit), names in pairs.items():
                logs[(remote, base, commit)] = (mirror.log(base, commit, limit, fetch_problem, *names) if mirror
                                                else ComponentLog(remote, base, commit, problem=problem))
    result = []
    for (component, old, new), configurations in moves.items():
        log = compare = None
        if _is_git(new):
            base = _log_base(old, new)
            log = logs[(new.remote, base, new.pin)]
            if old is not None and old.source == "git" and old.remote != new.remote:
                moved = f"the remote moved from {_shown(old.remote or '?')}; only the new commit is shown"
                log = dataclasses.replace(log, note=f"{log.note}; {moved}" if log.note else moved)
            compare = compare_link(new.remote, base, new.pin) if base and base != new.pin else None
        result.append(ComponentChange(component, tuple(sorted(configurations)), old, new, log, compare))
    return sorted(result, key=lambda c: (c.component, c.configurations))


def _pin_side(entry: Optional[dict[str, Any]], version: Optional[str], pin: Optional[str]) -> Optional[PinSide]:
    if entry is None and version is None and pin is None:
        return None
    entry = entry or {}
    urls = entry.get("urls") or ([entry["url"]] if entry.get("url") else [])
    field = {key: None if entry.get(key) is None else str(entry[key]) for key in ("source", "remote", "sha256", "path")}
    return PinSide(field["source"], version, pin, remote=field["remote"], urls=tuple(str(u) for u in urls),
                   sha256=field["sha256"], path=field["path"])


def _is_git(side: Optional[PinSide]) -> bool:
    return side is not None and side.source == "git" and bool(side.remote) and bool(side.pin)


def _log_base(old: Optional[PinSide], new: PinSide) -> Optional[str]:
    """The commit the log of `new` starts after: the old commit on the same remote."""
    return old.pin if old is not None and old.source == "git" and old.remote == new.remote else None


# -- rendering ------------------------------------------------------------------------------


def text_section(changes: Sequence[ComponentChange]) -> list[str]:
    """Plain text lines for the annotated tag message: per change a heading
    ("messages v1.4.0 -> v1.5.0 (drone, rover):") and its indented details."""
    lines = []
    for change in changes:
        lines += [f"{_heading(change, untrusted.printable)}:", *(f"  {line}" for line in _details(change, False))]
    return lines


def markdown(tag: str, title: str, changes: Sequence[ComponentChange], *, requests_lines: Sequence[str],
             tests_lines: Sequence[str], previous: Optional[str], held_lines: Sequence[str] = ()) -> str:
    """NOTES.md of release `tag`: its title, the requests it ships, what
    changed in each component since `previous` (None: the start), its
    tests, and its flaky and quarantined ones (`held_lines`, convoy.flaky).
    Lines indented by two spaces nest under the line before."""
    since = f"Changes since {_md_inline(previous)}." if previous else "Changes since the start."
    components = [_md_change(c) for c in changes] or ["No component changed."]
    requests = ["## Requests", _md_list(requests_lines)] if requests_lines else []  # one request: the title
    parts = [f"# {_md_inline(tag)}", md_escape(title), *requests,
             "## Components", since, *components, "## Tests", _md_list(tests_lines),
             *(["## Flaky and quarantined tests", _md_list(held_lines)] if held_lines else [])]
    return "\n\n".join(parts) + "\n"


def changelog_entry(heading: str, changes: Sequence[ComponentChange]) -> str:
    """A CHANGELOG.md section: "## <heading>" and each component's changes."""
    body = [_md_change(c) for c in changes] or ["No component changed."]
    return "\n\n".join([f"## {_md_inline(heading)}", *body]) + "\n"


def append_changelog(path: Path, entry: str) -> None:
    """Appends `entry` to the changelog at `path` (newest last: it only ever
    grows at its end), creating it with a "# Changelog" header if absent.
    The file is rewritten atomically: a reader never sees half an entry."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = "# Changelog\n"
    fsutil.atomic_write(path, text.rstrip("\n") + "\n\n" + entry.strip("\n") + "\n")


def md_escape(text: object, *, inline: bool = False) -> str:
    """`text` as literal Markdown: control characters escaped (printable),
    then every character that could start a link, HTML, code, emphasis, a
    heading or a table backslash-escaped, and a leading list marker or quote
    too (a '>' elsewhere starts nothing: "a -> b" stays as it is), unless
    `inline` (the text goes in the middle of a line)."""
    escaped = _MD_SPECIAL.sub(r"\\\1", untrusted.printable(text))
    if inline:
        return escaped
    if escaped[:1] in ("-", "+", ">"):
        escaped = "\\" + escaped
    return re.sub(r"^(\d+)([.)])", r"\1\\\2", escaped)


def _md_inline(text: object) -> str:
    return md_escape(text, inline=True)


def _md_list(lines: Sequence[str]) -> str:
    """A Markdown list of `lines`, nested by their indentation (2 spaces a level)."""
    items = [f"{'  ' * ((len(line) - len(line.lstrip(' '))) // 2)}- {md_escape(line.strip())}" for line in lines]
    return "\n".join(items) or "None."


def _md_change(change: ComponentChange) -> str:
    items = "\n".join(f"- {line}" for line in _details(change, True))
    return f"### {_heading(change, _md_inline)}" + (f"\n\n{items}" if items else "")


def _code(text: str) -> str:
    """`text` as a Markdown code span, fenced by more backticks than it holds."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _heading(change: ComponentChange, escape: Callable[[object], str]) -> str:
    """"messages v1.4.0 -> v1.5.0 (drone, rover)"; the pins too when the version did not change."""
    same = change.old is not None and change.new is not None and change.old.version == change.new.version

    def side(s: Optional[PinSide]) -> str:
        if s is None:
            return "(none)"
        pin = s.pin[:SHORT] if s.pin and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", s.pin) else s.pin
        return f"{escape(s.version or '?')} ({escape(pin)})" if same and pin else escape(s.version or "?")

    return (f"{escape(change.component)} {side(change.old)} -> {side(change.new)} "
            f"({', '.join(escape(c) for c in change.configurations)})")


def _details(change: ComponentChange, md: bool) -> list[str]:
    """The lines under a change's heading, plain text or (`md`) Markdown:
    its commits, what stands in for them, its compare link, its archive or
    path, and what it was before when that is not in its log."""
    esc = _md_inline if md else untrusted.printable
    old, new, log = change.old, change.new, change.log
    lines: list[str] = []
    if new is None:
        lines.append("removed")
    elif new.source == "git" and log is not None:
        lines += [f"`{c.short}` {esc(c.subject)} — {esc(c.author)}" if md
                  else f"{c.short}  {esc(c.subject)} ({esc(c.author)})" for c in log.commits]
        if log.truncated:
            lines.append(f"... and {log.truncated} older commit{'s' if log.truncated != 1 else ''}")
        empty = "(the same commit)" if log.old == log.new else "(no commits)"
        lines += [esc(log.problem)] if log.problem else [] if log.commits else [empty]
        lines += [f"note: {esc(log.note)}"] if log.note else []
        lines += [f"compare: <{change.compare}>" if md else f"compare: {change.compare}"] if change.compare else []
    else:
        lines.append(_side_line(new, "", md))
    if old is not None and (new is None or old.source != new.source or (old.source != "git" and old != new)):
        lines.append(_side_line(old, "was ", md))
    return lines


def _side_line(side: PinSide, was: str, md: bool) -> str:
    """What an archive, local or git pin is, in one line."""
    code = _code if md else (lambda text: text)
    if side.source == "archive":
        urls = ", ".join(code(_shown(u)) for u in side.urls) or "(no url)"
        return f"{was}archive {urls} sha256 {code(untrusted.printable(side.sha256 or '?'))}"
    if side.source == "local":
        return f"{was}local path {code(untrusted.printable(side.path or side.pin or '?'))}"
    esc = _md_inline if md else untrusted.printable
    if side.source == "git":
        return f"{was}git {esc(_shown(side.remote or '?'))} at {esc((side.pin or '?')[:SHORT])}"
    return f"{was}{esc(side.source or 'unknown source')} {esc(side.pin or '')}".rstrip()
