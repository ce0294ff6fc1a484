"""The window's decisions: what is in flight, what each candidate is built on,
who takes the rigs, what merges, what is rejected and how a failed batch splits.

Pure decisions over a list of `Item`s: no git, no Bazel, no store, no clock.
`convoy process` (convoy.queue.window, on real candidates) and `convoy
simulate` (convoy.simulate, on a simulated clock) run this same code:

    scheduler = Scheduler(Policy.of(name, window=4), stages)       # name: a mode of convoy.modes
    scheduler.promote(queued_ids, priority)           # higher-priority requests ahead (a reset behind them)
    scheduler.take(queued_ids, priority)              # new items, as the window allows
    for action in scheduler.plan(tip, free_rigs):     # Build, Enter, Merge, Reject, Split
        ...                                           # carry it out; after a RESHAPING one, plan again
    item.making(base)                                 # the executor reports what it did:
    item.made(base, candidate); item.stage_passed(); item.failed(Failure(...))
    scheduler.merged(item); scheduler.rejected(item); scheduler.split(item, parts)

The chain is Zuul's dependent pipeline: each item (one request, a group, or
a batch of requests) is built on the candidate of the nearest item ahead
that is not failing (NNFI), or on the branch tip. An item whose base is not
that any more is built again (`Build`; the executor cancels its old build).
A failing item is set aside, not a base for those behind; it is rejected
(or, a batch, split) only once its base is the tip: it is known to fail on
its own. An item that passed merges once it is the first non-failing item
and its base is the tip, so the branch only ever moves to a commit that was
tested exactly as pushed.

Stages draw on resources. A stage with a pool (the hardware stage) is
entered (`Enter`) only when every non-failing item ahead has passed the
stages before it and the pool has the rigs the item needs; the rigs go to
the items nearest the head first, and no pool is ever asked for more rigs
than it has. Other stages are entered as soon as the item reaches them.

The window (items in flight, not counting failing items: their builds are
over, and they wait only to be rejected) grows by one on each merge up to
`Policy.window`, halves on each rejection or split, never below
`Policy.window_floor`. A failed batch at the tip is split: the requests the
build graph names (`Failure.suspects`) alone first, else in halves tested
side by side; after `Policy.max_bisect` splits, one request at a time.

Priority (`convoy submit --priority=high`, `convoy promote`): the queued
ids come highest priority first, then oldest, and `take` keeps that order.
A queued request of a higher priority than an item that has not passed its
build goes ahead of that item even in a full window (`promote`, as Zuul's
`promote` re-enqueues the queue): every item behind it is reset and built
again on top of it, its old build cancelled. Items that passed their build
at the head merge as they are; a request already in the chain stays where it
is. The window holds the promoted items beyond its size until merges make room.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence, Union

from convoy import modes

MODES = modes.MODES  # name -> convoy.modes.Mode, the one registry


@dataclass(frozen=True)
class Policy:
    """A mode's numbers (the default: the serial mode's, one item of one request at a time);
    `preempts`: whether a promoted request goes ahead of an item in flight."""

    mode: str = modes.DEFAULT
    window: int = 1
    window_floor: int = 1
    batch_size: int = 1
    max_bisect: int = 3
    preempts: bool = False

    @classmethod
    def of(cls, mode: str, *, window: int = 4, window_floor: int = 1, batch_size: int = 4,
           max_bisect: int = 3) -> "Policy":
        """The policy of the mode called `mode` (convoy.modes) with these queue settings."""
        spec = modes.get(mode)
        return cls(spec.name, preempts=spec.preempts, **spec.numbers(window=window, window_floor=window_floor,
                                                                     batch_size=batch_size, max_bisect=max_bisect))


@dataclass(frozen=True)
class StageSpec:
    """A stage as the scheduler sees it: its name and the rig pool it draws on (None: local or remote slots)."""

    name: str
    pool: Optional[str] = None


@dataclass(frozen=True)
class Failure:
    """Why an item's candidate failed: its stage and failing targets, and the
    requests the build graph can explain it by (None: not known)."""

    stage: int
    targets: tuple[str, ...] = ()
    suspects: Optional[tuple[int, ...]] = None
    how: str = ""


@dataclass(eq=False)
class Item:
    """One candidate's worth of requests in the chain, and its candidate's progress."""

    requests: tuple[int, ...]
    depth: int = 0  # the bisection splits that made it
    splittable: bool = True  # False: a group, or one request
    base: Optional[str] = None  # what its current candidate is built on
    candidate: Optional[str] = None
    pending_base: Optional[str] = None  # a candidate on this base is being made
    passed_stages: int = 0
    running: bool = False  # a stage of its candidate is running (or was entered)
    failure: Optional[Failure] = None
    rigs: dict = field(default_factory=dict)  # pool -> rigs it holds now
    how: str = ""  # how it came to be (a split's reason)
    priority: int = 0  # its requests' highest (convoy.models.PRIORITIES)

    @property
    def key(self) -> str:
        return "+".join(str(r) for r in self.requests)

    # -- what the executor reports --------------------------------------------------------

    def making(self, base: str) -> None:
        """Its candidate on `base` is being made."""
        self.pending_base = base
        self.running = False

    def made(self, base: str, candidate: str) -> None:
        self.base, self.candidate, self.pending_base = base, candidate, None
        self.passed_stages, self.running, self.failure = 0, False, None

    def unmade(self) -> None:
        """Its candidate could not be made (or its build was thrown away): made again next."""
        self.base = self.candidate = self.pending_base = None
        self.passed_stages, self.running, self.failure = 0, False, None

    def stage_passed(self) -> None:
        self.passed_stages += 1
        self.running = False

    def failed(self, failure: Failure) -> None:
        self.failure = failure
        self.running = False

    def passed(self, stage_count: int) -> bool:
        return self.failure is None and self.candidate is not None and self.passed_stages >= stage_count

    def to_json(self) -> dict:
        return {"requests": list(self.requests), "depth": self.depth, "splittable": self.splittable,
                "how": self.how, **({"priority": self.priority} if self.priority else {})}

    @classmethod
    def from_json(cls, data: Mapping) -> "Item":
        return cls(tuple(int(r) for r in data["requests"]), depth=int(data.get("depth", 0)),
                   splittable=bool(data.get("splittable", True)), how=str(data.get("how", "")),
                   priority=int(data.get("priority") or 0))


@dataclass(frozen=True)
class Build:
    item: Item
    base: str


@dataclass(frozen=True)
class Enter:
    item: Item
    stage: int
    rigs: Mapping[str, int]


@dataclass(frozen=True)
class Merge:
    item: Item


@dataclass(frozen=True)
class Reject:
    item: Item


@dataclass(frozen=True)
class Split:
    item: Item
    parts: tuple[Item, ...]
    how: str


Action = Union[Build, Enter, Merge, Reject, Split]
# After one of these the chain is not what the rest of the plan assumed: plan again.
RESHAPING = (Merge, Reject, Split)
Needs = Callable[[Item, int], Mapping[str, int]]


class Scheduler:
    """The chain of one queue and the decisions on it (see the module docstring)."""

    def __init__(self, policy: Policy, stages: Sequence[StageSpec], *, needs: Optional[Needs] = None) -> None:
        self.policy = policy
        self.stages = tuple(stages)
        self.chain: list[Item] = []
        self.window = policy.window
        self._needs = needs or (lambda item, stage: {self.stages[stage].pool: 1})

    # -- the chain -------------------------------------------------------------------------------

    def take(self, queued: Sequence[int], priority: Optional[Mapping[int, int]] = None) -> list[Item]:
        """Appends items of `queued` request ids (in the order the queue takes
        them: highest priority first, then oldest; those in the chain already
        are left out) while the window has room."""
        priority = priority or {}
        inside = {r for item in self.chain for r in item.requests}
        waiting = [r for r in queued if r not in inside]
        new = []
        while waiting and self.in_flight() < self.window:
            batch = [waiting.pop(0)]
            while waiting and len(batch) < self.policy.batch_size:
                batch.append(waiting.pop(0))
            item = Item(tuple(batch), splittable=len(batch) > 1, priority=max(priority.get(r, 0) for r in batch))
            self.chain.append(item)
            new.append(item)
        return new

    def promote(self, queued: Sequence[int], priority: Mapping[int, int]) -> tuple[list[Item], list[Item]]:
        """Puts each queued request of a higher priority than an item that has
        not passed its build ahead of that item, even in a full window; every
        item behind it is reset (built again on top of it). An item in the
        chain takes its requests' new priority and stays where it is. Returns
        (the new items, the reset items that had a build: the executor cancels it).
        A policy that does not preempt (serial) only updates the priorities: `take` takes them first."""
        for item in self.chain:
            item.priority = max([item.priority, *(priority.get(r, 0) for r in item.requests)])
        if not self.policy.preempts:
            return [], []
        inside = {r for item in self.chain for r in item.requests}
        new: list[Item] = []
        reset: list[Item] = []
        for rid in queued:
            wanted = priority.get(rid, 0)
            index = self._overtaken(wanted)
            if rid in inside or index is None:
                continue  # take() takes it, as the window allows
            for item in self.chain[index:]:
                if (item.candidate is not None or item.pending_base is not None) and item not in reset:
                    reset.append(item)
                item.unmade()
            promoted = Item((rid,), splittable=False, priority=wanted)
            self.chain.insert(index, promoted)
            new.append(promoted)
            inside.add(rid)
        return new, reset

    def _overtaken(self, priority: int) -> Optional[int]:
        """The first item of a lower priority than `priority` that has not passed its build: its index, or None."""
        return next((index for index, item in enumerate(self.chain)
                     if item.priority < priority and not item.passed(len(self.stages))), None)

    def in_flight(self) -> int:
        """The items the window counts: a failing item (set aside, its
        builds over, waiting to be rejected on its own base) holds no place."""
        return sum(1 for item in self.chain if item.failure is None)

    def item_of(self, request_id: int) -> Optional[Item]:
        return next((item for item in self.chain if request_id in item.requests), None)

    def drop(self, request_id: int) -> Optional[Item]:
        """Takes a request out (cancelled): its item is remade without it, or goes."""
        item = self.item_of(request_id)
        if item is None:
            return None
        rest = tuple(r for r in item.requests if r != request_id)
        index = self.chain.index(item)
        if not rest:
            self.chain.pop(index)
            return item
        remade = Item(rest, depth=item.depth, splittable=item.splittable and len(rest) > 1, how=item.how,
                      priority=item.priority)
        self.chain[index] = remade
        return item

    # -- what the executor did ----------------------------------------------------------------

    def merged(self, item: Item) -> None:
        self.chain.remove(item)
        self.window = min(self.policy.window, self.window + 1)

    def rejected(self, item: Item) -> None:
        self.chain.remove(item)
        self._shrink()

    def split(self, item: Item, parts: Sequence[Item]) -> None:
        index = self.chain.index(item)
        self.chain[index:index + 1] = list(parts)
        self._shrink()

    def _shrink(self) -> None:
        self.window = max(self.policy.window_floor, self.window // 2)

    # -- the decisions --------------------------------------------------------------------------

    def plan(self, tip: str, free: Mapping[str, int]) -> list[Action]:
        """What to do now, given the branch's `tip` and each pool's free rigs."""
        actions: list[Action] = []
        free = dict(free)
        expected: Optional[str] = tip  # the base the next item must be built on (None: not made yet)
        ahead_passed = len(self.stages)  # the fewest stages a non-failing item ahead has passed
        head_taken = False  # a non-failing item is ahead
        for item in list(self.chain):
            if expected is None:
                break  # the item ahead has no candidate yet: what is behind waits for it
            if item.candidate is None or item.base != expected:
                if item.pending_base != expected:  # (the executor sets pending_base when it starts the build)
                    actions.append(Build(item, expected))
                if item.failure is None:
                    expected, head_taken, ahead_passed = None, True, 0
                continue
            if item.failure is not None:
                if item.base == tip:  # known to fail on its own base
                    actions.append(self._split_or_reject(item))
                continue  # set aside: not a base for what is behind
            if item.passed(len(self.stages)):
                if not head_taken and item.base == tip:
                    actions.append(Merge(item))
            elif not item.running:
                enter = self._enter(item, ahead_passed, free)
                if enter is not None:
                    actions.append(enter)
            expected, head_taken = item.candidate, True
            ahead_passed = min(ahead_passed, item.passed_stages)
        return actions

    def _enter(self, item: Item, ahead_passed: int, free: dict) -> Optional[Enter]:
        stage = item.passed_stages
        if self.stages[stage].pool is None:
            return Enter(item, stage, {})
        if ahead_passed < stage:
            return None  # a candidate ahead has not passed the earlier stages
        needs = {pool: n for pool, n in self._needs(item, stage).items() if n > 0}
        if any(free.get(pool, 0) < n for pool, n in needs.items()):
            for pool in needs:  # nobody behind may take what this one waits for
                free[pool] = 0
            return None
        for pool, n in needs.items():
            free[pool] -= n
        return Enter(item, stage, needs)

    def _split_or_reject(self, item: Item) -> Action:
        requests = item.requests
        if not item.splittable or len(requests) < 2:
            return Reject(item)
        if item.depth >= self.policy.max_bisect:
            parts = tuple(Item((r,), depth=item.depth + 1, splittable=False, priority=item.priority,
                               how=f"one at a time after {item.depth} splits") for r in requests)
            return Split(item, parts, f"one at a time after {item.depth} failed splits")
        suspects = item.failure.suspects if item.failure is not None else None
        if suspects and 0 < len(suspects) < len(requests) and set(suspects) <= set(requests):
            alone = tuple(r for r in requests if r in suspects)
            rest = tuple(r for r in requests if r not in suspects)
            how = (item.failure.how or "build graph") + f": suspects {_ids(alone)} tested alone first"
            return Split(item, (self._part(alone, item, how), self._part(rest, item, how)), how)
        half = len(requests) // 2
        how = f"bisection: {_ids(requests[:half])} and {_ids(requests[half:])} tested side by side"
        return Split(item, (self._part(requests[:half], item, how), self._part(requests[half:], item, how)), how)

    def _part(self, requests: tuple[int, ...], item: Item, how: str) -> Item:
        return Item(requests, depth=item.depth + 1, splittable=len(requests) > 1, how=how, priority=item.priority)

    # -- the rigs ------------------------------------------------------------------------------

    def rigs_held(self) -> dict[str, int]:
        held: dict[str, int] = {}
        for item in self.chain:
            for pool, n in item.rigs.items():
                held[pool] = held.get(pool, 0) + n
        return held


def _ids(requests: Sequence[int]) -> str:
    return ("request " if len(requests) == 1 else "requests ") + ", ".join(f"#{r}" for r in requests)
