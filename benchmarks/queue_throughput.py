"""The queue's modes side by side: serial, speculative and batch, simulated and for real (issue 11).

    .venv/bin/python benchmarks/queue_throughput.py [--sim-only | --real-only] [--hw-seconds=20]
        [--window=4] [--window-floor=2] [--batch-size=3] [--batch-window=2] [--modes=serial,speculative,batch]
        [--failing=configuration|hardware] [--keep]

1. Simulated (convoy.simulate: the scheduler `convoy process` runs,
   convoy.queue.chain's Scheduler, on a simulated clock): 4 rigs, 10% of the
   requests break a stage, stages build, integration and configuration of
   180 s and hardware of 1800 s (±10%), 100 requests arriving at 1000 an
   hour (the queue is saturated), seeds 1, 2 and 3 and their mean; serial,
   speculative with a window of 8 (twice the rigs) and of 4, and batch
   (batch_size 4, window 2). Per row: merges per hour and its ratio to
   serial (same seed; the mean row: ratio of the means), mean and p95
   minutes from submit to merge, stage runs and hardware runs per merge,
   rig utilisation, green violations. Then the issue's targets, PASS or
   FAIL each, on the means: speculative (window 8) >= 3x serial with <= 1.5
   hardware runs per merge; batch >= 3x serial; 0 green violations.

2. Real: real git, real Bazel, the sample integration repository and a
   real lab (`convoy lab`'s BuildGrid, PostgreSQL, two rigs per pool:
   rover-rigs and drone-rigs) that the hardware stage runs on
   (`--config=hil`, `check_pools: true`, `affected_only: true`, `pools:
   {rover-rigs: 2, drone-rigs: 2}`); the hardware test sleeps --hw-seconds
   in setUpModule. Each mode is
   a side made from scratch in its own temporary directory (components,
   integration repository, lab; only the --output_user_root install base is
   shared). Each side first processes eight warm-up requests in two rounds,
   untimed and the same in every mode, so that every lane the mode uses has
   both configurations' Bazel servers and external repositories (a queue
   that runs all day has them);
   then the six timed requests: see benchmarks/queue_real.py (five pass;
   the fourth is rejected: with --failing=configuration, the default,
   firmware v3.1.0 at rover's configuration stage, where most breakage is
   caught; with --failing=hardware, controller v1.3.0 at drone's hardware
   stage, the costliest case for speculation; with
   --failing=configuration+other, as configuration but the sixth is another
   team's next bump, controller v1.2.2, instead of the failing team's fix,
   which cannot arrive before the rejection; two are submitted once the
   earlier request of their component left the queue, the same rule in
   every mode). Per mode: the wall time of `convoy
   process --all` and its ratio to serial, requests merged and rejected,
   candidates built (builds), runs of the hardware test (not cached), the
   seconds the hardware stage's tasks took per configuration, when #5 and
   #6 arrived (seconds after `convoy process` started), the tags (name,
   commit and the versions of its manifest) and whether origin main's
   final manifest (resolved versions per configuration) is the same in
   every mode. Target: speculative's wall time <= 60% of serial's.

   With one rig per pool (--rigs=rover-rigs:1,drone-rigs:1) every request
   but the planner's needs the one rover rig for its hardware test, so the
   hardware stage is serial whatever the mode, and no mode gets much below
   the rover rig's seconds (measured: speculative 1.19x serial, cold lanes,
   failing request second). The lab, not local rigs: `check_pools: true`
   makes the window count the pools' rigs; local hardware tests would be
   bounded by `parallelism` instead.

Only figures and PASS/FAIL lines are printed. The exit status is 1 only when
something is broken: a green violation or a stalled simulation, a request
that did not end as expected, convoy failing, final manifests that differ
between modes, or serial and speculative with different tag counts; not for
a missed target.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tools" / "driver"))

from convoy.queue.chain import Policy  # noqa: E402
from convoy.simulate import Report, Settings, simulate  # noqa: E402
from machine import machine  # noqa: E402  (benchmarks/machine.py)

SEEDS = (1, 2, 3)
STAGE_SECONDS = {"build": 180.0, "integration": 180.0, "configuration": 180.0, "hardware": 1800.0}
SIM_ROWS = (  # label, policy
    ("serial", Policy.of("serial")),
    ("speculative w8", Policy.of("speculative", window=8)),
    ("speculative w4", Policy.of("speculative", window=4)),
    ("batch b4 w2", Policy.of("batch", batch_size=4, window=2)),
)
ABBREVIATIONS = {"messages": "m", "planner": "p", "controller": "c", "firmware": "f"}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- 1. the simulator --------------------------------------------------------------------------


def settings(seed: int) -> Settings:
    return Settings(requests=100, arrival_per_hour=1000.0, failure_rate=0.1, rigs={"rigs": 4},
                    stage_seconds=dict(STAGE_SECONDS), seed=seed)


def sim_table() -> List[str]:
    """Prints the simulated table and the targets; returns what is broken."""
    reports: Dict[str, List[Report]] = {}
    broken: List[str] = []
    for label, policy in SIM_ROWS:
        reports[label] = []
        for seed in SEEDS:
            try:
                reports[label].append(simulate(policy, settings(seed)))
            except RuntimeError as e:
                broken.append(f"simulated {label}, seed {seed}: {e}")
    if broken:
        return broken
    s = settings(1)
    print(f"== 1. simulated: {s.requests} requests at {s.arrival_per_hour:g}/h, failure_rate {s.failure_rate:g}, "
          f"stages " + ", ".join(f"{k}={v:g}s" for k, v in STAGE_SECONDS.items()) +
          f" (±10%), {s.rigs['rigs']} rigs for stage hardware, seeds {', '.join(map(str, SEEDS))}")
    print(f"   {'mode':<15} {'seed':>4} {'merges/h':>8} {'x serial':>8} {'mean min':>8} {'p95 min':>8} "
          f"{'runs/merge':>10} {'hw runs/merge':>13} {'rig use %':>9} {'green viol.':>11} {'merged':>6} "
          f"{'rejected':>8}")
    serial = reports["serial"]
    for label, _ in SIM_ROWS:
        rows = reports[label]
        for seed, r, base in zip(SEEDS, rows, serial):
            print(sim_row(label, str(seed), r.merges_per_hour, r.merges_per_hour / base.merges_per_hour, r))
        mean = {k: statistics.mean(getattr(r, k) for r in rows) for k in (
            "merges_per_hour", "mean_minutes", "p95_minutes", "runs_per_merge", "hardware_runs_per_merge",
            "rig_utilisation", "green_violations", "merged", "rejected")}
        serial_mean = statistics.mean(r.merges_per_hour for r in serial)
        print(sim_row(label, "mean", mean["merges_per_hour"], mean["merges_per_hour"] / serial_mean, mean))
    print("   targets (issue 11), on the means of the seeds:")
    serial_mean = statistics.mean(r.merges_per_hour for r in serial)

    def ratio(label: str) -> tuple[float, str]:
        mean = statistics.mean(r.merges_per_hour for r in reports[label]) / serial_mean
        seeds = "/".join(f"{r.merges_per_hour / b.merges_per_hour:.2f}" for r, b in zip(reports[label], serial))
        return mean, seeds

    spec, spec_seeds = ratio("speculative w8")
    hw = statistics.mean(r.hardware_runs_per_merge for r in reports["speculative w8"])
    batch, batch_seeds = ratio("batch b4 w2")
    violations = sum(r.green_violations for rows in reports.values() for r in rows)
    targets = [
        (f"speculative (window 8) >= 3x serial merges/hour: {spec:.2f}x (seeds {spec_seeds})", spec >= 3),
        (f"speculative (window 8) <= 1.5 hardware runs per merge: {hw:.2f}", hw <= 1.5),
        (f"batch (batch_size 4, window 2) >= 3x serial merges/hour: {batch:.2f}x (seeds {batch_seeds})", batch >= 3),
        (f"0 green violations (every row, every seed): {violations}", violations == 0),
    ]
    width = max(len(text) for text, _ in targets)
    for text, ok in targets:
        print(f"   {text:<{width}}  {verdict(ok)}")
    if violations:
        broken.append(f"the simulator found {violations} green violations: a scheduler bug")
    return broken


def sim_row(label: str, seed: str, mph: float, ratio: float, r) -> str:
    get = (lambda k: r[k]) if isinstance(r, dict) else (lambda k: getattr(r, k))
    return (f"   {label:<15} {seed:>4} {mph:8.2f} {ratio:8.2f} {get('mean_minutes'):8.1f} {get('p95_minutes'):8.1f} "
            f"{get('runs_per_merge'):10.2f} {get('hardware_runs_per_merge'):13.2f} "
            f"{100 * get('rig_utilisation'):9.1f} {count(get('green_violations')):>11} {count(get('merged')):>6} "
            f"{count(get('rejected')):>8}")


def count(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


# --- 2. the real run ------------------------------------------------------------------------------


def pins_text(pins: Dict[str, Dict[str, str]]) -> str:
    def short(versions: Dict[str, str]) -> str:
        return " ".join(f"{ABBREVIATIONS.get(c, c)}{v.lstrip('v')}" for c, v in versions.items())

    return "; ".join(f"{configuration} {short(versions)}" for configuration, versions in pins.items())


def real_table(args: argparse.Namespace) -> List[str]:
    import queue_real  # noqa: E402  (benchmarks/queue_real.py; imports convoy.lab)

    queues = {"serial": {"mode": "serial"},
              "speculative": {"mode": "speculative", "window": args.window, "window_floor": args.window_floor},
              "batch": {"mode": "batch", "batch_size": args.batch_size, "window": args.batch_window}}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in queues for m in modes):
        raise SystemExit(f"--modes: a list of {', '.join(queues)}")
    directory = Path(tempfile.mkdtemp(prefix="convoy-bench-queue-"))
    directory.chmod(0o755)  # the lab's PostgreSQL runs as the postgres user when we are root
    print(f"\n== 2. real: git, Bazel, the sample integration and a lab ({args.rigs}); the hardware test "
          f"sleeps {args.hw_seconds:g} s; each mode from scratch in {directory}")
    plan = queue_real.SCENARIOS[args.failing]
    print(f"   scenario {args.failing} (--failing): the fourth request fails in its configuration or hardware stage")
    for i, q in enumerate(plan, 1):
        print(f"   #{i} {q.component:<10} {q.version:<7} wave {q.wave}: {q.why:<62} -> {q.expected}")
    sides = {}
    keep = True
    try:
        for mode in modes:
            sides[mode] = queue_real.run_side(mode, queues[mode], directory / f"side-{mode}", args.hw_seconds,
                                              args.rigs, args.failing)
        keep = args.keep
    finally:
        if keep:
            print(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    broken = [line for side in sides.values() for line in side.wrong()]
    serial = sides.get("serial")
    print(f"\n   {'mode':<12} {'queue':<28} {'wall s':>7} {'/serial':>7} {'merged':>6} {'rejected':>8} "
          f"{'candidates':>10} {'hw test runs':>12} {'hw task s rover/drone':>21} {'tags':>4}  #5, #6 arrived (s)")
    for mode, side in sides.items():
        numbers = ", ".join(f"{k} {v}" for k, v in side.queue.items() if k != "mode") or "-"
        ratio = f"{side.wall / serial.wall:7.2f}" if serial else f"{'-':>7}"
        print(f"   {mode:<12} {numbers:<28} {side.wall:7.1f} {ratio} {side.count('merged'):>6} "
              f"{side.count('rejected'):>8} {side.builds():>10} {side.hardware_runs():>12} "
              f"{side.hardware_seconds('rover'):>10.1f} / {side.hardware_seconds('drone'):<8.1f} {len(side.tags):>4}  "
              + ", ".join(f"{a:.1f}" for a, q in zip(side.arrivals, plan) if q.wave > 1))
    for mode, side in sides.items():
        print(f"   {mode} tags (m=messages p=planner c=controller f=firmware):")
        for tag, commit, pins in side.tags:
            print(f"     {tag:<12} {commit[:10]}  {pins_text(pins)}")
    for mode, side in sides.items():
        print(f"   {mode}: where the time went (seconds after convoy process started; each build's stages)")
        for line in side.timeline():
            print(f"     {line}")
        for line in side.cpu:
            print(f"     {line}")
        print(f"     rig runs withdrawn by the lab while they ran (cancelled): {side.withdrawn}")
    finals = {mode: side.final for mode, side in sides.items()}
    same = all(final == next(iter(finals.values())) for final in finals.values())
    print(f"   final manifest of origin main (resolved versions per configuration), identical in every mode: "
          f"{'yes' if same else 'NO'}")
    for mode, final in finals.items():
        print(f"     {mode:<12} {pins_text(final)}")
    if not same:
        broken.append("the final manifests differ between modes")
    if "speculative" in sides and serial:
        spec = sides["speculative"]
        if len(spec.tags) != len(serial.tags):
            broken.append(f"serial made {len(serial.tags)} tags, speculative {len(spec.tags)}")
        share = spec.wall / serial.wall
        print(f"   target: speculative wall <= 60% of serial: {100 * share:.0f}% "
              f"({spec.wall:.1f} s / {serial.wall:.1f} s) {verdict(share <= 0.6)}")
    return broken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--sim-only", action="store_true", help="only the simulated table")
    only.add_argument("--real-only", action="store_true", help="only the real run")
    parser.add_argument("--hw-seconds", type=float, default=20.0, help="one run of the hardware test (real run)")
    parser.add_argument("--window", type=int, default=4, help="the real speculative side's queue.window")
    parser.add_argument("--window-floor", type=int, default=2, help="the real speculative side's queue.window_floor")
    parser.add_argument("--batch-size", type=int, default=3, help="the real batch side's queue.batch_size")
    parser.add_argument("--batch-window", type=int, default=2, help="the real batch side's queue.window")
    parser.add_argument("--modes", default="serial,speculative,batch", help="the real run's sides, in this order")
    parser.add_argument("--rigs", default="rover-rigs:2,drone-rigs:2",
                        help="the real run's lab: pool:rigs,... (also convoy.yaml's pools)")
    parser.add_argument("--failing", choices=("configuration", "configuration+other", "hardware"),
                        default="configuration",
                        help="where the real run's failing request (the fourth) fails")
    parser.add_argument("--keep", action="store_true", help="keep the real run's temporary directory")
    args = parser.parse_args()
    start = time.monotonic()
    broken: List[str] = []
    if not args.real_only:
        broken += sim_table()
    if not args.sim_only:
        broken += real_table(args)
    print(f"(whole run {time.monotonic() - start:.0f} s)")
    print(machine())
    for line in broken:
        print(f"queue_throughput: {line}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
