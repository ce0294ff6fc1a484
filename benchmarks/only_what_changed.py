"""The serial queue's wall time on issue 10's scenario: convoy before issue 10 and now, side by side.

    .venv/bin/python benchmarks/only_what_changed.py [--hw-seconds=20] [--order=before,after] [--before=c94a9cd]
                                                     [--keep]

Each side is built from scratch in a temporary directory (removed at the
end unless --keep), the same way, by the tree under test:

- before: a `git worktree add --detach` of this repository at --before
  (c94a9cd, before issue 10 started), with this checkout's machine-local
  .bazelrc.local (its paths pointed at that tree);
- after: this checkout's working tree, as it is.

Each side's driver is `<this venv's python> -m convoy` with
PYTHONPATH=<tree>/tools/driver (checked: `convoy help` runs, and
`convoy.__file__` is in that tree). With that driver, as `convoy demo`
does: convoy.sample.make_component_repos(<tree>/examples) makes a git
repository per component; the firmware team then releases v3.0.2 (the tree
of v3.0.1, version 3.0.2); convoy.sample.make_integration_repo(<tree>) makes
the integration repository (bare origin + checkout) with the tree's default
convoy.yaml, whose startup flags get one shared --output_user_root (Bazel's
install base is shared; each checkout's output bases and disk cache, under
.convoy/, start cold). One commit makes the hardware test
(integration/flash_and_drive_test.py) sleep --hw-seconds in setUpModule,
once per run of the test. Four requests are submitted up front:

  messages   v1.5.0  both configurations                          -> merged
  controller v1.3.0  its image outgrows the drone board            -> rejected
  planner    v2.2.0  rover only (the drone has no planner)         -> merged
  firmware   v3.0.2  moves rover only: the drone pins v2.9.4       -> merged

and `convoy process --all` (the serial queue) runs them; its wall time is
the headline figure. Per request: how it ended, its time in the queue
(`convoy show --json` timings), tasks run and skipped, test targets run and
cached (`cached` of each target of each task, from the build event files),
and the runs of the hardware test (not cached) with the seconds Bazel
measured in them. A run of the hardware test is a re-run with unchanged
inputs when the same configuration already ran it, earlier in that side,
with the same versions of its dependencies (controller, firmware,
messages). Only figures are printed; the exit status is 1 only when
something is broken (a request did not end as above, convoy failed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import machine  # noqa: E402  (benchmarks/machine.py)

PYTHON = REPO / ".venv" / "bin" / "python"
OUTPUT_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convoy" / "bench-bazel"
STARTUP_FLAGS = [f"--output_user_root={OUTPUT_ROOT}", "--max_idle_secs=300"]
BEFORE = "c94a9cd"
HARDWARE_TEST = "//integration:flash_and_drive_test"
HARDWARE_DEPS = ("controller", "firmware", "messages")  # integration/BUILD.bazel
TEST_STATUSES = ("passed", "failed", "flaky", "timeout")  # the test ran (or its result came from a cache)
PROCESS_TIMEOUT = 3 * 3600
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "Convoy Bench", "GIT_AUTHOR_EMAIL": "bench@convoy.invalid",
           "GIT_COMMITTER_NAME": "Convoy Bench", "GIT_COMMITTER_EMAIL": "bench@convoy.invalid"}


@dataclass(frozen=True)
class Step:
    component: str
    version: str
    expected: str
    why: str


SCENARIO = (
    Step("messages", "v1.5.0", "merged", "both configurations"),
    Step("controller", "v1.3.0", "rejected", "its image outgrows the drone board"),
    Step("planner", "v2.2.0", "merged", "rover only (the drone has no planner)"),
    Step("firmware", "v3.0.2", "merged", "moves rover only: the drone pins v2.9.4"),
)

# Run by each side's own driver (PYTHONPATH=<tree>/tools/driver): the demo's set-up.
# argv: tree, workdir, startup flags (JSON). Prints JSON: checkout, bare, remotes, configurations.
SETUP = r"""
import json, sys
from pathlib import Path
import convoy
from convoy import sample
from convoy.config import default_config_text
from convoy.manifest import load_manifest

tree, work, startup = Path(sys.argv[1]).resolve(), Path(sys.argv[2]), json.loads(sys.argv[3])
driver = Path(convoy.__file__).resolve()
if driver.parents[3] != tree:
    sys.exit(f"convoy imported from {driver}, not from {tree}")
remotes = {name: path.as_uri() for name, path in
           sample.make_component_repos(tree / "examples", work / "components").items()}
text = default_config_text()
if text.count("startup_flags: []") != 1:
    sys.exit("the default convoy.yaml has no 'startup_flags: []' line to replace")
text = text.replace("startup_flags: []", "startup_flags: " + json.dumps(startup), 1)
repo = sample.make_integration_repo(tree, work / "integration", remotes, config_text=text)
manifest = load_manifest(repo.checkout / "manifests" / "manifest.yaml")
configurations = {name: {"components": list(c.components), "pins": dict(c.pins),
                         "resolved": {n: comp.version for n, comp in manifest.resolved(name).items()}}
                  for name, c in manifest.configurations.items()}
print(json.dumps({"driver": str(driver), "checkout": str(repo.checkout), "bare": str(repo.bare),
                  "remotes": remotes, "configurations": configurations}))
"""


# --- processes -----------------------------------------------------------------------------


def run(argv: Sequence[str], cwd: Path, env: Optional[Dict[str, str]] = None, timeout: float = 600,
        what: str = "") -> str:
    proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{what or ' '.join(map(str, argv))} failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def git(args: Sequence[str], cwd: Path) -> str:
    return run(["git", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *args], cwd,
               env={**os.environ, **GIT_ENV})


def driver_env(tree: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CONVOY_FAILPOINT", "PYTHONPATH")}
    env["PYTHONPATH"] = str(tree / "tools" / "driver")
    return env


def convoy(tree: Path, checkout: Path, *args: str) -> str:
    return run([str(PYTHON), "-m", "convoy", *args, f"--repo={checkout}"], checkout, driver_env(tree),
               what=f"convoy {' '.join(args)}")


def shutdown_bazel(checkout: Path) -> None:
    for output_base in sorted((checkout / ".convoy" / "bazel").glob("*")):
        if (output_base / "server").exists():
            subprocess.run(["bazel", *STARTUP_FLAGS[:1], f"--output_base={output_base}", "shutdown"], cwd=checkout,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False)


# --- the scenario --------------------------------------------------------------------------


def before_tree(commit: str, directory: Path) -> Path:
    """A worktree of this repository at `commit`, with this checkout's .bazelrc.local (and user.bazelrc)."""
    tree = directory / "tree-before"
    run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(tree), commit], REPO)
    for name in (".bazelrc.local", "user.bazelrc"):
        if (REPO / name).is_file():
            (tree / name).write_text((REPO / name).read_text().replace(str(REPO), str(tree)))
    return tree


def release_firmware(remote: Path) -> None:
    """The firmware team's v3.0.2: the tree of v3.0.1 (main's tip) with version 3.0.2, tagged."""
    edits = {"firmware/__init__.py": ('__version__ = "3.0.1"', '__version__ = "3.0.2"'),
             "firmware/image.py": ("FIRMWARE_VERSION = (3, 0, 1)", "FIRMWARE_VERSION = (3, 0, 2)")}
    for name, (old, new) in edits.items():
        text = (remote / name).read_text()
        if text.count(old) != 1:
            raise SystemExit(f"{remote / name} has no single {old!r}: is main's tip still firmware v3.0.1?")
        (remote / name).write_text(text.replace(old, new))
    git(["commit", "-q", "-am", "firmware v3.0.2"], remote)
    git(["tag", "-a", "v3.0.2", "-m", "firmware v3.0.2"], remote)


def slow_hardware_test(checkout: Path, seconds: float) -> None:
    """Commits (and pushes) a hardware test that sleeps `seconds` once per run."""
    path = checkout / "integration" / "flash_and_drive_test.py"
    text = path.read_text()
    cls = "\n\nclass FlashAndDriveTest("
    if text.count("\nimport unittest\n") != 1 or text.count(cls) != 1:
        raise SystemExit(f"{path} is not the sample's hardware test; cannot make it slow")
    text = text.replace("\nimport unittest\n", "\nimport time\nimport unittest\n", 1)
    sleep = (f"\n\nHW_SECONDS = {seconds!r}  # benchmarks/only_what_changed.py: the rig test's own time\n\n\n"
             "def setUpModule():\n    time.sleep(HW_SECONDS)\n")
    path.write_text(text.replace(cls, sleep + cls, 1))
    git(["commit", "-q", "-am", f"The hardware test takes {seconds:g} s"], checkout)
    git(["push", "-q", "origin", "main"], checkout)


# --- one side ------------------------------------------------------------------------------


@dataclass
class Outcome:
    step: Step
    id: int
    state: str
    seconds: float
    tasks_run: int = 0
    tasks_skipped: int = 0
    unchanged: int = 0
    tests_run: int = 0
    tests_cached: int = 0
    hw_runs: int = 0
    hw_seconds: float = 0.0
    hw_reruns: int = 0
    hw_rerun_seconds: float = 0.0
    hw_configurations: List[str] = field(default_factory=list)


@dataclass
class Side:
    name: str
    what: str
    wall: float
    outcomes: List[Outcome]
    log: Path

    def total(self, attribute: str) -> float:
        return sum(getattr(o, attribute) for o in self.outcomes)

    def wrong(self) -> List[str]:
        return [f"{self.name}: request #{o.id} ({o.step.component} {o.step.version}) ended {o.state}, "
                f"expected {o.step.expected} ({o.step.why}); see {self.log}"
                for o in self.outcomes if o.state != o.step.expected]


def candidate_pins(main: Dict[str, Dict[str, str]], configurations: dict, step: Step) -> Dict[str, Dict[str, str]]:
    """Each configuration's versions with `step` applied to main's (a configuration's own pin wins)."""
    pins = {name: dict(versions) for name, versions in main.items()}
    for name, c in configurations.items():
        if step.component in c["components"] and step.component not in c["pins"]:
            pins[name][step.component] = step.version
    return pins


def outcome_of(step: Step, shown: dict, pins: Dict[str, Dict[str, str]], seen: set) -> Outcome:
    r = shown["request"]
    out = Outcome(step, r["id"], r["state"], shown["timings"]["total_seconds"])
    for build in shown["builds"]:
        for stage in build["stages"]:
            for task in stage["tasks"]:
                if task["state"] == "skipped":
                    out.tasks_skipped += 1
                    out.unchanged += task["outcome"] == "UNCHANGED"
                    continue
                out.tasks_run += 1 if task["runs"] or task["state"] in ("succeeded", "failed") else 0
                for target in task["targets"]:
                    if target["status"] not in TEST_STATUSES:
                        continue
                    if target["cached"]:
                        out.tests_cached += 1
                        continue
                    out.tests_run += 1
                    if target["label"] != HARDWARE_TEST:
                        continue
                    configuration = task["configuration"]
                    seconds = (target["duration_ms"] or 0) / 1000
                    key = (configuration, tuple(pins[configuration].get(d) for d in HARDWARE_DEPS))
                    out.hw_runs += 1
                    out.hw_seconds += seconds
                    out.hw_configurations.append(configuration)
                    if key in seen:
                        out.hw_reruns += 1
                        out.hw_rerun_seconds += seconds
                    seen.add(key)
    return out


def run_side(name: str, tree: Path, work: Path, hw_seconds: float, what: str) -> Side:
    print(f"\n== {name}: {what}", flush=True)
    work.mkdir(parents=True)
    env = driver_env(tree)
    run([str(PYTHON), "-m", "convoy", "help"], work, env, what=f"{name}: convoy help")
    setup = json.loads(run([str(PYTHON), "-c", SETUP, str(tree), str(work), json.dumps(STARTUP_FLAGS)], work, env,
                           what=f"{name}: the demo's set-up"))
    checkout = Path(setup["checkout"])
    print(f"   driver {setup['driver']}; sample from {tree}")
    release_firmware(Path(setup["remotes"]["firmware"].removeprefix("file://")))
    slow_hardware_test(checkout, hw_seconds)
    ids = []
    for step in SCENARIO:
        out = convoy(tree, checkout, "submit", f"--component={step.component}", f"--version={step.version}",
                     f"--requested_by=bench@{step.component}", "--json")
        ids.append(json.loads(out)["id"])
    log = work / "process.log"
    print(f"   convoy process --all ({len(ids)} requests; its output: {log})", flush=True)
    try:
        with open(log, "w") as output:
            start = time.monotonic()
            proc = subprocess.run([str(PYTHON), "-m", "convoy", "process", "--all", f"--repo={checkout}"],
                                  cwd=checkout, env=env, stdout=output, stderr=subprocess.STDOUT,
                                  timeout=PROCESS_TIMEOUT)
            wall = time.monotonic() - start
    finally:
        shutdown_bazel(checkout)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: convoy process --all failed (exit {proc.returncode}):\n"
                         f"{log.read_text()[-4000:]}")

    configurations = setup["configurations"]
    main = {c: dict(v["resolved"]) for c, v in configurations.items()}
    seen: set = set()
    outcomes = []
    for step, request_id in zip(SCENARIO, ids):
        pins = candidate_pins(main, configurations, step)
        shown = json.loads(convoy(tree, checkout, "show", str(request_id), "--json"))
        outcome = outcome_of(step, shown, pins, seen)
        outcomes.append(outcome)
        if outcome.state == "merged":
            main = pins
    side = Side(name, what, wall, outcomes, log)
    print_side(side)
    return side


# --- printing ------------------------------------------------------------------------------


def label(o: Outcome) -> str:
    return f"#{o.id} {o.step.component} {o.step.version}"


def print_side(side: Side) -> None:
    print(f"   convoy process --all: {side.wall:.1f} s wall")
    print(f"   {'request':<22} {'ended':<9} {'time':>7}  {'tasks run/skipped':<21} {'tests run/cached':<17} "
          f"{'hardware runs (s)':<26} {'of them re-runs (s)'}")
    for o in side.outcomes:
        hw = f"{o.hw_runs} ({o.hw_seconds:.1f})" + (f" {'+'.join(o.hw_configurations)}" if o.hw_runs else "")
        skipped = f"{o.tasks_skipped}" + (f" ({o.unchanged} unch.)" if o.unchanged else "")
        print(f"   {label(o):<22} {o.state:<9} {o.seconds:6.1f}s  {o.tasks_run:>4} / {skipped:<14} "
              f"{o.tests_run:>4} / {o.tests_cached:<10} {hw:<26} {o.hw_reruns} ({o.hw_rerun_seconds:.1f})")
    hw = f"{side.total('hw_runs'):.0f} ({side.total('hw_seconds'):.1f})"
    print(f"   {'all':<22} {'':<9} {side.total('seconds'):6.1f}s  {side.total('tasks_run'):>4} / "
          f"{side.total('tasks_skipped'):<14} {side.total('tests_run'):>4} / {side.total('tests_cached'):<10} "
          f"{hw:<26} {side.total('hw_reruns'):.0f} ({side.total('hw_rerun_seconds'):.1f})")


def ratio(before: float, after: float) -> str:
    return f"{after / before:.2f}" if before else "-"


def print_table(before: Side, after: Side, hw_seconds: float) -> None:
    rows = [("convoy process --all: wall (s)", before.wall, after.wall, "{:.1f}")]
    for b, a in zip(before.outcomes, after.outcomes):
        rows.append((f"  {b.step.component} {b.step.version}: {b.state}/{a.state} (s)", b.seconds, a.seconds,
                     "{:.1f}"))
    for title, attribute, form in (
        ("tasks run", "tasks_run", "{:.0f}"), ("tasks skipped", "tasks_skipped", "{:.0f}"),
        ("  of them UNCHANGED", "unchanged", "{:.0f}"),
        ("test targets run", "tests_run", "{:.0f}"), ("test targets cached", "tests_cached", "{:.0f}"),
        ("hardware test runs", "hw_runs", "{:.0f}"), ("  seconds in them", "hw_seconds", "{:.1f}"),
        ("  re-runs, unchanged inputs", "hw_reruns", "{:.0f}"),
        ("  seconds in those", "hw_rerun_seconds", "{:.1f}"),
    ):
        rows.append((title, before.total(attribute), after.total(attribute), form))
    rows.append(("  those, % of the wall time (*)", 100 * before.total("hw_rerun_seconds") / before.wall,
                 100 * after.total("hw_rerun_seconds") / after.wall, "{:.0f}"))
    print(f"\n== side by side: {len(SCENARIO)} requests, serial queue, hardware test {hw_seconds:g} s")
    print(f"   before: {before.what}\n   after:  {after.what}")
    print(f"   {'':<44} {'before':>9} {'after':>9} {'after/before':>13}")
    for title, b, a, form in rows:
        print(f"   {title:<44} {form.format(b):>9} {form.format(a):>9} {ratio(b, a):>13}")


def describe_after() -> str:
    head = run(["git", "-C", str(REPO), "log", "-1", "--format=%h"], REPO).strip()
    changed = run(["git", "-C", str(REPO), "status", "--porcelain", "--", "tools/driver"], REPO).splitlines()
    return f"the working tree of {REPO} (HEAD {head}, {len(changed)} driver files changed or new)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw-seconds", type=float, default=20.0,
                        help="how long one run of the hardware test takes (under its 60 s timeout: size small)")
    parser.add_argument("--order", default="before,after", help="which side runs first: before,after or after,before")
    parser.add_argument("--before", default=BEFORE, help="the commit of 'before' (default: before issue 10)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, repositories)")
    args = parser.parse_args()
    order = [s.strip() for s in args.order.split(",")]
    if sorted(order) != ["after", "before"]:
        parser.error("--order is before,after or after,before")
    if not PYTHON.is_file():
        parser.error(f"{PYTHON} not found: run scripts/setup first")

    directory = Path(tempfile.mkdtemp(prefix="convoy-bench-queue-"))
    print(f"issue 10's scenario, built from scratch per side in {directory}; Bazel output user root {OUTPUT_ROOT}")
    for step in SCENARIO:
        print(f"   {step.component:<10} {step.version:<7} {step.why:<42} -> {step.expected}")
    sides: Dict[str, Side] = {}
    tree, wrong, keep = None, [], True  # kept when something failed: its logs say why
    try:
        tree = before_tree(args.before, directory)
        trees = {"before": (tree, f"convoy at {args.before} (before issue 10), {tree}"),
                 "after": (REPO, describe_after())}
        for name in order:
            where, what = trees[name]
            sides[name] = run_side(name, where, directory / f"side-{name}", args.hw_seconds, what)
        wrong = sides["before"].wrong() + sides["after"].wrong()
        keep = args.keep or bool(wrong)
    finally:
        if tree is not None:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
            subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=False)
        if keep:
            print(f"kept {directory} (the before worktree is removed)")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    print_table(sides["before"], sides["after"], args.hw_seconds)
    print("(time per request: convoy show --json timings.total_seconds; test targets and hardware runs: the cached\n"
          " flag and duration of each target in the build event files; a re-run: the same configuration already\n"
          " ran the hardware test with the same controller, firmware and messages. (*) seconds of tasks that ran\n"
          " side by side overlap: a share of the wall time, not time that skipping them would save)")
    print(machine())
    for line in wrong:
        print(f"only_what_changed: {line}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
