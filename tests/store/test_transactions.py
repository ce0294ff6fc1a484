"""The SQLite store: WAL mode and one connection per thread; and, on both
backends (`any_store`), that threads which end close their connections;
without Bazel or git. What every backend does alike (transactions, the
event in the same transaction as its change, leases, every method) is
tests/store/test_contract.py."""

from __future__ import annotations

import concurrent.futures
import gc
import os
import threading

from convoy import models

from tests.support.store import queue


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


def test_threads_that_end_do_not_leak_connections(any_store):
    # convoy process runs each stage's tasks on a new thread pool; a
    # connection per finished thread left open ran a long-lived driver out of
    # file descriptors (about 60 requests at ulimit -n 1024).
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    queue(any_store)
    with any_store.read() as tx:
        tx.requests()
    before = fds()
    for _ in range(30):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(_read_requests, any_store) for _ in range(4)]:
                assert future.result() == 1
    gc.collect()
    assert any_store.open_connections() == 1  # this thread's
    assert fds() <= before + 2, f"{fds() - before} file descriptors more after 120 task threads"


def _read_requests(store) -> int:
    with store.read() as tx:
        return len(tx.requests())
