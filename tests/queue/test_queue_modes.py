"""Queue modes: which request a mode takes next, and how a mode is chosen
(convoy.queue), on a real SQLite store (the `store` fixture of
tests/conftest.py), without Bazel or git."""

from __future__ import annotations

import dataclasses

import pytest

from convoy.config import parse_config
from convoy.errors import ConvoyError
from convoy.models import RequestState
from convoy.queue import MODES, QueueContext, open_queue
from convoy.queue.serial import SerialQueue


def queue(store, component):
    with store.transaction() as tx:
        return tx.insert_request(component=component, version="v1.5.0", commit="a" * 40, requested_by="t")


def test_the_serial_mode_takes_the_oldest_queued_request(store, tmp_path):
    first, second = queue(store, "messages"), queue(store, "planner")
    with store.transaction() as tx:
        tx.update_request(first.id, state=RequestState.TESTING)
    manager = open_queue(QueueContext(tmp_path, parse_config("", str(tmp_path / "convoy.yaml")), store))
    assert isinstance(manager, SerialQueue) and manager.mode == "serial"
    with store.read() as tx:
        assert manager.next_request(tx).id == second.id


def test_an_unknown_mode_is_one_line(store, tmp_path):
    config = dataclasses.replace(parse_config("", str(tmp_path / "convoy.yaml")), queue_mode="zipper")
    with pytest.raises(ConvoyError, match="queue mode 'zipper' is not implemented"):
        open_queue(QueueContext(tmp_path, config, store))


@pytest.mark.parametrize("mode", ["speculative", "batch"])
def test_the_window_modes_take_their_numbers_from_convoy_yaml(store, tmp_path, mode):
    text = f"queue: {{mode: {mode}, window: 5, window_floor: 2, batch_size: 3, max_bisect: 1}}\npools: {{rigs: 2}}\n"
    manager = open_queue(QueueContext(tmp_path, parse_config(text, str(tmp_path / "convoy.yaml")), store))
    assert manager.policy.mode == mode and manager.policy.window == 5 and manager.policy.window_floor == 2
    assert manager.policy.batch_size == (3 if mode == "batch" else 1) and manager.policy.max_bisect == 1
    assert manager.capacity() == {"rigs": 2}


def test_every_mode_convoy_yaml_accepts_has_a_class():
    from convoy.config import QUEUE_MODES

    assert set(QUEUE_MODES) == set(MODES)
