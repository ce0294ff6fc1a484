"""Flakes and a sick rig, simulated: no retries, retries, retries and draining, side by side (issue 22).

    .venv/bin/python benchmarks/health_sim.py [--seeds=1,2,3] [--flake-rate=0.05] [--bad-rig-failure-rate=0.8]

convoy.simulate (the scheduler `convoy process` runs, convoy.queue.chain's
Scheduler, on a simulated clock; flakes and rigs: convoy.simulate_health)
on issue 11's day: 4 rigs, 10% of the requests break a stage, stages
build, integration and configuration of 180 s and hardware of 1800 s
(±10%), 100 requests arriving at 1000 an hour (the queue is saturated).
On top of it: every test run flakes with --flake-rate, every rig fails
2% of its hardware runs itself, and the first rig of the pool is sick
(--bad-rig-failure-rate of its runs). A rig-side failure always runs again
on another rig. Three ways to meet it, for serial, speculative (window 4
and 8) and batch (batch_size 4, window 2):

- no retries: a flake at the tip rejects a good request; the sick rig
  keeps taking work (--drain_after=0);
- retries: Bazel's --flaky_test_attempts=2 and convoy's retry_failed: 1
  (a failing test that passed on main runs once more); the sick rig stays;
- retries + draining: as retries, and a rig is drained after 3 failures in
  a row (each while the test passed on another rig).

Per row, the mean of the seeds: merges per hour and its ratio to the same
mode without retries, requests merged, good requests rejected, retries of
failing tests, rig retries (hardware runs wasted on a rig's failure),
hardware runs per merge, mean minutes from submit to merge, rigs drained,
green violations. Then what must hold, PASS or FAIL: without retries good
requests are rejected, with them none; draining drains one rig and wastes
fewer hardware runs in every mode; 0 green violations. (That the rig
drained is the sick one is tests/simulate/test_health.py's.)

The exit status is 1 only when something is broken (a green violation, a
stalled simulation), not for a FAIL line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tools" / "driver"))

from convoy.queue.chain import Policy  # noqa: E402
from convoy.simulate import Report, Settings, simulate  # noqa: E402
from machine import machine  # noqa: E402  (benchmarks/machine.py)

STAGE_SECONDS = {"build": 180.0, "integration": 180.0, "configuration": 180.0, "hardware": 1800.0}
MODES = (  # label, policy
    ("serial", Policy.of("serial")),
    ("speculative w4", Policy.of("speculative", window=4)),
    ("speculative w8", Policy.of("speculative", window=8)),
    ("batch b4 w2", Policy.of("batch", batch_size=4, window=2)),
)
WAYS = (  # label, the settings that differ
    ("no retries", dict(flaky_attempts=1, retry_failed=0, drain_after=0)),
    ("retries", dict(flaky_attempts=2, retry_failed=1, drain_after=0)),
    ("retries + draining", dict(flaky_attempts=2, retry_failed=1, drain_after=3)),
)
FIGURES = ("merges_per_hour", "merged", "wrongly_rejected", "retries", "rig_retries", "hardware_runs_per_merge",
           "mean_minutes", "rigs_drained", "green_violations")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def settings(seed: int, args: argparse.Namespace, **way) -> Settings:
    return Settings(requests=100, arrival_per_hour=1000.0, failure_rate=0.1, rigs={"rigs": 4},
                    stage_seconds=dict(STAGE_SECONDS), seed=seed, flake_rate=args.flake_rate,
                    rig_failure_rate=0.02, bad_rigs={"rigs": 1}, bad_rig_failure_rate=args.bad_rig_failure_rate,
                    **way)


def count(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def table(args: argparse.Namespace, seeds: List[int]) -> List[str]:
    """Prints the rows and the checks; returns what is broken."""
    means: Dict[tuple, Dict[str, float]] = {}
    drains: List[int] = []  # rigs drained, per mode and seed, with draining
    broken: List[str] = []
    for mode, policy in MODES:
        for way, changes in WAYS:
            reports: List[Report] = []
            for seed in seeds:
                try:
                    reports.append(simulate(policy, settings(seed, args, **changes)))
                except RuntimeError as e:
                    broken.append(f"{mode}, {way}, seed {seed}: {e}")
            if reports:
                means[mode, way] = {k: statistics.mean(getattr(r, k) for r in reports) for k in FIGURES}
            if changes["drain_after"]:
                drains += [r.rigs_drained for r in reports]
    if broken:
        return broken
    print(f"== simulated: 100 requests at 1000/h, failure_rate 0.1, stages "
          + ", ".join(f"{k}={v:g}s" for k, v in STAGE_SECONDS.items())
          + f" (±10%), 4 rigs for stage hardware; flake_rate {args.flake_rate:g}, rig_failure_rate 0.02, 1 sick rig "
          f"at {args.bad_rig_failure_rate:g}; means of seeds {', '.join(map(str, seeds))}")
    print(f"   {'mode':<15} {'way':<18} {'merges/h':>8} {'x none':>6} {'merged':>6} {'wrongly rej.':>12} "
          f"{'retries':>7} {'rig retries':>11} {'hw runs/merge':>13} {'mean min':>8} {'drained':>7} {'green viol.':>11}")
    for mode, _ in MODES:
        none = means[mode, WAYS[0][0]]["merges_per_hour"]
        for way, _ in WAYS:
            m = means[mode, way]
            print(f"   {mode:<15} {way:<18} {m['merges_per_hour']:8.2f} {m['merges_per_hour'] / none:6.2f} "
                  f"{count(m['merged']):>6} {count(m['wrongly_rejected']):>12} {count(m['retries']):>7} "
                  f"{count(m['rig_retries']):>11} {m['hardware_runs_per_merge']:13.2f} {m['mean_minutes']:8.1f} "
                  f"{count(m['rigs_drained']):>7} {count(m['green_violations']):>11}")
    retried = [means[mode, way] for mode, _ in MODES for way, _ in WAYS[1:]]
    drained = [means[mode, WAYS[2][0]] for mode, _ in MODES]
    kept = [means[mode, WAYS[1][0]] for mode, _ in MODES]
    violations = sum(m["green_violations"] for m in means.values())
    checks = [
        ("with retries no good request is rejected (every mode, every seed)",
         all(m["wrongly_rejected"] == 0 for m in retried)),
        ("without retries good requests are rejected (every mode)",
         all(means[mode, WAYS[0][0]]["wrongly_rejected"] > 0 for mode, _ in MODES)),
        ("draining drains one rig (every mode, every seed)", all(n == 1 for n in drains)),
        ("draining wastes fewer hardware runs (rig retries, every mode)",
         all(d["rig_retries"] < k["rig_retries"] for d, k in zip(drained, kept))),
        (f"0 green violations (every row, every seed): {count(violations)}", violations == 0),
    ]
    width = max(len(text) for text, _ in checks)
    for text, ok in checks:
        print(f"   {text:<{width}}  {verdict(ok)}")
    if violations:
        broken.append(f"the simulator found {count(violations)} green violations (mean): a scheduler bug")
    return broken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3", help="the seeds, a comma list")
    parser.add_argument("--flake-rate", type=float, default=0.05, help="the chance that a test run flakes")
    parser.add_argument("--bad-rig-failure-rate", type=float, default=0.8,
                        help="the chance that the sick rig fails a run itself")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    start = time.monotonic()
    broken = table(args, seeds)
    print(f"(whole run {time.monotonic() - start:.1f} s)")
    print(machine())
    for line in broken:
        print(f"health_sim: {line}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
