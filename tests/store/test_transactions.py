"""The SQLite store: transactions (the event in the same transaction as its
change), WAL mode and one connection per thread, leases; without Bazel or
git. The store is the `store` fixture of tests/conftest.py."""

from __future__ import annotations

import concurrent.futures
import gc
import os
import threading

import pytest

from convoy import models
from convoy.models import RequestState

from tests.support.store import queue


def test_a_failed_transaction_writes_neither_the_change_nor_its_event(store):
    request = queue(store)
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.update_request(request.id, state=RequestState.CANCELLED)
            tx.add_event(models.REQUEST_CANCELLED, request_id=request.id)
            raise RuntimeError("the machine went away")
    with store.read() as tx:
        assert tx.request(request.id).state == RequestState.QUEUED
        assert [e.type for e in tx.events()] == [models.REQUEST_QUEUED]


def test_wal_mode_and_one_connection_per_thread(store):
    with store.read() as tx:
        assert tx.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    request = queue(store)
    seen = []

    def writer(n):
        with store.transaction() as tx:
            tx.add_event(models.TASK_START, request_id=request.id, data={"n": n})
            seen.append(n)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.read() as tx:
        events = tx.events(request_id=request.id)
    assert len(events) == 9 and [e.id for e in events] == sorted(e.id for e in events)


def test_threads_that_end_do_not_leak_connections(store):
    # convoy process runs each stage's tasks on a new thread pool; a
    # connection per finished thread left open ran a long-lived driver out of
    # file descriptors (about 60 requests at ulimit -n 1024).
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    queue(store)
    with store.read() as tx:
        tx.requests()
    before = fds()
    for _ in range(30):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(_read_requests, store) for _ in range(4)]:
                assert future.result() == 1
    gc.collect()
    assert store.open_connections() == 1  # this thread's
    assert fds() <= before + 2, f"{fds() - before} file descriptors more after 120 task threads"


def _read_requests(store) -> int:
    with store.read() as tx:
        return len(tx.requests())


def test_a_lease_has_one_live_holder(store):
    with store.transaction() as tx:
        assert tx.acquire_lease("queue", "host:1", ttl=60) is None
        assert tx.acquire_lease("queue", "host:2", ttl=60) == "host:1"
        assert tx.acquire_lease("queue", "host:1", ttl=60) is None  # renewal
        tx.release_lease("queue", "host:1")
        assert tx.acquire_lease("queue", "host:2", ttl=-1) is None  # expired at once
        assert tx.acquire_lease("queue", "host:3", ttl=60) is None
