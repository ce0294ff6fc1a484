"""The queue modes: one class per mode, registered once; every other module asks this one.

    from convoy import modes

    modes.names()                    # ("serial", "speculative", "batch"), in registration order
    mode = modes.get("batch")        # a Mode; an unknown name is a one-line ConvoyError listing the known ones
    mode.has_window, mode.batches    # what callers test instead of a mode's name
    mode.numbers(window=4, window_floor=1, batch_size=4, max_bisect=3)   # its chain.Policy numbers

A mode is a `Mode` subclass with a `name`: defining it registers it (in
`MODES`, name -> instance, in definition order), so that convoy.yaml's
`queue.mode` accepts it, `convoy process` runs it (convoy.queue: every mode
is a policy of the one scheduler, convoy.queue.chain, carried out by
convoy.queue.window) and `convoy simulate` compares it. `DEFAULT` is the
mode of a convoy.yaml that names none. Nothing outside this module spells
a mode's name (tests/modes/test_registry.py checks it).

This is a low module: it imports nothing of convoy's but convoy.errors, so
that convoy.config may import it.
"""

from __future__ import annotations

from typing import ClassVar

from convoy.errors import ConvoyError

__all__ = ["DEFAULT", "MODES", "Batch", "Mode", "Serial", "Speculative", "get", "names"]

MODES: dict[str, "Mode"] = {}  # name -> the mode, in definition order


class Mode:
    """A queue mode: its name, what it can do, and its scheduler numbers from convoy.yaml's queue settings."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    has_window: ClassVar[bool] = True  # more than one candidate may be in flight (status shows the chain)
    batches: ClassVar[bool] = False  # several requests may share one candidate (queue.batch_size counts)
    preempts: ClassVar[bool] = True  # a promoted request goes ahead of an item in flight (its build is cancelled)
    colour: ClassVar[str] = ""  # its line in `convoy simulate --plot` ("": one of the spare colours)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            MODES[cls.name] = cls()

    def numbers(self, *, window: int, window_floor: int, batch_size: int, max_bisect: int) -> dict:
        """The keyword arguments of its `chain.Policy`: a window of `window` items, halving to no less
        than `window_floor`; `batch_size` requests per item if it batches; `max_bisect` splits."""
        return {"window": max(1, window), "window_floor": max(1, min(window_floor, window)),
                "batch_size": max(1, batch_size) if self.batches else 1, "max_bisect": max(0, max_bisect)}

    def __repr__(self) -> str:
        return f"<queue mode {self.name}>"


class Serial(Mode):
    name = "serial"
    summary = "one candidate at a time, highest priority then oldest, on the branch tip"
    has_window = False
    preempts = False  # the one in flight is never interrupted for a promote
    colour = "#d62728"

    def numbers(self, *, window: int, window_floor: int, batch_size: int, max_bisect: int) -> dict:
        return {"window": 1, "window_floor": 1, "batch_size": 1, "max_bisect": 3}  # the settings do not apply


class Speculative(Mode):
    name = "speculative"
    summary = "a window of candidates, each built on the one ahead"
    colour = "#1f77b4"


class Batch(Mode):
    name = "batch"
    summary = "up to batch_size requests in one candidate; a failed one is split"
    batches = True
    colour = "#2ca02c"


DEFAULT = Serial.name


def names() -> tuple[str, ...]:
    """The modes' names, in definition order."""
    return tuple(MODES)


def get(name: str) -> Mode:
    """The mode called `name`; a ConvoyError naming the known modes if there is none."""
    try:
        return MODES[name]
    except (KeyError, TypeError):
        raise ConvoyError(f"'{name}' is not a queue mode (known: {', '.join(MODES)}); "
                          f"set queue.mode to one of them in convoy.yaml") from None
