"""Several queues in one PostgreSQL database: one schema per queue, chosen
by the URL's search_path (docs/driver.md, "Several workers, one queue").
Each queue's store has its own requests, events and lease; a real server."""

from __future__ import annotations

import psycopg

from convoy.store import open_store

from tests.support.store import queue


def test_two_queues_in_two_schemas_of_one_database_keep_apart(pg_server, pg_url):
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_server.url(name), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA main_queue")
        conn.execute("CREATE SCHEMA release_queue")
    urls = {schema: f"{pg_url}?options=-csearch_path%3D{schema}" for schema in ("main_queue", "release_queue")}
    with open_store(urls["main_queue"]) as main, open_store(urls["release_queue"]) as release:
        first = queue(main, "messages", "v1.5.0")
        queue(main, "planner", "v2.2.0")
        other = queue(release, "firmware", "v3.0.2")
        with main.transaction() as tx:
            assert tx.acquire_lease("queue", "worker-a:1", 30) is None
        with release.transaction() as tx:
            assert tx.acquire_lease("queue", "worker-b:2", 30) is None  # its own lease: not worker-a's
        with main.read() as tx:
            assert [(r.id, r.component) for r in tx.requests()] == [(first.id, "messages"), (first.id + 1, "planner")]
            assert len(tx.events()) == 2
        with release.read() as tx:
            assert [(r.id, r.component) for r in tx.requests()] == [(other.id, "firmware")]
            assert [lease.owner for lease in tx.leases()] == ["worker-b:2"]
    with psycopg.connect(pg_server.url(name), autocommit=True) as conn:
        tables = {row[0] for row in conn.execute(
            "SELECT DISTINCT table_schema FROM information_schema.tables WHERE table_name = 'requests'")}
    assert tables == {"main_queue", "release_queue"}
