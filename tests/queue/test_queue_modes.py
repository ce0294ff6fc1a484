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
from convoy.queue.window import WindowQueue


def queue(store, component):
    with store.transaction() as tx:
        return tx.insert_request(component=component, version="v1.5.0", commit="a" * 40, requested_by="t")


def test_the_serial_mode_takes_the_oldest_queued_request(store, tmp_path):
    first, second = queue(store, "messages"), queue(store, "planner")
    with store.transaction() as tx:
        tx.update_request(first.id, state=RequestState.TESTING)
    manager = open_queue(QueueContext(tmp_path, parse_config("", str(tmp_path / "convoy.yaml")), store))
    assert isinstance(manager, WindowQueue) and manager.mode == "serial"  # serial is a policy of the one executor
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


HARDWARE = "stages:\n  - {name: hardware, command: test, tag_filter: convoy-hardware, check_pools: true}\n"


def test_without_pools_the_rigs_are_the_labs_healthy_workers(store, tmp_path, monkeypatch):
    from convoy.lab import pools

    asked = []

    def bots(lab):  # the lab's answer (tests/lab runs the real lab; here only the counting is checked)
        asked.append(lab.server)
        return [pools.Bot("r1", "rover-rigs", "OK", True, ()), pools.Bot("r2", "rover-rigs", "OK", True, ()),
                pools.Bot("r3", "rover-rigs", "OK", False, ()), pools.Bot("d1", "drone-rigs", "OK", True, ())]

    monkeypatch.setattr(pools, "bots", bots)
    text = "queue: {mode: speculative}\n" + HARDWARE
    manager = open_queue(QueueContext(tmp_path, parse_config(text, str(tmp_path / "convoy.yaml")), store))
    assert manager.capacity() == {"rover-rigs": 2, "drone-rigs": 1}  # the unhealthy one does not count
    assert manager.capacity() == {"rover-rigs": 2, "drone-rigs": 1} and len(asked) == 1  # asked once a while


def test_no_lab_and_no_pools_counts_no_rigs_and_says_so(store, tmp_path, monkeypatch):
    from convoy.errors import ConvoyError as Unreachable
    from convoy.lab import pools

    def bots(lab):
        raise Unreachable("asking the lab at 127.0.0.1:50051 (workers) failed: connection refused")

    monkeypatch.setattr(pools, "bots", bots)
    lines = []
    text = "queue: {mode: batch}\n" + HARDWARE
    manager = open_queue(QueueContext(tmp_path, parse_config(text, str(tmp_path / "convoy.yaml")), store,
                                      out=lines.append))
    assert manager.capacity() == {}
    assert lines == ["convoy: cannot ask the lab for its rigs (asking the lab at 127.0.0.1:50051 (workers) failed: "
                     "connection refused); set pools: in convoy.yaml to count them"]
