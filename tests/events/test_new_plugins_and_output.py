"""Hardening of event delivery and event output (GitHub issue "Hardening", items 4, 6):

- a new plugin starts at the current event, unless it asks to replay the history;
- stored event text cannot forge a line of `convoy events` or a progress line.

A real SQLite store (the `store` fixture of tests/conftest.py) and the real
`convoy events`. (The plugins themselves: tests/plugins/.)
"""

from __future__ import annotations

import json

import pytest

from convoy import models
from convoy.config import parse_config
from convoy.errors import ConvoyError
from convoy.events import Dispatcher, describe
from convoy.models import Event
from convoy.plugins import make_plugins
from convoy.store import SQLiteStore


# -- a new plugin starts now -----------------------------------------------------------


class Recorder:
    def __init__(self, name: str, replay: bool = False) -> None:
        self.name, self.events, self.replay = name, frozenset({"*"}), replay
        self.got: list[int] = []

    def wants(self, event_type: str) -> bool:
        return True

    def deliver(self, event) -> None:
        self.got.append(event["id"])


def _history(store: SQLiteStore, n: int) -> None:
    with store.transaction() as tx:
        for index in range(n):
            tx.add_event(models.REQUEST_QUEUED, request_id=None, data={"component": f"c{index}"})


def test_a_new_plugin_starts_at_the_current_event_unless_it_replays(store):
    _history(store, 3)
    new, replaying = Recorder("new"), Recorder("replaying", replay=True)
    dispatcher = Dispatcher(store, [new, replaying]).start()
    _history(store, 1)  # event 4, after the start

    assert dispatcher.flush(5)
    dispatcher.stop()

    assert new.got == [4]
    assert replaying.got == [1, 2, 3, 4]
    with store.read() as tx:
        assert (tx.cursor("new"), tx.cursor("replaying")) == (4, 4)


def test_a_known_plugin_still_catches_up_from_its_cursor(store):
    _history(store, 2)
    first = Recorder("known")
    Dispatcher(store, [first]).start().stop()
    _history(store, 2)  # events 3, 4: written while no driver ran

    again = Recorder("known")  # replay does not matter once it has a cursor
    dispatcher = Dispatcher(store, [again]).start()
    assert dispatcher.flush(5)
    dispatcher.stop()

    assert first.got == [] and again.got == [3, 4]


@pytest.mark.parametrize("text, replay", [
    ("", False),
    ("    replay: true\n", True),
    ("    replay: false\n", False),
])
def test_replay_in_convoy_yaml(tmp_path, text, replay):
    config = parse_config(f"plugins:\n  - name: log\n    type: log\n    path: x.jsonl\n{text}", "convoy.yaml")
    (spec,) = config.plugins
    assert spec.replay is replay
    (plugin,) = make_plugins(config.plugins, tmp_path)
    assert plugin.replay is replay


def test_replay_must_be_a_boolean():
    with pytest.raises(ConvoyError) as info:
        parse_config("plugins:\n  - {name: log, type: log, path: x.jsonl, replay: yes please}\n", "convoy.yaml")
    assert str(info.value) == ("convoy.yaml:2: plugins.log.replay: must be true or false, not a string; "
                               "write replay: true or replay: false")


# -- output: stored text cannot forge a line -------------------------------------------------

_FORGED = "ci\n\x1b[2K\rconvoy: error: all good \x1b]8;;http://evil\x07"
_SHOWN = "ci\\n\\x1b[2K\\rconvoy: error: all good \\x1b]8;;http://evil\\x07"


@pytest.mark.parametrize("type_, data, expected", [
    (models.REQUEST_QUEUED, {"component": "planner", "version": "v1", "commit": "a" * 40, "requested_by": _FORGED},
     f"queued: planner v1 @ aaaaaaaaaa (by {_SHOWN})"),
    (models.REQUEST_QUEUED, {"component": "planner", "version": "v1", "commit": None, "requested_by": "me",
                             "archive_url": "https://u:pw@h/a.tgz\n\x1b[31m"},
     "queued: planner v1 @ - from https://u:***@h/a.tgz\\n\\x1b[31m (by me)"),
    (models.REQUEST_CANCELLED, {"reason": _FORGED}, f"cancelled: {_SHOWN}"),
    (models.TASK_COMPLETE, {"stage": "build", "configuration": "rover", "outcome": "BUILD_FAILED", "duration": 1,
                            "detail": _FORGED}, f"task build/rover BUILD_FAILED in 1.0 s: {_SHOWN}"),
    (models.TASK_COMPLETE, {"stage": "build", "configuration": "rover", "outcome": "TESTS_FAILED", "duration": 1,
                            "failing_targets": [{"label": "//x:t\x1b[8m", "status": "failed\n"}]},
     "task build/rover TESTS_FAILED in 1.0 s: //x:t\\x1b[8m failed\\n"),
    (models.BUILD_FAIL, {"number": 1, "reason": _FORGED}, f"build 1 failed: {_SHOWN}"),
    (models.REQUEST_REJECTED, {"summary": _FORGED}, f"rejected: {_SHOWN}"),
    (models.REQUEST_REQUEUED, {"attempts": 1, "limit": 2, "reason": _FORGED},
     f"infrastructure error, back in the queue (attempt 1 of 2 retries): {_SHOWN}"),
    (models.REQUEST_ERROR, {"attempts": 3, "reason": _FORGED}, f"error after 3 attempts: {_SHOWN}"),
    (models.PLUGIN_ERROR, {"plugin": "p", "event_type": "BUILD_FAIL", "event_id": 4, "error": _FORGED},
     f"plugin p failed on BUILD_FAIL #4: {_SHOWN}"),
])
def test_describe_escapes_stored_text(type_, data, expected):
    event = Event(id=1, ts="t", type=type_, request_id=3, build_id=None, stage_id=None, task_id=None, data=data)
    line = describe(event)
    assert line == f"#3 {expected}"
    assert "\n" not in line and "\x1b" not in line and "\r" not in line


def test_convoy_events_prints_one_line_per_event_whatever_is_stored(tmp_path, convoy, capsys):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "manifest.yaml").write_text("")
    store = SQLiteStore(tmp_path / ".convoy" / "state.db")
    try:
        with store.transaction() as tx:
            request = tx.insert_request(component="planner", version="v1", commit="a" * 40, requested_by=_FORGED)
            tx.add_event(models.REQUEST_QUEUED, request_id=request.id,
                         data={"component": "planner", "version": "v1", "requested_by": _FORGED})
            tx.add_event(models.REQUEST_CANCELLED, request_id=request.id, data={"reason": "\u202eevil"})
    finally:
        store.close()

    assert convoy("events", f"--repo={tmp_path}") == 0
    text = capsys.readouterr().out
    assert convoy("events", f"--repo={tmp_path}", "--json") == 0
    as_json = capsys.readouterr().out

    lines = text.splitlines()
    assert len(lines) == 2 and "\x1b" not in text and "\r" not in text and "\u202e" not in text
    assert lines[0].endswith(f"#1 queued: planner v1 @ - (by {_SHOWN})")
    assert lines[1].endswith("#1 cancelled: \\u202eevil")
    rows = [json.loads(line) for line in as_json.splitlines()]
    assert len(rows) == 2 and rows[0]["data"]["requested_by"] == _FORGED
    assert "\x1b" not in as_json and "\u202e" not in as_json
