"""The window's decisions (convoy.queue.chain), without git or Bazel: what is
built on what, who enters the rig stage, what merges, rejects and splits."""

from __future__ import annotations

from convoy.queue.chain import Build, Enter, Failure, Merge, Policy, Reject, Scheduler, Split, StageSpec

STAGES = [StageSpec("build"), StageSpec("integration"), StageSpec("hardware", "hardware")]
RIGS = "rigs"


def scheduler(mode="speculative", *, window=3, batch_size=3, max_bisect=3, rigs=1) -> Scheduler:
    return Scheduler(Policy.of(mode, window=window, batch_size=batch_size, max_bisect=max_bisect), STAGES,
                     needs=lambda item, stage: {RIGS: rigs})


def build_all(s: Scheduler, tip: str, free=None) -> list:
    """Plans, carrying out the Build actions (candidate = 'c' + requests); returns the other actions."""
    rest = []
    for _ in range(10):
        actions = s.plan(tip, free if free is not None else {RIGS: 9})
        builds = [a for a in actions if isinstance(a, Build)]
        if not builds:
            return actions
        for a in builds:
            a.item.making(a.base)
            a.item.made(a.base, "c" + a.item.key)
        rest = [a for a in actions if not isinstance(a, Build)]
    return rest


def pass_to(item, stage):
    item.passed_stages, item.running = stage, False


def test_speculative_chains_each_candidate_on_the_one_ahead():
    s = scheduler(window=3)
    assert [i.requests for i in s.take([1, 2, 3, 4])] == [(1,), (2,), (3,)]  # the window is 3
    first = s.plan("main", {RIGS: 9})
    assert [(a.item.requests, a.base) for a in first] == [((1,), "main")]  # 2 waits for 1's candidate
    first[0].item.making("main")
    first[0].item.made("main", "c1")
    actions = build_all(s, "main")
    assert [(i.requests, i.base) for i in s.chain] == [((1,), "main"), ((2,), "c1"), ((3,), "c2")]
    assert [type(a) for a in actions] == [Enter, Enter, Enter]  # cheap stages run deep in the window
    assert all(a.stage == 0 and not a.rigs for a in actions)


def test_the_rig_stage_waits_for_those_ahead_and_goes_nearest_head_first():
    s = scheduler(window=3)
    s.take([1, 2, 3])
    build_all(s, "main")
    one, two, three = s.chain
    pass_to(one, 1)
    pass_to(two, 2)  # 2 reached the hardware stage before 1 did
    pass_to(three, 2)
    actions = s.plan("main", {RIGS: 2})
    assert not any(isinstance(a, Enter) and a.stage == 2 for a in actions)  # 1 has not passed integration
    pass_to(one, 2)
    actions = [a for a in s.plan("main", {RIGS: 2}) if isinstance(a, Enter)]
    assert [(a.item.requests, a.rigs) for a in actions] == [((1,), {RIGS: 1}), ((2,), {RIGS: 1})]  # 3 gets none
    pass_to(one, 2)
    pass_to(two, 2)
    actions = [a for a in s.plan("main", {RIGS: 0}) if isinstance(a, Enter)]
    assert actions == []  # no pool is asked for more rigs than it has


def test_a_failing_middle_item_is_set_aside_then_rejected_on_its_own_base():
    s = scheduler(window=3)
    s.take([1, 2, 3])
    build_all(s, "main")
    one, two, three = s.chain
    two.failed(Failure(1))
    actions = s.plan("main", {RIGS: 9})
    assert [(type(a), a.item.requests, getattr(a, "base", None)) for a in actions if isinstance(a, Build)] == [
        (Build, (3,), "c1")]  # 3 is built again without 2
    assert not any(isinstance(a, Reject) for a in actions)  # 2's base (1's candidate) is not the tip yet
    build_all(s, "main")
    pass_to(one, 3)
    merge = [a for a in s.plan("main", {RIGS: 9}) if isinstance(a, Merge)]
    assert [a.item.requests for a in merge] == [(1,)]
    s.merged(one)
    actions = s.plan("c1", {RIGS: 9})
    assert [(type(a), a.item.requests) for a in actions if not isinstance(a, Enter)] == [(Reject, (2,))]


def test_a_failing_item_holds_no_place_in_the_window():
    s = scheduler(window=2)
    s.window = 2
    assert [i.requests for i in s.take([1, 2, 3])] == [(1,), (2,)]
    build_all(s, "main")
    s.chain[1].failed(Failure(0))
    assert s.in_flight() == 1
    assert [i.requests for i in s.take([3])] == [(3,)]  # enters while 2 waits to be rejected
    builds = [a for a in s.plan("main", {RIGS: 9}) if isinstance(a, Build)]
    assert [(a.item.requests, a.base) for a in builds] == [((3,), "c1")]  # on 1, without 2
    assert s.take([4]) == []  # 1 and 3 fill the window


def test_the_window_grows_on_merges_and_halves_on_failures():
    s = scheduler(window=4)
    s.window = 4
    s.take([1, 2, 3, 4])
    build_all(s, "main")
    s.chain[0].failed(Failure(0))
    assert [type(a) for a in s.plan("main", {}) if isinstance(a, Reject)] == [Reject]
    s.rejected(s.chain[0])
    assert s.window == 2
    s.merged(s.chain[0])
    assert s.window == 3
    s.rejected(s.chain[0])
    s.rejected(s.chain[0])
    assert s.window == 1  # never below the floor


def test_merge_only_the_head_built_on_the_tip():
    s = scheduler(window=2)
    s.take([1, 2])
    build_all(s, "main")
    one, two = s.chain
    pass_to(one, 3)
    pass_to(two, 3)
    assert [a.item.requests for a in s.plan("main", {}) if isinstance(a, Merge)] == [(1,)]
    assert not any(isinstance(a, Merge) for a in s.plan("elsewhere", {}))  # the branch moved: rebuilt, not merged


def test_a_failed_batch_is_bisected_and_halves_run_side_by_side():
    s = scheduler("batch", window=1, batch_size=4)
    assert [i.requests for i in s.take([1, 2, 3, 4, 5])] == [(1, 2, 3, 4)]
    build_all(s, "main")
    s.chain[0].failed(Failure(1))
    split = s.plan("main", {})
    assert len(split) == 1 and isinstance(split[0], Split)
    assert [p.requests for p in split[0].parts] == [(1, 2), (3, 4)]
    s.split(split[0].item, split[0].parts)
    build_all(s, "main")
    assert [(i.requests, i.base) for i in s.chain] == [((1, 2), "main"), ((3, 4), "c1+2")]


def test_the_build_graph_names_the_suspect_who_is_tested_alone_first():
    s = scheduler("batch", window=1, batch_size=4)
    s.take([1, 2, 3, 4])
    build_all(s, "main")
    s.chain[0].failed(Failure(1, suspects=(3,), how="build graph"))
    split = s.plan("main", {})[0]
    assert isinstance(split, Split) and [p.requests for p in split.parts] == [(3,), (1, 2, 4)]
    assert "build graph" in split.how
    s.split(split.item, split.parts)
    build_all(s, "main")
    s.chain[0].failed(Failure(1))
    assert [(type(a), a.item.requests) for a in s.plan("main", {}) if not isinstance(a, Build)] == [(Reject, (3,))]


def test_after_max_bisect_splits_one_at_a_time():
    s = scheduler("batch", window=1, batch_size=4, max_bisect=0)
    s.take([1, 2, 3])
    build_all(s, "main")
    s.chain[0].failed(Failure(0))
    split = s.plan("main", {})[0]
    assert [p.requests for p in split.parts] == [(1,), (2,), (3,)]
    assert not any(p.splittable for p in split.parts)


def test_a_cancel_in_the_middle_rebuilds_what_was_behind():
    s = scheduler(window=3)
    s.take([1, 2, 3])
    build_all(s, "main")
    s.drop(2)
    assert [i.requests for i in s.chain] == [(1,), (3,)]
    rebuild = [a for a in s.plan("main", {}) if isinstance(a, Build)]
    assert [(a.item.requests, a.base) for a in rebuild] == [((3,), "c1")]


def test_serial_is_one_request_at_a_time():
    s = Scheduler(Policy.of("serial", window=9, batch_size=9), STAGES)
    assert [i.requests for i in s.take([1, 2, 3])] == [(1,)]
