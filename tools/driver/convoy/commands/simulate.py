"""`convoy simulate`: the queue modes side by side on a simulated clock.

    convoy simulate                                   # serial, speculative and batch; 60 requests at 60/h
    convoy simulate --rigs=8 --failure_rate=0.2 --requests=200 --arrival_per_hour=120
    convoy simulate --modes=speculative --window=8 --window_floor=2 --json
    convoy simulate --stage_seconds=build=300,soak=7200 --hardware_stage=soak --plot=modes.svg
    convoy simulate --flake_rate=0.05 --bad_rigs=1 --flaky_attempts=2 --retry_failed=1 --drain_after=3

Each mode runs the scheduler `convoy process` runs (convoy.queue.chain's
Scheduler, the same class and the same decisions) on a simulated clock
(convoy.simulate): requests arrive at random (--arrival_per_hour), each
stage run takes its --stage_seconds (±10%), the hardware stage holds one of
--rigs rigs for its run, a request breaks one stage with probability
--failure_rate and any stage run fails with probability --flake_rate. The
same --seed gives the same requests, so the modes are compared on the same
day. No integration checkout, git or Bazel is needed.

Flakes and sick rigs, as convoy process handles them (convoy.simulate_health):
a failing test runs again up to --flaky_attempts runs in all (Bazel's
--flaky_test_attempts), then convoy runs it again --retry_failed times
(a stage's retry_failed; every simulated test passed on main); a flaky
failure of a quarantined test (--quarantine_rate of them) passes and
is not run again. Without retries a flake at the tip rejects a good
request. A rig fails a hardware run itself with probability
--rig_failure_rate, and each of --bad_rigs sick rigs with
--bad_rig_failure_rate; the run goes again on another rig of the pool
(one more hardware run), and a rig is drained after --drain_after
failures in a row (0: never): it takes no more work.

Prints a row per mode: merges per hour, mean and 95th percentile minutes
from submit to merge, stage runs and hardware (rig) runs per merged
request, rig use, green violations, merged and rejected, good requests
rejected (by a flake), runs again of failing tests, rig retries and rigs
drained; then the settings.
--json prints {"settings": {...}, "modes": [...]} (--json_timeline adds each
mode's timeline). --plot=FILE.svg draws the queue length and the rigs in
use over time.

Every merge is checked: a merge of a candidate not built on the branch tip,
not through every stage, or holding a breaking request is a green
violation. There must never be one; if there is, it is printed and the exit
status is 1 (a bug in the scheduler). Bad flags: one line, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from convoy import simulate_plot
from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.queue.chain import MODES, Policy
from convoy.simulate import HARDWARE_POOL, Report, Settings, simulate
from convoy.untrusted import printable

DEFAULT_STAGES = "build=120,integration=300,configuration=120,hardware=1800"
MAX_REQUESTS = 2000  # the simulation's time grows with the square of the requests
MAX_ARRIVAL_PER_HOUR = 1_000_000.0
MAX_STAGE_SECONDS = 7 * 86400.0
MAX_WINDOW = 1000  # --window, --window_floor, --batch_size, --max_bisect, --rigs, --drain_after
MAX_FLAKY_ATTEMPTS = 10  # as a stage's flaky_test_attempts (Bazel's own bound)
MAX_RETRY_FAILED = 5  # as a stage's retry_failed
STAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
STAGE_EXAMPLE = "e.g. --stage_seconds=build=120,integration=300,hardware=1800"


def add_flags(parser: common.Parser) -> None:
    common.add_json(parser)
    parser.string("modes", ",".join(MODES), "convoy simulate: the queue modes to compare, a comma list of "
                  f"{', '.join(MODES)}.")
    parser.integer("window", 4, "convoy simulate: candidates in flight at most (speculative, batch).")
    parser.integer("window_floor", 1, "convoy simulate: the window never shrinks below this (at most --window).")
    parser.integer("batch_size", 4, "convoy simulate: requests per candidate in batch mode.")
    parser.integer("max_bisect", 3, "convoy simulate: splits of a failed batch before one request at a time.")
    parser.integer("rigs", 4, "convoy simulate: rigs in the pool the hardware stage draws on.")
    parser.integer("requests", 60, f"convoy simulate: requests submitted (at most {MAX_REQUESTS}).")
    parser.number("arrival_per_hour", 60.0, "convoy simulate: mean requests submitted per hour (random arrivals).")
    parser.number("failure_rate", 0.1, "convoy simulate: the share of requests that break a stage (0 to 1).")
    parser.number("flake_rate", 0.0, "convoy simulate: the chance that any stage run fails anyway (0 to 1).")
    parser.string("stage_seconds", DEFAULT_STAGES, "convoy simulate: the stages in order, NAME=SECONDS each, "
                  "comma-separated.")
    parser.string("hardware_stage", None, "convoy simulate: the stage that draws on the rigs (default: the stage "
                  "named hardware, else the last stage).")
    parser.integer("seed", 1, "convoy simulate: the random seed; the same seed gives the same run.")
    parser.string("plot", None, "convoy simulate: also draw the queue length and the rigs in use over time "
                  "into this .svg file.")
    parser.integer("flaky_attempts", 1, "convoy simulate: runs of a failing test in one Bazel run, as Bazel's "
                   "--flaky_test_attempts (1: no run again).")
    parser.integer("retry_failed", 0, "convoy simulate: convoy's runs again of a failing test that passed on "
                   "main, as a stage's retry_failed (0: never).")
    parser.number("quarantine_rate", 0.0, "convoy simulate: the share of flaky failures that hit a quarantined "
                  "test, which then neither rejects nor runs again (0 to 1).")
    parser.number("rig_failure_rate", 0.0, "convoy simulate: the chance that a rig fails a hardware run itself "
                  "(0 to less than 1).")
    parser.integer("bad_rigs", 0, "convoy simulate: sick rigs of the --rigs (at most all but one).")
    parser.number("bad_rig_failure_rate", 0.8, "convoy simulate: the chance that a sick rig fails a hardware "
                  "run itself (0 to 1).")
    parser.integer("drain_after", 3, "convoy simulate: a rig's failures in a row (each while the test passed "
                   "on another rig) before it is drained (0: never).")
    parser.boolean("json_timeline", False, "convoy simulate --json: include each mode's timeline "
                   "([seconds, queue length, rigs in use] change points).")
    # The names they had while flags were global (absl), for one release.
    parser.deprecated("sim_modes", "modes")
    parser.deprecated("sim_rigs", "rigs")
    parser.deprecated("sim_flaky_attempts", "flaky_attempts")
    parser.deprecated("sim_retry_failed", "retry_failed")
    parser.deprecated("sim_quarantine_rate", "quarantine_rate")
    parser.deprecated("sim_rig_failure_rate", "rig_failure_rate")
    parser.deprecated("sim_bad_rigs", "bad_rigs")
    parser.deprecated("sim_bad_rig_failure_rate", "bad_rig_failure_rate")
    parser.deprecated("sim_drain_after", "drain_after")


@dataclass(frozen=True)
class Options:
    """What to simulate: the modes, the policies' numbers and the day's settings."""

    modes: tuple[str, ...] = field(default_factory=lambda: tuple(MODES))
    window: int = 4
    window_floor: int = 1
    batch_size: int = 4
    max_bisect: int = 3
    rigs: int = 4
    requests: int = 60
    arrival_per_hour: float = 60.0
    failure_rate: float = 0.1
    flake_rate: float = 0.0
    stage_seconds: dict = field(default_factory=lambda: parse_stage_seconds(DEFAULT_STAGES))
    hardware_stage: str = "hardware"
    seed: int = 1
    flaky_attempts: int = 1
    retry_failed: int = 0
    quarantine_rate: float = 0.0
    rig_failure_rate: float = 0.0
    bad_rigs: int = 0
    bad_rig_failure_rate: float = 0.8
    drain_after: int = 3

    def policy(self, mode: str) -> Policy:
        return Policy.of(mode, window=self.window, window_floor=self.window_floor, batch_size=self.batch_size,
                         max_bisect=self.max_bisect)

    def settings(self) -> Settings:
        return Settings(requests=self.requests, arrival_per_hour=self.arrival_per_hour,
                        failure_rate=self.failure_rate, flake_rate=self.flake_rate,
                        stage_seconds=dict(self.stage_seconds), pools={self.hardware_stage: HARDWARE_POOL},
                        rigs={HARDWARE_POOL: self.rigs}, seed=self.seed, flaky_attempts=self.flaky_attempts,
                        retry_failed=self.retry_failed, quarantine_rate=self.quarantine_rate,
                        rig_failure_rate=self.rig_failure_rate, bad_rigs={HARDWARE_POOL: self.bad_rigs},
                        bad_rig_failure_rate=self.bad_rig_failure_rate, drain_after=self.drain_after)

    def to_json(self) -> dict:
        return {"modes": list(self.modes), "requests": self.requests, "arrival_per_hour": self.arrival_per_hour,
                "failure_rate": self.failure_rate, "flake_rate": self.flake_rate,
                "stage_seconds": dict(self.stage_seconds), "hardware_stage": self.hardware_stage,
                "rigs": self.rigs, "window": self.window, "window_floor": self.window_floor,
                "batch_size": self.batch_size, "max_bisect": self.max_bisect, "seed": self.seed,
                "flaky_attempts": self.flaky_attempts, "retry_failed": self.retry_failed,
                "quarantine_rate": self.quarantine_rate, "rig_failure_rate": self.rig_failure_rate,
                "bad_rigs": self.bad_rigs, "bad_rig_failure_rate": self.bad_rig_failure_rate,
                "drain_after": self.drain_after}

    def describe(self) -> str:
        stages = " ".join(f"{name}={seconds:g}s" for name, seconds in self.stage_seconds.items())
        return (f"settings: {self.requests} requests at {self.arrival_per_hour:g}/h, failure_rate "
                f"{self.failure_rate:g}, flake_rate {self.flake_rate:g}, stages {stages}, {self.rigs} rigs for "
                f"stage {self.hardware_stage}, window {self.window} (floor {self.window_floor}), batch_size "
                f"{self.batch_size}, max_bisect {self.max_bisect}, seed {self.seed}\n"
                f"health: flaky_attempts {self.flaky_attempts}, retry_failed {self.retry_failed}, quarantine_rate "
                f"{self.quarantine_rate:g}, rig_failure_rate {self.rig_failure_rate:g}, bad_rigs {self.bad_rigs} (failure rate "
                f"{self.bad_rig_failure_rate:g}), drain_after {self.drain_after}")


def run(opts: argparse.Namespace, args: list[str]) -> int:
    f = opts
    common.no_arguments("simulate", args)
    options = options_of(
        sim_modes=f.modes, window=f.window, window_floor=f.window_floor, batch_size=f.batch_size,
        max_bisect=f.max_bisect, rigs=f.rigs, requests=f.requests, arrival_per_hour=f.arrival_per_hour,
        failure_rate=f.failure_rate, flake_rate=f.flake_rate, stage_seconds=f.stage_seconds,
        hardware_stage=f.hardware_stage, seed=f.seed, flaky_attempts=f.flaky_attempts,
        retry_failed=f.retry_failed, quarantine_rate=f.quarantine_rate,
        rig_failure_rate=f.rig_failure_rate, bad_rigs=f.bad_rigs,
        bad_rig_failure_rate=f.bad_rig_failure_rate, drain_after=f.drain_after)
    plot, as_json, timeline = f.plot, f.json, f.json_timeline
    if plot is not None:
        check_plot(plot)
    reports = simulate_modes(options)
    if plot is not None:
        write_plot(plot, reports)
    if as_json:
        print(json.dumps({"settings": options.to_json(),
                          "modes": [r.to_json(timeline=timeline) for r in reports]}, indent=2))
    else:
        print_table(reports)
        print(options.describe())
        if plot is not None:
            print(f"plot: {printable(plot)}")
    bad = [r for r in reports if r.green_violations > 0]
    for r in bad:
        print(f"convoy simulate: GREEN VIOLATION: mode {r.mode} merged {r.green_violations} candidate(s) not built "
              "on the branch tip, not through every stage, or holding a breaking request; this must never happen: "
              "a bug in the scheduler (convoy.queue.chain), please report it with these flags", file=sys.stderr)
    return 1 if bad else 0


def simulate_modes(options: Options) -> list[Report]:
    """One report per mode of `options`, each on the same simulated day."""
    settings = options.settings()
    return [simulate(options.policy(mode), settings) for mode in options.modes]


# -- the flags, checked -------------------------------------------------------------------------------


def options_of(*, sim_modes: str, window: int, window_floor: int, batch_size: int, max_bisect: int, rigs: int,
               requests: int, arrival_per_hour: float, failure_rate: float, flake_rate: float,
               stage_seconds: str, hardware_stage: Optional[str], seed: int, flaky_attempts: int = 1,
               retry_failed: int = 0, quarantine_rate: float = 0.0, rig_failure_rate: float = 0.0,
               bad_rigs: int = 0, bad_rig_failure_rate: float = 0.8, drain_after: int = 3) -> Options:
    """The flags' values as Options; ConvoyError (one line: what to do) for the first bad one."""
    modes = parse_modes(sim_modes)
    _whole("window", window, 1, MAX_WINDOW, "e.g. --window=4")
    _whole("window_floor", window_floor, 1, MAX_WINDOW, "e.g. --window_floor=1")
    if window_floor > window:
        raise ConvoyError(f"--window_floor={window_floor} is more than --window={window}; make it at most the window")
    _whole("batch_size", batch_size, 1, MAX_WINDOW, "e.g. --batch_size=4")
    _whole("max_bisect", max_bisect, 0, MAX_WINDOW, "e.g. --max_bisect=3")
    _whole("rigs", rigs, 1, MAX_WINDOW, "e.g. --rigs=4")
    _whole("requests", requests, 1, MAX_REQUESTS, "e.g. --requests=60")
    _whole("seed", seed, 0, 2**63 - 1, "e.g. --seed=1")
    if not 0 < arrival_per_hour <= MAX_ARRIVAL_PER_HOUR:  # NaN fails too
        raise ConvoyError(f"--arrival_per_hour={arrival_per_hour:g} must be more than 0 and at most "
                          f"{MAX_ARRIVAL_PER_HOUR:g}; e.g. --arrival_per_hour=60")
    for name, rate in (("failure_rate", failure_rate), ("flake_rate", flake_rate),
                       ("quarantine_rate", quarantine_rate), ("rig_failure_rate", rig_failure_rate),
                       ("bad_rig_failure_rate", bad_rig_failure_rate)):
        if not 0 <= rate <= 1:
            raise ConvoyError(f"--{name}={rate:g} is not a rate between 0 and 1; e.g. --{name}=0.1")
    if rig_failure_rate == 1:
        raise ConvoyError("--rig_failure_rate=1 fails every hardware run on every rig, so nothing would merge; "
                          "give less than 1, e.g. --rig_failure_rate=0.02")
    _whole("flaky_attempts", flaky_attempts, 1, MAX_FLAKY_ATTEMPTS, "e.g. --flaky_attempts=2")
    _whole("retry_failed", retry_failed, 0, MAX_RETRY_FAILED, "e.g. --retry_failed=1")
    _whole("drain_after", drain_after, 0, MAX_WINDOW, "e.g. --drain_after=3 (0: never)")
    if not 0 <= bad_rigs < rigs:
        raise ConvoyError(f"--bad_rigs={bad_rigs} must be from 0 to {rigs - 1} (all but one of --rigs={rigs}); "
                          "e.g. --bad_rigs=1")
    stages = parse_stage_seconds(stage_seconds)
    if hardware_stage is None:
        hardware_stage = "hardware" if "hardware" in stages else list(stages)[-1]
    elif hardware_stage not in stages:
        raise ConvoyError(f"--hardware_stage={printable(hardware_stage)} is not a stage of --stage_seconds "
                          f"({', '.join(stages)}); name one of them")
    return Options(modes=modes, window=window, window_floor=window_floor, batch_size=batch_size,
                   max_bisect=max_bisect, rigs=rigs, requests=requests, arrival_per_hour=float(arrival_per_hour),
                   failure_rate=float(failure_rate), flake_rate=float(flake_rate), stage_seconds=stages,
                   hardware_stage=hardware_stage, seed=seed, flaky_attempts=flaky_attempts, retry_failed=retry_failed,
                   quarantine_rate=float(quarantine_rate), rig_failure_rate=float(rig_failure_rate), bad_rigs=bad_rigs,
                   bad_rig_failure_rate=float(bad_rig_failure_rate), drain_after=drain_after)


def _whole(name: str, value: int, least: int, most: int, example: str) -> None:
    if not least <= value <= most:
        limit = f"at least {least}" if most == 2**63 - 1 else f"from {least} to {most}"
        raise ConvoyError(f"--{name}={value} must be {limit}; {example}")


def parse_modes(text: str) -> tuple[str, ...]:
    """`serial,batch` -> ("serial", "batch"): known modes, each once, in the order given."""
    names = [name.strip() for name in text.split(",")]
    if not text.strip() or any(not name for name in names):
        raise ConvoyError(f"--modes={printable(text)} names an empty mode; write a comma list like "
                          f"--modes={','.join(MODES)}")
    for name in names:
        if name not in MODES:
            raise ConvoyError(f"--modes: unknown mode '{printable(name)}' (known: {', '.join(MODES)}); "
                              f"e.g. --modes={','.join(MODES)}")
    return tuple(dict.fromkeys(names))


def parse_stage_seconds(text: str) -> dict[str, float]:
    """`build=120,hardware=1800` -> {"build": 120.0, "hardware": 1800.0}, in order."""
    stages: dict[str, float] = {}
    if not text.strip():
        raise ConvoyError(f"--stage_seconds is empty; name the stages in order, {STAGE_EXAMPLE}")
    for part in text.split(","):
        name, equals, seconds = (s.strip() for s in part.partition("="))
        shown = printable(part.strip())
        if not equals:
            raise ConvoyError(f"--stage_seconds: '{shown}' has no seconds; write NAME=SECONDS, {STAGE_EXAMPLE}")
        if not STAGE_NAME.fullmatch(name):
            raise ConvoyError(f"--stage_seconds: '{shown}' needs a stage name (letters, digits, _ . -) before "
                              f"the =; {STAGE_EXAMPLE}")
        if name in stages:
            raise ConvoyError(f"--stage_seconds: stage '{name}' is named twice; name each stage once")
        try:
            value = float(seconds)
        except ValueError:
            raise ConvoyError(f"--stage_seconds: '{shown}' is not NAME=SECONDS (seconds is a number); "
                              f"{STAGE_EXAMPLE}") from None
        if not 0 < value <= MAX_STAGE_SECONDS:  # NaN fails too
            raise ConvoyError(f"--stage_seconds: stage '{name}' takes {value:g} seconds; give more than 0 and at "
                              f"most {MAX_STAGE_SECONDS:g}, {STAGE_EXAMPLE}")
        stages[name] = value
    return stages


def check_plot(path: str) -> None:
    """--plot must name a .svg file that can be written (checked before the simulation runs)."""
    shown = printable(path)
    if not path.lower().endswith(".svg") or not Path(path).name[:-4]:
        raise ConvoyError(f"--plot={shown} is not a file name ending in .svg; name the SVG file to write, e.g. --plot=modes.svg")
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise ConvoyError(f"--plot={shown}: {printable(parent)} {what}; make the directory or choose another path")
    if target.is_dir():
        raise ConvoyError(f"--plot={shown} is a directory; name a file in it, e.g. --plot={shown}/modes.svg")
    if not os.access(parent, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise ConvoyError(f"--plot={shown} cannot be written (permission denied); choose a path you can write")


def write_plot(path: str, reports: Sequence[Report]) -> None:
    try:
        simulate_plot.write(path, reports)
    except OSError as e:
        raise ConvoyError(f"--plot={printable(path)} could not be written: {printable(e.strerror or e)}; "
                          "choose a path you can write") from None


# -- the table --------------------------------------------------------------------------------------------

COLUMNS = ("MODE", "MERGES/H", "MEAN MIN", "P95 MIN", "RUNS/MERGE", "HW RUNS/MERGE", "RIG USE %",
           "GREEN VIOLATIONS", "MERGED", "REJECTED", "WRONGLY REJECTED", "RETRIES", "RIG RETRIES", "RIGS DRAINED")


def table_rows(reports: Sequence[Report]) -> list[tuple[str, ...]]:
    """The header and a row per report, as text."""
    rows = [COLUMNS]
    for r in reports:
        rows.append((r.mode, f"{r.merges_per_hour:.2f}", f"{r.mean_minutes:.1f}", f"{r.p95_minutes:.1f}",
                     f"{r.runs_per_merge:.2f}", f"{r.hardware_runs_per_merge:.2f}", f"{100 * r.rig_utilisation:.1f}",
                     str(r.green_violations), str(r.merged), str(r.rejected), str(r.wrongly_rejected),
                     str(r.retries), str(r.rig_retries), str(r.rigs_drained)))
    return rows


def print_table(reports: Sequence[Report]) -> None:
    rows = table_rows(reports)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:  # the mode left, the numbers right
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        print("  ".join(cells).rstrip())

