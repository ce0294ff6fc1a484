"""convoy.simulate with flakes and sick rigs (convoy.simulate_health): what
retries, quarantine, rig retries and draining do, on the scenario of issue
11 (4 rigs, three 3-minute stages and a 30-minute hardware stage, 100
requests at 1000 an hour) and seeds 1 to 3. Pure Python, a few hundredths
of a second a run.
"""

from __future__ import annotations

import random

import pytest

from convoy.queue import chain
from convoy.queue.chain import Policy
from convoy.simulate import Settings, Simulation, simulate
from convoy.simulate_health import FAIL, PASS, QUARANTINED, RERUN, Rigs, Run, judge

ISSUE_STAGES = {"build": 180, "integration": 180, "configuration": 180, "hardware": 1800}
SEEDS = (1, 2, 3)
SICK = {"rigs": 1}  # the first rig of the pool fails 80% of its runs
RETRIES = dict(flaky_attempts=2, retry_failed=1)


def issue_settings(seed: int, **changes) -> Settings:
    values = dict(requests=100, arrival_per_hour=1000, failure_rate=0.1, rigs={"rigs": 4},
                  stage_seconds=dict(ISSUE_STAGES), seed=seed)
    values.update(changes)
    return Settings(**values)


def test_without_flakes_or_sick_rigs_the_day_is_the_one_before_the_health_model():
    """The health model draws from a generator of its own: issue 11's
    figures (benchmarks/queue_throughput.py --sim-only, seed 1) are kept."""
    serial = simulate(Policy.of("serial"), issue_settings(1))
    speculative = simulate(Policy.of("speculative", window=8), issue_settings(1))
    assert (round(serial.merges_per_hour, 2), serial.merged, serial.rejected) == (1.51, 93, 7)
    assert (round(speculative.merges_per_hour, 2), round(speculative.mean_minutes, 1)) == (7.60, 386.6)
    for r in (serial, speculative):
        assert (r.retries, r.rig_retries, r.quarantined, r.rigs_drained, r.wrongly_rejected) == (0, 0, 0, 0, 0)


@pytest.mark.parametrize("mode", chain.MODES)
def test_the_same_seed_gives_the_same_report_with_flakes_and_sick_rigs(mode):
    settings = issue_settings(2, flake_rate=0.05, rig_failure_rate=0.02, bad_rigs=SICK, quarantine_rate=0.3,
                              **RETRIES)
    first = simulate(Policy.of(mode), settings).to_json(timeline=True)
    assert first == simulate(Policy.of(mode), settings).to_json(timeline=True)
    assert first["retries"] > 0 and first["rig_retries"] > 0 and first["rigs_drained"] == 1
    other = issue_settings(3, flake_rate=0.05, rig_failure_rate=0.02, bad_rigs=SICK, quarantine_rate=0.3, **RETRIES)
    assert simulate(Policy.of(mode), other).to_json(timeline=True) != first


# -- flakes and retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", chain.MODES)
@pytest.mark.parametrize("seed", SEEDS)
def test_without_retries_a_flake_rejects_good_requests_and_with_them_none(mode, seed):
    """Nothing breaks: every rejection is a false one."""
    without = simulate(Policy.of(mode), issue_settings(seed, failure_rate=0.0, flake_rate=0.05))
    assert without.wrongly_rejected == without.rejected > 0 and without.retries == 0
    with_ = simulate(Policy.of(mode), issue_settings(seed, failure_rate=0.0, flake_rate=0.05, **RETRIES))
    assert (with_.merged, with_.rejected, with_.wrongly_rejected) == (100, 0, 0)
    assert with_.retries > 0 and with_.green_violations == 0


@pytest.mark.parametrize("retries", [dict(flaky_attempts=3), dict(retry_failed=2)], ids=["bazel", "convoy"])
def test_either_retry_alone_spares_good_requests(retries):
    for seed in SEEDS:
        without = simulate(Policy.of("speculative"), issue_settings(seed, failure_rate=0.0, flake_rate=0.05))
        with_ = simulate(Policy.of("speculative"), issue_settings(seed, failure_rate=0.0, flake_rate=0.05, **retries))
        assert with_.wrongly_rejected == 0 < without.wrongly_rejected


def test_a_breaking_request_is_run_again_and_rejected_anyway():
    """Each of the stage's runs fails: 2 runs in Bazel, then convoy's run
    again of 2 more, 3 retries a request; nothing breaking merges."""
    report = simulate(Policy.of("serial"), issue_settings(1, requests=10, failure_rate=1.0, **RETRIES))
    assert (report.merged, report.rejected, report.wrongly_rejected, report.green_violations) == (0, 10, 0, 0)
    assert report.retries == 3 * 10


@pytest.mark.parametrize("mode", chain.MODES)
def test_retries_never_merge_a_breaking_request(mode):
    for seed in SEEDS:
        plain = simulate(Policy.of(mode), issue_settings(seed))
        report = simulate(Policy.of(mode), issue_settings(seed, flake_rate=0.05, quarantine_rate=0.5, **RETRIES))
        assert report.green_violations == 0
        assert report.rejected == plain.rejected and report.wrongly_rejected == 0  # the breaking ones, and only them


# -- quarantine ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ("serial", "speculative"))
@pytest.mark.parametrize("seed", SEEDS)
def test_quarantine_takes_retries_away(mode, seed):
    """A flaky failure of a quarantined test passes at once: fewer retries."""
    settings = dict(failure_rate=0.0, flake_rate=0.1, retry_failed=1)
    none = simulate(Policy.of(mode), issue_settings(seed, **settings))
    half = simulate(Policy.of(mode), issue_settings(seed, quarantine_rate=0.5, **settings))
    every = simulate(Policy.of(mode), issue_settings(seed, quarantine_rate=1.0, **settings))
    assert none.quarantined == 0 < half.quarantined
    assert every.retries == 0 < half.retries < none.retries
    assert (every.merged, every.wrongly_rejected) == (100, 0)  # and a quarantined flake rejects nothing


def test_quarantine_does_not_hold_a_real_breakage():
    """Every request breaks a stage; the flakes of the other stages are quarantined, the breakage is not."""
    report = simulate(Policy.of("serial"), issue_settings(1, requests=10, failure_rate=1.0, flake_rate=0.2,
                                                          quarantine_rate=1.0))
    assert (report.merged, report.rejected, report.green_violations) == (0, 10, 0)
    assert report.quarantined > 0


# -- rigs: retry on another rig, drain a sick one -------------------------------------------------------------


def test_a_rig_failure_costs_a_hardware_run_and_rejects_nothing():
    report = simulate(Policy.of("serial"), issue_settings(1, failure_rate=0.0, bad_rigs=SICK, drain_after=0))
    assert (report.merged, report.rejected) == (100, 0)
    assert report.rig_retries > 0 and report.hardware_runs == 100 + report.rig_retries


@pytest.mark.parametrize("mode", chain.MODES)
@pytest.mark.parametrize("seed", SEEDS)
def test_draining_the_sick_rig_wastes_fewer_hardware_runs(mode, seed):
    kept = simulate(Policy.of(mode), issue_settings(seed, bad_rigs=SICK, drain_after=0))
    simulation = Simulation(Policy.of(mode), issue_settings(seed, bad_rigs=SICK, drain_after=3))
    drained = simulation.run()
    assert [rig.name for rig in simulation.rigs.pools["rigs"] if rig.drained] == ["rigs-1"]  # the sick one only
    assert (kept.rigs_drained, drained.rigs_drained) == (0, 1)
    assert drained.rig_retries < kept.rig_retries
    assert drained.hardware_runs_per_merge < kept.hardware_runs_per_merge
    assert drained.merged == kept.merged and drained.green_violations == kept.green_violations == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_draining_the_sick_rig_merges_more_per_hour(seed):
    """Serial and the default window (4): a run on the sick rig delays the
    merges behind it. (With a window of 8 the four rigs are the bottleneck,
    and the sick rig's fifth of a rig is worth about what its failures
    cost: from 5% fewer to 8% more merges per hour, seeds 1 to 6.)"""
    for policy in (Policy.of("serial"), Policy.of("speculative", window=4)):
        kept = simulate(policy, issue_settings(seed, bad_rigs=SICK, drain_after=0, **RETRIES))
        drained = simulate(policy, issue_settings(seed, bad_rigs=SICK, drain_after=3, **RETRIES))
        assert drained.merges_per_hour > kept.merges_per_hour


@pytest.mark.parametrize("seed", (1, 2))
def test_sound_rigs_that_fail_now_and_then_are_not_drained(seed):
    """A pass ends a rig's streak: 400 requests, a failure in twenty runs,
    and no rig fails three times in a row (at seed 3 one does)."""
    report = simulate(Policy.of("speculative"), issue_settings(seed, requests=400, rig_failure_rate=0.05))
    assert report.rig_retries > 10 and report.rigs_drained == 0


def test_the_last_rig_is_never_drained_and_the_day_ends():
    """Two rigs failing half and all of their runs: one may be drained,
    never both; a run with no rig left to try starts again on any."""
    settings = issue_settings(1, requests=30, rigs={"rigs": 2}, bad_rigs=SICK, bad_rig_failure_rate=1.0,
                              rig_failure_rate=0.5, drain_after=1)
    simulation = Simulation(Policy.of("speculative"), settings)
    report = simulation.run()
    assert report.rigs_drained == 1 and [rig.drained for rig in simulation.rigs.pools["rigs"]] == [True, False]
    assert report.merged + report.rejected == 30 and report.wrongly_rejected == 0
    one = simulate(Policy.of("serial"), issue_settings(1, requests=10, rigs={"rigs": 1}, rig_failure_rate=0.5))
    assert one.merged + one.rejected == 10 and one.rig_retries > 0 and one.rigs_drained == 0


# -- the pieces, one by one ----------------------------------------------------------------------------------


def test_judge_runs_a_failing_test_again_in_bazel_then_in_convoy():
    settings = issue_settings(1, flaky_attempts=2, retry_failed=1, quarantine_rate=0.0)
    run = Run(item=None, stage=0)
    verdicts = [judge(run, failing=True, broken=True, settings=settings, rng=None) for _ in range(4)]
    assert verdicts == [RERUN, RERUN, RERUN, FAIL]  # Bazel's second run; convoy's run again, and its second
    assert judge(Run(None, 0), failing=False, broken=False, settings=settings, rng=None) == PASS
    quarantine = issue_settings(1, flaky_attempts=2, retry_failed=1, quarantine_rate=1.0)
    run = Run(None, 0)
    assert [judge(run, failing=True, broken=False, settings=quarantine, rng=random.Random(1))
            for _ in range(2)] == [RERUN, QUARANTINED]  # Bazel runs it again (it knows no quarantine), convoy not


def _rigs(n: int, **changes) -> Rigs:
    return Rigs(issue_settings(1, rigs={"rigs": n}, **changes), random.Random(1))


def test_a_retry_waits_for_a_rig_it_has_not_failed_on_the_longest_idle_first():
    rigs = _rigs(3)
    first, second = Run("a", 3), Run("b", 3)
    assert rigs.take(first, {"rigs": 1}, 0.0) and rigs.take(second, {"rigs": 1}, 0.0)
    assert [r.name for r in first.held + second.held] == ["rigs-1", "rigs-2"]
    rigs.stop(second, 5.0)
    rigs.retry(first, list(first.held), 10.0)  # rigs-1 failed it
    assert rigs.free() == {"rigs": 2}  # all three are idle; one is owed to the retry
    assert [run.item for run in rigs.serve(10.0, lambda run: 0)] == ["a"]
    assert [r.name for r in first.held] == ["rigs-3"] and first.avoid == {"rigs-1"}  # idle since 0, rigs-2 since 5
    assert rigs.free() == {"rigs": 2} and rigs.busy() == 1
    later = Run("c", 3)
    assert rigs.take(later, {"rigs": 1}, 30.0) and [r.name for r in later.held] == ["rigs-2"]  # rigs-1 since 10


def test_a_failure_counts_once_the_test_passes_on_another_rig_and_the_last_rig_stays():
    rigs = _rigs(2, drain_after=1)
    a, b = rigs.pools["rigs"]
    one, two = Run("a", 3), Run("b", 3)
    one.failed_on, one.held = [a], [b]
    two.failed_on, two.held = [b], [a]  # it ran on rigs-1 before rigs-1 was drained
    rigs.passed(one)
    assert (a.drained, a.streak, b.streak, rigs.drained) == (True, 1, 0, 1)
    rigs.passed(two)
    assert (b.drained, b.streak, rigs.drained) == (False, 1, 1)  # the pool's last rig is not drained


def test_a_run_with_no_rig_left_to_try_starts_again_on_any():
    rigs = _rigs(2)
    run = Run("a", 3)
    rigs.take(run, {"rigs": 1}, 0.0)
    rigs.retry(run, list(run.held), 1.0)
    rigs.serve(1.0, lambda r: 0)
    rigs.retry(run, list(run.held), 2.0)  # failed on both
    assert [r.item for r in rigs.serve(2.0, lambda r: 0)] == ["a"]
    assert run.avoid == set() and run.failed_on == [] and len(run.held) == 1  # counted against neither
