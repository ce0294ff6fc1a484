"""The state database and convoy's YAML files against a hostile world.

Every failure of the world is one line on stderr, exit status 2, and no
damage, for every command that opens the store: a database another process
keeps locked, a damaged, truncated or foreign one, `.convoy` that is a file,
a read-only directory or database, a full disk, a process lock that is a
directory. `convoy status` and `convoy show` only read: they work while
another process holds a write transaction. Out-of-range ids, deep nesting,
aliases that expand, nan and inf, and huge files are refused in one line;
parsing is linear in the size of a file. Text from the state cannot forge a
line of `convoy status` or `convoy show`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest

from convoy import main, models
from convoy.config import parse_config
from convoy.errors import ConvoyError
from convoy.manifest import parse_manifest
from convoy.models import BuildState, RequestState, StageState, TaskState
from convoy.store import SQLiteStore
from convoy.store import sqlite as store_module

CONVOY = Path(sys.executable).parent / "convoy"
MANIFEST = """\
schema_version: 1
default_configuration: main
components:
  widget:
    source: local
    path: components/widget/{version}
    version: v1.0.0
configurations:
  main:
    components: [widget]
"""
CONFIG = "queue: {mode: serial, poll_interval: 1}\n"

# Each command that opens the store, as run here (request 1 is queued, 2 rejected).
COMMANDS = {
    "submit": ("submit", "--component=widget", "--version=v1.1.0"),
    "process": ("process", "--once"),
    "status": ("status",),
    "show": ("show", "1"),
    "cancel": ("cancel", "1"),
    "retry": ("retry", "2"),
    "events": ("events",),
    "tag": ("tag",),
}
WRITERS = ("submit", "process", "cancel", "retry")
READERS = ("status", "show")


@pytest.fixture
def checkout(git_repo, tmp_path: Path) -> Path:
    """An integration checkout (a clone of `origin`) whose state has request
    1 queued and request 2 rejected, checkpointed into state.db (no -wal)."""
    origin = git_repo("origin", files={
        "manifests/manifest.yaml": MANIFEST, "convoy.yaml": CONFIG,
        "components/widget/v1.0.0/README": "1.0\n", "components/widget/v1.1.0/README": "1.1\n",
    })
    root = tmp_path / "checkout"
    subprocess.run(["git", "clone", "--quiet", str(origin.path), str(root)], check=True, timeout=60)
    with SQLiteStore(root / ".convoy" / "state.db") as store, store.transaction() as tx:
        first = tx.insert_request(component="widget", version="v1.0.0", requested_by="ci")
        tx.add_event(models.REQUEST_QUEUED, request_id=first.id, data={"component": "widget"})
        tx.insert_request(component="widget", version="v0.9.0", requested_by="ci", state=RequestState.REJECTED,
                          detail="stage build failed")
    assert not (root / ".convoy" / "state.db-wal").exists()
    return root


def convoy(root: Path, command: str, capsys) -> tuple[int, str, str]:
    """`convoy <command>` in `root`, in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main.main(["convoy", COMMANDS[command][0], f"--repo={root}", *COMMANDS[command][1:]])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("convoy: error: "), err
    for word in words:
        assert word in err, err


def tree(root: Path) -> dict[str, Optional[str]]:
    """Every path under .convoy -> its content's sha256 (None: a directory).
    Not in it: the process lock convoy process takes first, and SQLite's
    shared-memory index and an empty write-ahead log, which a read-only
    connection to a WAL database makes and cannot remove (they hold no data)."""
    base = root / ".convoy"
    if base.is_file():
        return {".convoy": hashlib.sha256(base.read_bytes()).hexdigest()}
    found = {}
    for path in sorted(base.rglob("*")):
        if path.name == "process.lock" or path.name.endswith("-shm"):
            continue
        if path.name.endswith("-wal") and path.stat().st_size == 0:
            continue
        found[str(path.relative_to(root))] = None if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def dump(root: Path) -> tuple[str, list[str]]:
    """integrity_check and the whole content of a healthy state.db, read-only."""
    db = root / ".convoy" / "state.db"
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0], list(conn.iterdump())
    finally:
        conn.close()


# -- a damaged state ---------------------------------------------------------------


def _text(db: Path) -> None:
    db.write_text("this is not a database\n" * 200)


def _foreign(db: Path) -> None:
    db.unlink()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('my notes')")
    conn.commit()
    conn.close()


def _truncated(db: Path) -> None:
    with open(db, "r+b") as f:
        f.truncate(4096)  # the first page (the schema) only: every table's pages are gone


def _corrupt(db: Path) -> None:
    with open(db, "r+b") as f:
        f.seek(4096)
        f.write(b"\xa5" * (os.path.getsize(db) - 4096))  # every page after the schema's


def _convoy_is_a_file(db: Path) -> None:
    shutil.rmtree(db.parent)
    db.parent.write_text("not a directory\n")


def _db_is_a_directory(db: Path) -> None:
    db.unlink()
    db.mkdir()
    (db / "keep").write_text("x\n")


DAMAGE = {
    "text file": (_text, "damaged or is not convoy's"),
    "foreign sqlite": (_foreign, "is not convoy's state database"),
    "truncated": (_truncated, "damaged"),
    "corrupt": (_corrupt, "damaged"),
    ".convoy is a file": (_convoy_is_a_file, "is not a directory"),
    "state.db is a directory": (_db_is_a_directory, "is a directory"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_state_is_one_line_and_left_as_it_is(checkout, capsys, damage, command):
    make, words = DAMAGE[damage]
    make(checkout / ".convoy" / "state.db")
    before = tree(checkout)
    code, out, err = convoy(checkout, command, capsys)
    assert_one_line(code, err, words)
    if "damaged" in words or "not convoy's" in words:
        assert "move it aside" in err
    assert tree(checkout) == before


# -- another convoy holds the database ----------------------------------------------


@contextlib.contextmanager
def write_transaction_held(db: Path) -> Iterator[None]:
    """Another process in the middle of a write transaction on `db` (an
    uncommitted insert) until the block ends; then it exits (rolled back)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sqlite3, sys\n"
            f"conn = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
            "conn.execute('BEGIN IMMEDIATE')\n"
            "conn.execute(\"INSERT INTO meta (key, value) VALUES ('held', 'by another process')\")\n"
            "print('holding', flush=True)\n"
            "sys.stdin.read()\n"
        )],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


@pytest.mark.parametrize("command", WRITERS)
def test_a_database_locked_past_the_busy_timeout_is_one_line(checkout, capsys, monkeypatch, command):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 300)
    before = dump(checkout)
    with write_transaction_held(checkout / ".convoy" / "state.db"):
        code, out, err = convoy(checkout, command, capsys)
    assert_one_line(code, err, "another convoy holds the state database", "wait for it")
    assert dump(checkout) == before and before[0] == "ok"


@pytest.mark.parametrize("command", (*READERS, "events"))
def test_status_show_and_events_read_while_another_process_writes(checkout, capsys, monkeypatch, command):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 300)
    before = dump(checkout)
    with write_transaction_held(checkout / ".convoy" / "state.db"):
        code, out, err = convoy(checkout, command, capsys)
    assert (code, err) == (0, "")
    assert "widget" in out or "REQUEST_QUEUED" in out or "queued" in out, out
    assert dump(checkout) == before


def test_status_creates_nothing(checkout, capsys):
    shutil.rmtree(checkout / ".convoy")
    code, out, err = convoy(checkout, "status", capsys)
    assert (code, err) == (0, "") and out.startswith("no requests yet")
    assert not (checkout / ".convoy").exists()


def test_the_state_directory_is_made_for_this_user_alone(checkout, capsys):
    shutil.rmtree(checkout / ".convoy")
    code, out, err = convoy(checkout, "submit", capsys)
    assert code == 0, err
    assert (checkout / ".convoy").stat().st_mode & 0o777 == 0o700


# -- read-only -------------------------------------------------------------------


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` (a directory or a file) read-only, even for root: chmod for a
    user, a read-only bind mount for root (skipped where it cannot mount)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    bound = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
    if bound.returncode != 0:
        pytest.skip(f"root cannot bind-mount here: {bound.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True, capture_output=True)


@pytest.mark.parametrize("command", WRITERS)
@pytest.mark.parametrize("what", ("directory", "database"))
def test_a_read_only_state_is_one_line_for_writers(checkout, capsys, what, command):
    target = checkout / ".convoy" if what == "directory" else checkout / ".convoy" / "state.db"
    before = dump(checkout)
    with read_only(target):
        code, out, err = convoy(checkout, command, capsys)
    assert_one_line(code, err)
    assert "read-only" in err or "cannot" in err, err
    assert dump(checkout) == before


@pytest.mark.parametrize("command", READERS)
@pytest.mark.parametrize("what", ("directory", "database"))
def test_status_and_show_read_a_read_only_state(checkout, capsys, what, command):
    target = checkout / ".convoy" if what == "directory" else checkout / ".convoy" / "state.db"
    before = dump(checkout)
    with read_only(target):
        code, out, err = convoy(checkout, command, capsys)
    assert (code, err) == (0, "")
    assert "widget" in out
    assert dump(checkout) == before


# -- a full disk -----------------------------------------------------------------


@contextlib.contextmanager
def full_disk(state: Path) -> Iterator[None]:
    """`state` (.convoy) on a small tmpfs of its own that is full, SQLite's
    -wal and -shm files already there (a reader holds them open), as a disk
    that filled up under a running convoy. Root only (mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the store-level test below uses max_page_count")
    saved = state.with_name("saved-state")
    shutil.copytree(state, saved)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(state)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    reader, filler = None, state / "filler"
    try:
        for path in saved.iterdir():
            shutil.copy2(path, state / path.name)
        reader = sqlite3.connect(state / "state.db")
        reader.execute("SELECT COUNT(*) FROM requests").fetchone()  # makes -wal and -shm
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
        finally:
            os.close(fd)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            filler.unlink()
        if reader is not None:
            reader.close()  # the last connection: checkpoints into state.db
        for path in state.iterdir():
            shutil.copy2(path, saved / path.name)
        if subprocess.run(["umount", str(state)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(state)], check=True, capture_output=True)
        shutil.rmtree(state)
        saved.rename(state)


@pytest.mark.parametrize("command", WRITERS)
def test_a_full_disk_is_one_line_and_changes_nothing(checkout, capsys, command):
    before = dump(checkout)
    with full_disk(checkout / ".convoy"):
        code, out, err = convoy(checkout, command, capsys)
    assert_one_line(code, err)
    assert "full" in err or "No space left" in err, err
    assert dump(checkout) == before


def test_a_full_database_rolls_back_the_transaction_and_says_so(tmp_path, monkeypatch):
    # SQLite's max_page_count on every connection: the database cannot grow,
    # as on a full disk (SQLITE_FULL, "database or disk is full").
    store = SQLiteStore(tmp_path / ".convoy" / "state.db")
    with store.transaction() as tx:
        tx.insert_request(component="widget", version="v1.0.0", requested_by="ci")
    store.close()
    connect = sqlite3.connect

    def capped(*args, **kwargs):
        conn = connect(*args, **kwargs)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(sqlite3, "connect", capped)
    with SQLiteStore(tmp_path / ".convoy" / "state.db") as store:
        with pytest.raises(ConvoyError) as raised:
            with store.transaction() as tx:
                tx.update_request(1, detail="changed")
                tx.add_event(models.REQUEST_CANCELLED, request_id=1, data={"padding": "x" * 200_000})
        assert len(raised.value.problems) == 1
        assert "the disk is full" in str(raised.value) and "nothing was changed" in str(raised.value)
        with store.read() as tx:
            assert tx.request(1).detail is None and tx.events() == []
            assert tx.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_process_lock_that_is_a_directory_is_one_line(checkout, capsys):
    (checkout / ".convoy" / "process.lock").mkdir()
    before = dump(checkout)
    code, out, err = convoy(checkout, "process", capsys)
    assert_one_line(code, err, "process.lock")
    assert dump(checkout) == before and (checkout / ".convoy" / "process.lock").is_dir()


# -- numbers -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ("show", "cancel", "retry"))
@pytest.mark.parametrize("given", ("99999999999999999999", "9223372036854775808", "1" + "0" * 5000, "²"))
def test_an_id_out_of_range_is_one_line(checkout, capsys, command, given):
    before = dump(checkout)
    code = main.main(["convoy", command, f"--repo={checkout}", given])
    assert_one_line(code, capsys.readouterr().err, "is not a request id")
    assert dump(checkout) == before


def test_the_largest_id_is_simply_not_found(checkout, capsys):
    code = main.main(["convoy", "show", f"--repo={checkout}", "9223372036854775807"])
    assert_one_line(code, capsys.readouterr().err, "no request #9223372036854775807")
    code = main.main(["convoy", "events", f"--repo={checkout}", "--request=99999999999999999999"])
    assert_one_line(code, capsys.readouterr().err, "no request #99999999999999999999")


@pytest.mark.parametrize("text, problem", [
    ("queue: {poll_interval: .nan}\n", "convoy.yaml:1: queue.poll_interval: must be a finite number, not nan"),
    ("queue:\n  poll_interval: .inf\n", "convoy.yaml:2: queue.poll_interval: must be a finite number, not inf"),
    ("stages:\n  - {name: b, command: build, timeout: .nan}\n",
     "convoy.yaml:2: stages.b.timeout: must be a finite number, not nan"),
    ("stages:\n  - name: b\n    command: build\n    timeout: .INF\n",
     "convoy.yaml:4: stages.b.timeout: must be a finite number, not inf"),
    ("queue: {poll_interval: 1e400}\n", "convoy.yaml:1: queue.poll_interval: must be a finite number, not inf"),
    ("queue: {poll_interval: 1" + "0" * 400 + "}\n",
     "convoy.yaml:1: queue.poll_interval: must be at most 1e+09, not a number of 401 digits"),
    ("parallelism: 1" + "0" * 5000 + "\n", f"convoy.yaml:1: '1{'0' * 36}...' is not a valid YAML int"),
    ("git: {remote: 2024-13-45}\n", "convoy.yaml:1: '2024-13-45' is not a valid YAML timestamp"),
])
def test_nan_inf_and_numbers_no_timer_holds_are_refused_at_their_line(text, problem):
    with pytest.raises(ConvoyError) as raised:
        parse_config(text, "convoy.yaml")
    assert len(raised.value.problems) == 1 and raised.value.problems[0].startswith(problem), raised.value


# -- YAML that would exhaust the host -----------------------------------------------

BIG = ("# " + "x" * 77 + "\n") * (9 * 1024 * 1024 // 80)  # 9 MiB of comments
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(9)
)  # nine lines: 10**10 x's once expanded


def _cli(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real `convoy` (a crash of the C parser kills only it)."""
    return subprocess.run([str(CONVOY), *args, f"--repo={root}"], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name", ("manifests/manifest.yaml", "convoy.yaml"))
@pytest.mark.parametrize("text, problem", [
    ("[" * 100_000, ":1: nested more than 64 levels deep"),
    ("a: " + "{b: " * 100_000 + "c" + "}" * 100_000 + "\n", ":1: nested more than 64 levels deep"),
    ("- " * 100_000 + "x\n", ":1: nested more than 64 levels deep"),
    (LAUGHS, ":4: YAML aliases repeat more than 10000 values"),
    ("a: &a [1, *a]\n", ":1: YAML alias '*a' is inside what it names"),
    (BIG, f": {len(BIG)} bytes, more than the 8 MiB convoy reads"),
])
def test_yaml_that_would_exhaust_the_host_is_one_line(checkout, name, text, problem):
    (checkout / name).write_text(text)
    command = ("submit", "--component=widget", "--version=v1.1.0") if name.startswith("manifests") else ("tag",)
    before = tree(checkout)
    started = time.monotonic()
    run = _cli(checkout, *command)
    assert time.monotonic() - started < 30
    assert run.returncode == 2, run
    assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) == 1, run.stderr
    assert f"{name}{problem}" in run.stderr, run.stderr
    assert (checkout / name).read_text() == text and tree(checkout) == before


def test_a_fifo_for_convoy_yaml_is_one_line_not_a_hang(checkout):
    (checkout / "convoy.yaml").unlink()
    os.mkfifo(checkout / "convoy.yaml")
    run = _cli(checkout, "tag", timeout=30)
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1, run
    assert "convoy.yaml: not a regular file" in run.stderr


def test_a_few_aliases_are_still_fine():
    config = parse_config("stages:\n  - {name: a, command: test, flags: &f [--config=ci]}\n"
                          "  - {name: b, command: test, flags: *f}\n", "convoy.yaml")
    assert [s.flags for s in config.stages] == [("--config=ci",), ("--config=ci",)]


def test_a_comment_heavy_manifest_parses_in_linear_time():
    # 4 MB of comments after a value: ruamel's round-trip parser joins them
    # into one string, one by one (quadratic: 9 s here, 35 MB took minutes;
    # now 0.06 s). benchmarks/yaml_size.py measures the growth.
    comments = ("    # " + "x" * 73 + "\n") * (4_000_000 // 80)
    text = MANIFEST.replace("configurations:\n", comments + "configurations:\n", 1)
    started = time.monotonic()
    manifest = parse_manifest(text)
    assert time.monotonic() - started < 2
    assert manifest.components["widget"].version == "v1.0.0"


# -- escaping ----------------------------------------------------------------------

EVIL = "\x1b[2J\rFORGED line\nFORGED\x1b]0;title\x07"


def test_status_and_show_escape_every_value_from_the_state(checkout, capsys):
    with SQLiteStore(checkout / ".convoy" / "state.db") as store, store.transaction() as tx:
        request = tx.insert_request(component="widget", version="v1.1.0", requested_by=f"ci{EVIL}",
                                    archive_url=f"https://x.example/a.tar.gz{EVIL}", state=RequestState.REJECTED,
                                    detail=f"stage build failed{EVIL}")
        build = tx.insert_build(request.id, "a" * 40, "b" * 40)
        tx.update_build(build.id, state=BuildState.FAILED, detail=f"build{EVIL}")
        stage = tx.insert_stage(build.id, 0, "build", "build")
        tx.update_stage(stage.id, state=StageState.FAILED)
        task = tx.insert_task(stage.id, build.id, "main")
        tx.update_task(task.id, state=TaskState.FAILED, detail=f"exit 1{EVIL}", log_path=f"/tmp/log{EVIL}")
        tx.insert_release(request_id=request.id, build_id=build.id, tag="v1", commit="b" * 40,
                          notes="notes\x1b[2J\rFORGED line\nsecond line\n")  # its own lines: \n only
    for command in ("status", "show"):
        capsys.readouterr()
        args = [str(request.id)] if command == "show" else []
        assert main.main(["convoy", command, f"--repo={checkout}", *args]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\r" not in out and "\x07" not in out, out
        assert not any(line.lstrip().startswith("FORGED") for line in out.splitlines()), out
        assert "\\x1b[2J\\rFORGED line\\nFORGED" in out
    assert "    notes\\x1b[2J\\rFORGED line\n    second line\n" in out
