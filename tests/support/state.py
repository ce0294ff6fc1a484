"""An integration checkout with state, and running convoy's commands in it:
what the tests of a hostile world share (tests/store/test_hostile_state.py,
tests/commands/test_ids_and_escaping.py, tests/yamlcheck/test_yaml_bounds.py).

`make_state_checkout` (the `state_checkout` fixture of tests/conftest.py):
a clone of an `origin` with one component, `widget`, in two versions;
request 1 is queued and request 2 rejected.
"""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Optional

from convoy import main, models
from convoy.models import RequestState
from convoy.store import SQLiteStore

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
    "flakes": ("flakes",),
}
WRITERS = ("submit", "process", "cancel", "retry")
READERS = ("status", "show")


def make_state_checkout(git_repo, tmp_path: Path) -> Path:
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


def cli(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real `convoy` (a crash of the C parser kills only it)."""
    return subprocess.run([str(CONVOY), *args, f"--repo={root}"], capture_output=True, text=True, timeout=timeout)


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
