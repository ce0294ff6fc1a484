"""The one registry of queue modes (convoy.modes): nothing else spells a mode's name, and a new
mode class is all a new mode takes to be accepted by convoy.yaml, run by `convoy process` and
compared by `convoy simulate`."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import convoy
from convoy import main, modes
from convoy.config import QUEUE_MODES, parse_config
from convoy.errors import ConvoyError
from convoy.queue import QueueContext, WindowQueue, open_queue
from convoy.queue.chain import Policy

PACKAGE = Path(convoy.__file__).parent


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring constants of a module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def test_no_module_but_modes_spells_a_mode_name():
    names = set(modes.names())
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "modes.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in docstrings:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
    assert found == [], "ask convoy.modes instead of spelling a mode's name:\n" + "\n".join(found)


def test_the_registry_is_ordered_and_an_unknown_name_is_one_line():
    assert modes.names() == ("serial", "speculative", "batch") and modes.DEFAULT == "serial"
    assert [type(m) for m in modes.MODES.values()] == [modes.Serial, modes.Speculative, modes.Batch]
    assert not modes.get("serial").has_window and not modes.get("serial").preempts
    assert modes.get("batch").batches and not modes.get("speculative").batches
    with pytest.raises(ConvoyError, match=r"^'zipper' is not a queue mode \(known: serial, speculative, batch\);") as e:
        modes.get("zipper")
    assert "\n" not in str(e.value)


def test_serial_is_window_one_batch_one_whatever_the_settings():
    policy = Policy.of("serial", window=9, window_floor=3, batch_size=9, max_bisect=1)
    assert (policy.window, policy.window_floor, policy.batch_size, policy.preempts) == (1, 1, 1, False)
    assert Policy.of("speculative", window=5, batch_size=9).batch_size == 1


@pytest.fixture
def zipper():
    """A new mode, defined as a plugin of convoy would: two at a time, batches of two, no preemption."""

    class Zipper(modes.Mode):
        name = "zipper"
        summary = "two by two"
        batches = True
        preempts = False

        def numbers(self, *, window, window_floor, batch_size, max_bisect):
            return {"window": 2, "window_floor": 1, "batch_size": 2, "max_bisect": 0}

    try:
        yield Zipper
    finally:
        del modes.MODES["zipper"]


def test_a_new_mode_class_registers_and_convoy_yaml_and_the_queue_take_it(zipper, store, tmp_path):
    assert modes.names()[-1] == "zipper" and "zipper" in QUEUE_MODES
    config = parse_config("queue: {mode: zipper, window: 7}\n", str(tmp_path / "convoy.yaml"))
    assert config.queue_mode == "zipper"
    queue = open_queue(QueueContext(tmp_path, config, store))
    assert isinstance(queue, WindowQueue) and queue.mode == "zipper"
    assert (queue.policy.window, queue.policy.batch_size, queue.policy.preempts) == (2, 2, False)


def test_without_the_class_convoy_yaml_names_the_known_modes(tmp_path):
    with pytest.raises(ConvoyError, match=r"'zipper' is not a queue mode \(known: serial, speculative, batch\)"):
        parse_config("queue: {mode: zipper}\n", str(tmp_path / "convoy.yaml"))


def test_a_new_mode_class_is_compared_by_convoy_simulate(zipper, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no manifests/manifest.yaml here or above
    code = main.main(["convoy", "simulate", "--modes=serial,zipper", "--requests=10", "--arrival_per_hour=120"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    rows = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
    assert rows[:2] == ["serial", "zipper"], out

