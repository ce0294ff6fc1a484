"""The store (transactions, the event in the same transaction, leases) and event delivery to plugins (cursors, at least once,
PLUGIN_ERROR routing), without Bazel or git."""

from __future__ import annotations

import concurrent.futures
import gc
import os
import threading
import time

import pytest

from convoy import models
from convoy.events import Dispatcher, describe
from convoy.models import RequestState
from convoy.store import SQLiteStore
from convoy.timing import Meter
from convoy import gitutil


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / ".convoy" / "state.db")
    yield s
    s.close()


def queue(store, component="messages", version="v1.5.0"):
    with store.transaction() as tx:
        request = tx.insert_request(component=component, version=version, commit="a" * 40, requested_by="t")
        tx.add_event(models.REQUEST_QUEUED, request_id=request.id, data={"component": component})
    return request


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


class Recorder:
    def __init__(self, name, events=("*",), fail_on=(), delay=0.0, replay=True):
        self.name, self.events, self.fail_on, self.delay = name, frozenset(events), set(fail_on), delay
        self.replay = replay  # new plugins get the history queued before they start
        self.got = []

    def wants(self, event_type):
        return "*" in self.events or event_type in self.events

    def deliver(self, event):
        time.sleep(self.delay)
        if event["type"] in self.fail_on:
            raise RuntimeError(f"cannot deliver {event['type']}")
        self.got.append(event)


def test_plugins_get_events_in_order_and_catch_up_from_their_cursor(store):
    queue(store)
    plugin = Recorder("log")
    dispatcher = Dispatcher(store, [plugin]).start()
    store.on_commit(dispatcher.notify)
    request = queue(store, "planner")
    assert dispatcher.flush(5)
    dispatcher.stop()
    assert [e["id"] for e in plugin.got] == [1, 2]
    assert set(plugin.got[1]) == {"id", "ts", "type", "request_id", "build_id", "stage_id", "task_id", "data"}
    # Written while no driver delivered (a crash between commit and delivery): caught up at the next start.
    with store.transaction() as tx:
        tx.add_event(models.REQUEST_CANCELLED, request_id=request.id)
    again = Recorder("log")
    second = Dispatcher(store, [again]).start()
    assert second.flush(5)
    second.stop()
    assert [e["id"] for e in again.got] == [3]
    with store.read() as tx:
        assert tx.cursor("log") == 3


def test_a_failing_plugin_is_recorded_and_plugin_error_goes_only_to_who_names_it(store):
    failing = Recorder("failing", fail_on={models.REQUEST_QUEUED})
    everything = Recorder("everything")
    watcher = Recorder("watcher", events=[models.PLUGIN_ERROR])
    loop = Recorder("loop", events=[models.PLUGIN_ERROR], fail_on={models.PLUGIN_ERROR})
    request = queue(store)
    dispatcher = Dispatcher(store, [failing, everything, watcher, loop]).start()
    assert dispatcher.flush(5)
    dispatcher.stop()
    with store.read() as tx:
        events = tx.events()
    assert [e.type for e in events] == [models.REQUEST_QUEUED, models.PLUGIN_ERROR]
    error = events[1]
    assert error.request_id == request.id
    assert dict(error.data) == {"plugin": "failing", "event_id": 1, "event_type": "REQUEST_QUEUED",
                                "error": "cannot deliver REQUEST_QUEUED"}
    assert [e["type"] for e in everything.got] == [models.REQUEST_QUEUED]  # "*" is not PLUGIN_ERROR
    assert [e["type"] for e in watcher.got] == [models.PLUGIN_ERROR]
    assert describe(error) == f"#{request.id} plugin failing failed on REQUEST_QUEUED #1: cannot deliver REQUEST_QUEUED"


def test_a_slow_plugin_does_not_hold_up_the_others(store):
    slow, quick = Recorder("slow", delay=1.0), Recorder("quick")
    dispatcher = Dispatcher(store, [slow, quick]).start()
    store.on_commit(dispatcher.notify)
    for n in range(3):
        queue(store, f"c{n}")
    deadline = time.monotonic() + 2
    while len(quick.got) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(quick.got) == 3 and len(slow.got) < 3
    assert not dispatcher.flush(0.2)  # the slow one is behind: flush says so, bounded
    dispatcher.stop(0.1)


def test_meter_counts_overlapping_time_once_and_measures_git(tmp_path):
    meter = Meter()
    with meter.active():
        def bazel():
            with meter.measure("bazel"):
                time.sleep(0.3)
        threads = [threading.Thread(target=bazel) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        gitutil.run(["--version"])
    assert 0.29 < meter.seconds("bazel") < 0.5
    assert meter.seconds("git") > 0
    assert gitutil.run is not None and gitutil.run.__name__ == "run"  # restored
