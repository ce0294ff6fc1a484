"""Schema version 6 (see also test_schema_v4.py, test_schema_v5.py and test_schema_v6.py): a
version-1 or version-2 database (an existing
checkout's) is migrated in place when a writer opens it, its data kept; a
reader reads it as it is; a newer version stays refused. And the
transaction's generic accessors: `meta` / `set_meta`, the open groups, the
forges' deliveries, and a request's bumps.
"""

from __future__ import annotations

import sqlite3

import pytest

from convoy.errors import ConvoyError
from convoy.models import OpenGroup, RequestBump, RequestState
from convoy.store import SCHEMA_VERSION, SQLiteStore
from convoy.store.sqlite_migrate import MIGRATIONS

# The schema as convoy wrote it at version 1 (before groups), verbatim.
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, component TEXT NOT NULL, version TEXT NOT NULL, commit_sha TEXT,
    commit_given INTEGER NOT NULL DEFAULT 0, archive_url TEXT, strip_prefix TEXT, configuration TEXT,
    requested_by TEXT NOT NULL, state TEXT NOT NULL, phase TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    base_commit TEXT, candidate_commit TEXT, tag TEXT, detail TEXT, superseded_by INTEGER REFERENCES requests(id),
    cancel_requested INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    finished_at REAL, total_seconds REAL NOT NULL DEFAULT 0, bazel_seconds REAL NOT NULL DEFAULT 0,
    git_seconds REAL NOT NULL DEFAULT 0
);
CREATE INDEX requests_by_state ON requests(state, id);
CREATE TABLE builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT, request_id INTEGER NOT NULL REFERENCES requests(id),
    number INTEGER NOT NULL, state TEXT NOT NULL, base_commit TEXT NOT NULL, candidate_commit TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL, detail TEXT, UNIQUE (request_id, number)
);
CREATE TABLE stages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, build_id INTEGER NOT NULL REFERENCES builds(id),
    position INTEGER NOT NULL, name TEXT NOT NULL, command TEXT NOT NULL, state TEXT NOT NULL, started_at REAL,
    finished_at REAL, UNIQUE (build_id, position)
);
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, stage_id INTEGER NOT NULL REFERENCES stages(id),
    build_id INTEGER NOT NULL REFERENCES builds(id), configuration TEXT NOT NULL, state TEXT NOT NULL,
    slot INTEGER, pid INTEGER, outcome TEXT, exit_code INTEGER, log_path TEXT, bep_path TEXT,
    targets TEXT NOT NULL DEFAULT '[]', detail TEXT, runs INTEGER NOT NULL DEFAULT 0, started_at REAL,
    finished_at REAL, UNIQUE (stage_id, configuration)
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, type TEXT NOT NULL, request_id INTEGER,
    build_id INTEGER, stage_id INTEGER, task_id INTEGER, data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_request ON events(request_id, id);
CREATE TABLE plugin_cursors (plugin TEXT PRIMARY KEY, event_id INTEGER NOT NULL);
CREATE TABLE releases (
    id INTEGER PRIMARY KEY AUTOINCREMENT, request_id INTEGER REFERENCES requests(id),
    build_id INTEGER REFERENCES builds(id), tag TEXT NOT NULL UNIQUE, commit_sha TEXT NOT NULL,
    notes TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL);
INSERT INTO meta (key, value) VALUES ('schema_version', '1');
INSERT INTO requests (component, version, commit_sha, requested_by, state, created_at, updated_at)
    VALUES ('messages', 'v1.5.0', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'ci@messages', 'merged', 1.0, 2.0);
INSERT INTO requests (component, version, requested_by, state, created_at, updated_at)
    VALUES ('planner', 'v2.2.0', 'ci@planner', 'queued', 3.0, 3.0);
INSERT INTO events (ts, type, request_id, data) VALUES ('2024-01-01T00:00:00.000Z', 'REQUEST_QUEUED', 2, '{}');
"""


def make_v1(path):
    conn = sqlite3.connect(path)
    try:
        conn.executescript(V1_SCHEMA)
        conn.commit()
    finally:
        conn.close()
    return path


def raw(path, sql):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def columns(path, table):
    return [row[1] for row in raw(path, f"PRAGMA table_info({table})")]


def test_a_version_1_database_is_migrated_in_place_and_keeps_its_data(tmp_path):
    db = make_v1(tmp_path / "state.db")
    assert "bumps" not in columns(db, "requests")
    with SQLiteStore(db) as store:
        with store.read() as tx:
            merged, queued = tx.requests()
            assert (merged.component, merged.version, merged.commit, merged.state) == (
                "messages", "v1.5.0", "a" * 40, RequestState.MERGED)
            assert (queued.component, queued.requested_by, queued.bumps) == ("planner", "ci@planner", ())
            assert [e.type for e in tx.events(request_id=queued.id)] == ["REQUEST_QUEUED"]
            assert tx.meta("schema_version") == str(SCHEMA_VERSION) == "6"
        with store.transaction() as tx:  # and it is writable as a new one
            group = tx.insert_request(component="messages", version="v2.0.0", requested_by="t",
                                      bumps=[RequestBump("planner", "v3.0.0")])
            assert group.bumps == (RequestBump("planner", "v3.0.0"),)
            assert tx.put_open_group("g", [], "t").bumps == ()
    assert columns(db, "requests")[-3:] == ["bumps", "kind", "priority"]
    assert columns(db, "open_groups") == ["name", "bumps", "requested_by", "created_at"]
    assert raw(db, "SELECT bumps FROM requests WHERE id = 1") == [("[]",)]
    assert raw(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [("6",)]
    assert columns(db, "deliveries") == ["forge", "delivery", "request_id", "outcome", "received_at"]
    with SQLiteStore(db) as store, store.read() as tx:  # opened again: nothing more to do
        assert len(tx.requests()) == 3


def make_at(path, version: int):
    """A database at schema `version`, as convoy wrote it then (version 1 and the steps after it)."""
    make_v1(path)
    conn = sqlite3.connect(path)
    try:
        for step in range(1, version):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        conn.commit()
    finally:
        conn.close()
    return path


def make_v2(path):
    """A version-2 database, as convoy wrote it before the deliveries (version 1 and its one step)."""
    return make_at(path, 2)


def test_a_version_2_database_gets_the_deliveries_table_and_keeps_its_data(tmp_path):
    db = make_v2(tmp_path / "state.db")
    with SQLiteStore(db, readonly=True) as store, store.read() as tx:  # a reader: as it is
        assert [r.component for r in tx.requests()] == ["messages", "planner"]
    assert "deliveries" not in {row[0] for row in raw(db, "SELECT name FROM sqlite_master")}
    with SQLiteStore(db) as store:
        with store.transaction() as tx:
            assert tx.delivery("github", "d-1") is None
            first = tx.record_delivery("github", "d-1", request_id=2, outcome="submitted")
            again = tx.record_delivery("github", "d-1", request_id=None, outcome="ignored")
            assert again == first and (first.request_id, first.outcome) == (2, "submitted")
        with store.read() as tx:
            assert tx.delivery("github", "d-1") == first
            assert tx.delivery("gitlab", "d-1") is None
            assert [r.component for r in tx.requests()] == ["messages", "planner"]
    assert raw(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [("6",)]
    with SQLiteStore(db) as store, store.read() as tx:  # a restart keeps the deliveries
        assert tx.delivery("github", "d-1").outcome == "submitted"


def test_a_reader_reads_a_version_1_database_as_it_is(tmp_path):
    db = make_v1(tmp_path / "state.db")
    with SQLiteStore(db, readonly=True) as store, store.read() as tx:
        assert [(r.component, r.bumps) for r in tx.requests()] == [("messages", ()), ("planner", ())]
        assert [r.id for r in tx.requests(component="planner")] == [2]
    assert "bumps" not in columns(db, "requests")  # nothing migrated
    assert raw(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]


@pytest.mark.parametrize("version", ("7", "0", "two"))
def test_an_unknown_schema_version_is_refused_and_left_alone(tmp_path, version):
    db = make_v1(tmp_path / "state.db")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    conn.commit()
    conn.close()
    for readonly in (False, True):
        with pytest.raises(ConvoyError) as error:
            SQLiteStore(db, readonly=readonly)
        message = str(error.value)
        if version == "7":  # a newer convoy's: upgrade this one
            assert message.endswith("state schema 7 is not 6 (written by a newer convoy); upgrade convoy to the "
                                    "version that wrote it")
        else:
            assert f"state schema {version} is not 6 (written by another convoy); use that convoy, or move it" in message
        assert "\n" not in message
    assert "bumps" not in columns(db, "requests")


def test_a_version_1_database_without_a_table_is_damaged(tmp_path):
    db = make_v1(tmp_path / "state.db")
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE leases")
    conn.commit()
    conn.close()
    with pytest.raises(ConvoyError, match="the state database is damaged \\(no table leases\\)"):
        SQLiteStore(db)


def test_meta_accessors(store):
    with store.transaction() as tx:
        assert tx.meta("queue.test") is None
        tx.set_meta("queue.test", '{"items": []}')
        assert tx.meta("queue.test") == '{"items": []}'
        tx.set_meta("queue.test", "second")
        with pytest.raises(ValueError):
            tx.set_meta("schema_version", "9")
        with pytest.raises(TypeError):
            tx.set_meta("queue.test", 3)
    with store.read() as tx:
        assert tx.meta("queue.test") == "second"
        assert tx.meta("schema_version") == "6"
    with pytest.raises(RuntimeError):  # a rolled-back transaction leaves nothing
        with store.transaction() as tx:
            tx.set_meta("other", "x")
            raise RuntimeError("no")
    with store.read() as tx:
        assert tx.meta("other") is None


def test_open_groups_round_trip(store):
    messages = RequestBump("messages", "v2.0.0", commit="b" * 40, commit_given=True)
    planner = RequestBump("planner", "v3.0.0", configuration="rover")
    with store.transaction() as tx:
        first = tx.put_open_group("release-7", [messages], "ci")
        assert (first.name, first.bumps, first.requested_by) == ("release-7", (messages,), "ci")
        again = tx.put_open_group("release-7", [messages, planner], "someone else")
        assert again == OpenGroup("release-7", (messages, planner), "ci", first.created_at)
        tx.put_open_group("a-group", [planner], None)
        assert [g.name for g in tx.open_groups()] == ["a-group", "release-7"]
        tx.delete_open_group("a-group")
    with store.read() as tx:
        assert tx.open_group("a-group") is None
        assert tx.open_group("release-7").bumps == (messages, planner)


def test_a_request_keeps_its_bumps_and_is_found_by_each_component(store):
    planner = RequestBump("planner", "v3.0.0", commit="c" * 40)
    with store.transaction() as tx:
        single = tx.insert_request(component="messages", version="v1.5.0", requested_by="t")
        group = tx.insert_request(component="messages", version="v2.0.0", requested_by="t",
                                  bumps=[planner.to_dict()])
    with store.read() as tx:
        read = tx.request(group.id)
        assert read.bumps == (planner,) and read.all_bumps[0] == RequestBump("messages", "v2.0.0")
        assert read.components == ("messages", "planner") and read.is_group
        assert read.title == "messages v2.0.0 + planner v3.0.0"
        assert tx.request(single.id).title == "messages v1.5.0" and not tx.request(single.id).is_group
        assert [r.id for r in tx.requests(component="planner")] == [group.id]
        assert [r.id for r in tx.requests(component="messages")] == [single.id, group.id]
    with store.transaction() as tx:
        assert tx.update_request(single.id, bumps=[planner]).bumps == (planner,)
