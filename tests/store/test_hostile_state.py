"""The state database against a hostile world.

Every failure of the world is one line on stderr, exit status 2, and no
damage, for every command that opens the store: a database another process
keeps locked, a damaged, truncated or foreign one, `.convoy` that is a file,
a read-only directory or database, a full disk, a process lock that is a
directory. `convoy status` and `convoy show` only read: they work while
another process holds a write transaction.

The checkout is the `state_checkout` fixture (tests/conftest.py,
tests/support/state.py). Ids out of range and escaping:
tests/commands/test_ids_and_escaping.py; YAML bounds:
tests/yamlcheck/test_yaml_bounds.py; numbers in convoy.yaml:
tests/config/test_numbers.py.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from convoy import models
from convoy.errors import ConvoyError
from convoy.store import SQLiteStore
from convoy.store import sqlite as store_module

from tests.support.state import COMMANDS, READERS, WRITERS, assert_one_line, convoy, dump, tree


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
def test_a_damaged_state_is_one_line_and_left_as_it_is(state_checkout, capsys, damage, command):
    make, words = DAMAGE[damage]
    make(state_checkout / ".convoy" / "state.db")
    before = tree(state_checkout)
    code, out, err = convoy(state_checkout, command, capsys)
    assert_one_line(code, err, words)
    if "damaged" in words or "not convoy's" in words:
        assert "move it aside" in err
    assert tree(state_checkout) == before


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
def test_a_database_locked_past_the_busy_timeout_is_one_line(state_checkout, capsys, monkeypatch, command):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 300)
    before = dump(state_checkout)
    with write_transaction_held(state_checkout / ".convoy" / "state.db"):
        code, out, err = convoy(state_checkout, command, capsys)
    assert_one_line(code, err, "another convoy holds the state database", "wait for it")
    assert dump(state_checkout) == before and before[0] == "ok"


def test_convoy_state_wait_sets_the_wait_and_the_line_says_it(state_checkout, capsys, monkeypatch):
    monkeypatch.setenv("CONVOY_STATE_WAIT", "0.4")
    with write_transaction_held(state_checkout / ".convoy" / "state.db"):
        code, out, err = convoy(state_checkout, WRITERS[0], capsys)
    assert_one_line(code, err, "locked for more than 0.4 s", "wait for it")
    for ignored in ("", "soon", "0", "nan", "99999"):  # not a wait convoy takes: the default
        monkeypatch.setenv("CONVOY_STATE_WAIT", ignored)
        assert store_module.busy_timeout_ms() == store_module.BUSY_TIMEOUT_MS


@pytest.mark.parametrize("command", (*READERS, "events"))
def test_status_show_and_events_read_while_another_process_writes(state_checkout, capsys, monkeypatch, command):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 300)
    before = dump(state_checkout)
    with write_transaction_held(state_checkout / ".convoy" / "state.db"):
        code, out, err = convoy(state_checkout, command, capsys)
    assert (code, err) == (0, "")
    assert "widget" in out or "REQUEST_QUEUED" in out or "queued" in out, out
    assert dump(state_checkout) == before


def test_status_creates_nothing(state_checkout, capsys):
    shutil.rmtree(state_checkout / ".convoy")
    code, out, err = convoy(state_checkout, "status", capsys)
    assert (code, err) == (0, "") and out.startswith("no requests yet")
    assert not (state_checkout / ".convoy").exists()


def test_the_state_directory_is_made_for_this_user_alone(state_checkout, capsys):
    shutil.rmtree(state_checkout / ".convoy")
    code, out, err = convoy(state_checkout, "submit", capsys)
    assert code == 0, err
    assert (state_checkout / ".convoy").stat().st_mode & 0o777 == 0o700


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
def test_a_read_only_state_is_one_line_for_writers(state_checkout, capsys, what, command):
    target = state_checkout / ".convoy" if what == "directory" else state_checkout / ".convoy" / "state.db"
    before = dump(state_checkout)
    with read_only(target):
        code, out, err = convoy(state_checkout, command, capsys)
    assert_one_line(code, err)
    assert "read-only" in err or "cannot" in err, err
    assert dump(state_checkout) == before


@pytest.mark.parametrize("command", READERS)
@pytest.mark.parametrize("what", ("directory", "database"))
def test_status_and_show_read_a_read_only_state(state_checkout, capsys, what, command):
    target = state_checkout / ".convoy" if what == "directory" else state_checkout / ".convoy" / "state.db"
    before = dump(state_checkout)
    with read_only(target):
        code, out, err = convoy(state_checkout, command, capsys)
    assert (code, err) == (0, "")
    assert "widget" in out
    assert dump(state_checkout) == before


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
def test_a_full_disk_is_one_line_and_changes_nothing(state_checkout, capsys, command):
    before = dump(state_checkout)
    with full_disk(state_checkout / ".convoy"):
        code, out, err = convoy(state_checkout, command, capsys)
    assert_one_line(code, err)
    assert "full" in err or "No space left" in err, err
    assert dump(state_checkout) == before


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


def test_a_process_lock_that_is_a_directory_is_one_line(state_checkout, capsys):
    (state_checkout / ".convoy" / "process.lock").mkdir()
    before = dump(state_checkout)
    code, out, err = convoy(state_checkout, "process", capsys)
    assert_one_line(code, err, "process.lock")
    assert dump(state_checkout) == before and (state_checkout / ".convoy" / "process.lock").is_dir()
