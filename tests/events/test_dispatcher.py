"""Event delivery to plugins (convoy.events.Dispatcher): cursors, at least
once, PLUGIN_ERROR routing, a slow plugin does not hold up the others;
without Bazel or git. The store is the `store` fixture of tests/conftest.py."""

from __future__ import annotations

import time

from convoy import models
from convoy.events import Dispatcher, describe

from tests.support.store import queue


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
