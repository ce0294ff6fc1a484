"""Schema version 4: requests.kind ('request', or 'try' for `convoy try`). A version-3 database
is migrated in place when a writer opens it, every row a request; a reader reads it as it is
(no tries). Tries share the requests table but never its queue: `requests()` returns only
requests unless asked for tries, and a try is never superseded by, nor supersedes, a request.
"""

from __future__ import annotations

from convoy import requests, tries
from convoy.models import KIND_REQUEST, KIND_TRY, RequestState
from convoy.store import SCHEMA_VERSION, SQLiteStore

from tests.store.test_schema_migration import columns, make_at, raw


def make_v3(path):
    """A version-3 database, as convoy wrote it before tries (version 1 and its two steps)."""
    return make_at(path, 3)


def submission(version="v1.5.0", commit="a" * 40) -> requests.Submission:
    return requests.Submission(component="messages", version=version, commit=commit, commit_given=True,
                               archive_url=None, strip_prefix=None, configuration=None, requested_by="ci@messages")


def test_a_version_3_database_gets_kinds_and_keeps_its_requests(tmp_path):
    db = make_v3(tmp_path / "state.db")
    assert "kind" not in columns(db, "requests")
    with SQLiteStore(db, readonly=True) as store, store.read() as tx:  # a reader: as it is, no tries
        assert [(r.component, r.kind) for r in tx.requests()] == [("messages", KIND_REQUEST),
                                                                   ("planner", KIND_REQUEST)]
        assert tx.requests(kind=KIND_TRY) == []
    assert "kind" not in columns(db, "requests")
    with SQLiteStore(db) as store:
        with store.read() as tx:
            assert [r.kind for r in tx.requests()] == [KIND_REQUEST, KIND_REQUEST]
        with store.transaction() as tx:
            t, existing = tries.queue(tx, submission())
            assert (t.kind, t.state, existing) == (KIND_TRY, RequestState.QUEUED, False)
    assert columns(db, "requests")[-2:] == ["kind", "priority"]
    assert raw(db, "SELECT id, kind FROM requests ORDER BY id") == [(1, "request"), (2, "request"), (3, "try")]
    assert raw(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]


def test_tries_stay_out_of_the_merge_queue(store):
    with store.transaction() as tx:
        t, _ = tries.queue(tx, submission())
        assert tries.queue(tx, submission()) == (t, True)  # the same try again: the one waiting
        request, existing, superseded = requests.queue(tx, submission())  # the same bump as a request
        assert (request.kind, existing, superseded) == (KIND_REQUEST, False, [])  # the try is not superseded
        newer, _, superseded = requests.queue(tx, submission("v1.5.1", "b" * 40))
        assert superseded == [request.id]
        assert tx.request(t.id).state == RequestState.QUEUED  # a try is never superseded
        assert [r.id for r in tx.requests()] == [request.id, newer.id]
        assert [r.id for r in tx.requests([RequestState.QUEUED])] == [newer.id]
        assert [r.id for r in tx.requests(kind=KIND_TRY)] == [t.id] == [r.id for r in tries.waiting(tx)]
        assert [r.id for r in requests.touching(tx, ["messages"])] == [newer.id]
        assert tx.request(t.id).is_try and not tx.request(newer.id).is_try
        started = tries.start(tx, t, base_commit="c" * 40)
        assert started.state == RequestState.TESTING and tx.requests([RequestState.TESTING]) == []
        tries.requeue(tx, started, None, reason="stopped for request #2")
        again = tx.request(t.id)
        assert (again.state, again.detail, again.attempts) == (RequestState.QUEUED, "stopped for request #2", 0)
        assert [e.type for e in tx.events(request_id=t.id)] == ["TRY_QUEUED", "TRY_START", "TRY_QUEUED"]
