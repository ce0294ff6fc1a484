"""convoy.simulate, the engine: the real scheduler (convoy.queue.chain) on a simulated clock.

Pure Python and fast (a run of 100 requests is a few hundredths of a second).
The scenario of issue 11: 4 rigs, a request in ten breaks a stage, three
3-minute stages and a 30-minute hardware stage, 100 requests submitted at
1000 an hour (the queue is never empty), seeds 1 to 3.
"""

from __future__ import annotations

import pytest

from convoy.queue import chain
from convoy.queue.chain import Merge, Policy
from convoy.simulate import Settings, simulate

ISSUE_STAGES = {"build": 180, "integration": 180, "configuration": 180, "hardware": 1800}
SEEDS = (1, 2, 3)


def issue_settings(seed: int, **changes) -> Settings:
    values = dict(requests=100, arrival_per_hour=1000, failure_rate=0.1, rigs={"rigs": 4},
                  stage_seconds=dict(ISSUE_STAGES), seed=seed)
    values.update(changes)
    return Settings(**values)


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_merges_three_times_as_many_per_hour_as_serial(seed):
    settings = issue_settings(seed)
    serial = simulate(Policy.of("serial"), settings)
    batch = simulate(Policy.of("batch"), settings)
    assert batch.merges_per_hour >= 3 * serial.merges_per_hour
    assert serial.green_violations == batch.green_violations == 0
    assert batch.merged + batch.rejected == serial.merged + serial.rejected == 100


@pytest.mark.parametrize("seed", SEEDS)
def test_speculative_merges_three_times_as_many_per_hour_as_serial_with_few_extra_hardware_runs(seed):
    """A window of twice the rigs: a request taken into the window when one
    ahead merges needs the 9 minutes of the first three stages before it
    can take the freed rig, so a window of only 4 leaves rigs idle. (At the
    default window of 4 see the next test.)"""
    settings = issue_settings(seed)
    serial = simulate(Policy.of("serial"), settings)
    speculative = simulate(Policy.of("speculative", window=8), settings)
    assert speculative.merges_per_hour >= 3 * serial.merges_per_hour
    assert speculative.hardware_runs_per_merge <= 1.5
    assert speculative.green_violations == serial.green_violations == 0
    assert speculative.merged == serial.merged  # the same requests break, the same are merged


@pytest.mark.parametrize("seed", SEEDS)
def test_speculative_at_the_default_window(seed):
    """The default window (4, as convoy.yaml's queue.window): 3.6x, 3.3x and
    2.9x serial at seeds 1, 2, 3. Seed 3 draws 17 breaking requests of 100
    instead of 10, and each rejection halves the window."""
    settings = issue_settings(seed)
    serial = simulate(Policy.of("serial"), settings)
    speculative = simulate(Policy.of("speculative"), settings)
    assert speculative.merges_per_hour >= 2.5 * serial.merges_per_hour
    assert speculative.hardware_runs_per_merge <= 1.5
    assert speculative.green_violations == 0


@pytest.mark.parametrize("mode", chain.MODES)
def test_the_same_seed_gives_the_same_report(mode):
    settings = issue_settings(2, flake_rate=0.05)
    first = simulate(Policy.of(mode), settings).to_json(timeline=True)
    second = simulate(Policy.of(mode), settings).to_json(timeline=True)
    assert first == second
    assert first["timeline"]  # the timeline is compared too
    other = simulate(Policy.of(mode), issue_settings(3, flake_rate=0.05)).to_json(timeline=True)
    assert other != first


@pytest.mark.parametrize("mode", chain.MODES)
def test_without_failures_nothing_is_rejected(mode):
    report = simulate(Policy.of(mode), issue_settings(1, failure_rate=0.0))
    assert (report.merged, report.rejected, report.splits, report.green_violations) == (100, 0, 0, 0)
    if mode == "serial":  # each request through each stage once
        assert report.runs_per_merge == len(ISSUE_STAGES)
        assert report.hardware_runs_per_merge == 1


@pytest.mark.parametrize("mode", chain.MODES)
@pytest.mark.parametrize("seed", SEEDS)
def test_flaky_stages_never_merge_anything_untested(mode, seed):
    report = simulate(Policy.of(mode), issue_settings(seed, flake_rate=0.1))
    assert report.green_violations == 0
    assert report.merged + report.rejected == 100
    assert report.wrongly_rejected > 0  # the flakes did happen (and rejected good requests)


def test_a_window_of_one_is_serial():
    settings = issue_settings(1)
    serial = simulate(Policy.of("serial"), settings).to_json()
    one = simulate(Policy.of("speculative", window=1), settings).to_json()
    assert one["merged"] == serial["merged"]
    assert one["merges_per_hour"] == serial["merges_per_hour"]
    assert {k: v for k, v in one.items() if k != "mode"} == {k: v for k, v in serial.items() if k != "mode"}


# -- the green check is real: a scheduler that merges what it must not is caught ----------------------------


def _bad_merge(monkeypatch, choose):
    """Scheduler.plan, once `choose(scheduler, tip)` names an item, returns a
    Merge of it instead of its own decisions (only that once)."""
    plan = chain.Scheduler.plan
    done = []

    def bad_plan(self, tip, free):
        item = None if done else choose(self, tip)
        if item is not None:
            done.append(item)
            return [Merge(item)]
        return plan(self, tip, free)

    monkeypatch.setattr(chain.Scheduler, "plan", bad_plan)
    return done


def _behind_the_head(scheduler, tip):
    """The second item, once it has a candidate built on the one ahead (not on the tip)."""
    if len(scheduler.chain) > 1 and scheduler.chain[1].candidate is not None:
        assert scheduler.chain[1].base != tip
        return scheduler.chain[1]
    return None


def _untested_head(scheduler, tip):
    """The head, as soon as its candidate (on the tip) is made: no stage passed."""
    head = scheduler.chain[0] if scheduler.chain else None
    return head if head is not None and head.candidate is not None and head.base == tip else None


def test_a_merge_of_a_candidate_not_built_on_the_tip_is_a_green_violation(monkeypatch):
    settings = issue_settings(1, requests=10, failure_rate=0.0)
    assert simulate(Policy.of("speculative"), settings).green_violations == 0  # the real scheduler
    done = _bad_merge(monkeypatch, _behind_the_head)
    report = simulate(Policy.of("speculative"), settings)
    assert done and report.green_violations == 1


def test_a_merge_of_a_candidate_not_through_every_stage_is_a_green_violation(monkeypatch):
    settings = issue_settings(1, requests=10, failure_rate=0.0)
    done = _bad_merge(monkeypatch, _untested_head)
    report = simulate(Policy.of("serial"), settings)
    assert done and report.green_violations == 1


def test_a_merge_of_a_breaking_request_is_a_green_violation(monkeypatch):
    settings = issue_settings(1, requests=5, failure_rate=1.0)  # every request breaks a stage
    assert simulate(Policy.of("serial"), settings).rejected == 5
    plan = chain.Scheduler.plan

    def merges_after_its_stages(self, tip, free):  # what a scheduler that ignored a failure would do
        head = self.chain[0] if self.chain else None
        if head is not None and head.failure is not None and head.base == tip:
            head.failure, head.passed_stages = None, len(self.stages)
            return [Merge(head)]
        return plan(self, tip, free)

    monkeypatch.setattr(chain.Scheduler, "plan", merges_after_its_stages)
    report = simulate(Policy.of("serial"), settings)
    assert report.merged == 5 and report.green_violations == 5
