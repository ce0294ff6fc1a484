"""The driver's own time per request, for manifests of 10, 500 and 2,000 components (or 10,000), side by side.

    .venv/bin/python benchmarks/driver_overhead.py [--requests=5] [--components=10,500,2000] [--no-breakdown]
    .venv/bin/python benchmarks/driver_overhead.py --components=10,2000,10000 --requests=3 --no-breakdown

For each size, in a temporary directory (removed at the end):

- one component git repository (`shared`) with a tag per version
  (v0.9.0, v1.0.0, v1.1.0, ...), which every component of the manifest uses
  as its `remote` (source: git);
- an integration repository (a bare origin and a checkout) whose manifest
  has N such components and 2 configurations (`alpha` has every component;
  `beta` leaves out every 7th and pins every 10th to v0.9.0), its lock
  (convoy.lock.lock_manifest) and the default convoy.yaml
  (convoy.config.default_config_text(): 4 stages).

Then, K times (--requests): `convoy submit` (in this process, with an
empty manifest cache, as a new `convoy submit` process has; the
interpreter's start and convoy's imports are timed once, apart) a bump of a
component that both configurations include, and process it with the real
convoy.queue's serial mode (real git: fetch, worktree, re-lock, commit, push,
tag), up to a release tag. Bazel is NOT run: run_bazel is a stand-in that
returns a passing BazelResult at once, so Bazel time is ~0 by construction;
git runs for real on local repositories (file:// remotes, no network), and
its time is counted as git time. The figures per request are `convoy show N
--json`'s "timings": total, git, and driver-own = total - bazel - git.
The queue keeps its manifest cache from one request to the next, as a
long-running `convoy process` does; it starts empty (the first request
parses its base, the max column shows it).

The sizes are printed side by side, with the growth from the first (smallest)
size to each other one (the ratio of the medians, 10 -> N) and that growth
per component (the ratio divided by the ratio of the sizes: 1.0 is linear
growth, less is better).

Then, per size, one more request is submitted and processed by a child
process running `convoy process --all` (convoy.commands.process, the
command's own code; only run_bazel is the same stand-in), and its peak RSS
(VmHWM of /proc/self/status, read by the child as it ends) is printed.

With the breakdown (the default), the script wraps a few driver functions
(in this process only) to see where the driver's own time goes, and that of
`convoy submit`: time spent in each, less the time of the wrapped calls
inside it (git, the store, ...), summed over the driver's threads (the main
one and the stage's task threads, which may overlap). The wrapping costs a little; --no-breakdown leaves the
driver untouched. Only figures are printed; nothing is asserted about them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "driver"))

from machine import IDENTITY, machine  # noqa: E402  (benchmarks/machine.py)

from convoy import candidate as cand  # noqa: E402
from convoy import gitutil  # noqa: E402
from convoy import lock as lock_module  # noqa: E402
from convoy import manifest as manifest_module  # noqa: E402
from convoy import manifest_edit  # noqa: E402
from convoy import release as release_module  # noqa: E402
from convoy.bazel import BazelResult, Outcome  # noqa: E402
from convoy.bep import TargetResult  # noqa: E402
from convoy.config import default_config_text, load_config  # noqa: E402
from convoy.main import main as convoy_main  # noqa: E402
from convoy.manifest import load_manifest  # noqa: E402
from convoy.actions import submit as submit_module  # noqa: E402
from convoy.plugins import make_plugins  # noqa: E402
from convoy.queue import ProcessLock, QueueContext, QueueManager, open_queue  # noqa: E402
from convoy.store import checkout_store  # noqa: E402
from convoy.store import sqlite as sqlite_module  # noqa: E402
from convoy.store import sqlite_tx as sqlite_tx_module  # noqa: E402

CONFIGURATIONS = ("alpha", "beta")
BASE_VERSION = "v1.0.0"
PINNED_VERSION = "v0.9.0"  # beta's pin of every 10th component


# --- where the driver's time goes ------------------------------------------------------


@dataclass
class _Frame:
    category: str
    started: float
    children: float = 0.0


class Profiler:
    """Exclusive wall time per category: a wrapped call's time less that of
    the wrapped calls inside it. Records in the driver's main thread, its
    job threads (a window item's candidate and stages: convoy.queue.jobs)
    and its task threads only (not the plugin, lease and watcher threads)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self.seconds: Dict[str, float] = {}
        self.calls: Dict[str, int] = {}
        self.recording = False

    def reset(self) -> None:
        with self._lock:
            self.seconds, self.calls = {}, {}

    def _records(self) -> bool:
        if not self.recording:
            return False
        name = threading.current_thread().name
        return name == "MainThread" or name.startswith(("job-", "task"))

    @contextlib.contextmanager
    def section(self, category: str):
        if not self._records():
            yield
            return
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        frame = _Frame(category, time.perf_counter())
        stack.append(frame)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - frame.started
            stack.pop()
            if stack:
                stack[-1].children += elapsed
            with self._lock:
                self.seconds[category] = self.seconds.get(category, 0.0) + elapsed - frame.children
                self.calls[category] = self.calls.get(category, 0) + 1

    def wrap(self, function: Callable, category: str) -> Callable:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with self.section(category):
                return function(*args, **kwargs)

        wrapper.__wrapped_by_bench__ = True
        return wrapper

    def wrap_context(self, method: Callable, category: str) -> Callable:
        """A method returning a context manager: its enter and exit are timed (not the block)."""
        profiler = self

        class Timed:
            def __init__(self, cm):
                self.cm = cm

            def __enter__(self):
                with profiler.section(category):
                    return self.cm.__enter__()

            def __exit__(self, *exc):
                with profiler.section(category):
                    return self.cm.__exit__(*exc)

        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            if profiler._records():
                with profiler._lock:
                    profiler.calls[f"{category} contexts"] = profiler.calls.get(f"{category} contexts", 0) + 1
            return Timed(method(*args, **kwargs))

        return wrapper


GIT = "git (measured by the driver as git time)"
BAZEL = "bazel stand-in"
CATEGORIES = (  # reported, in this order
    ("manifest", "manifest parse + validate (ruamel; cache misses)"),
    ("lookup", "manifest cache lookups (sha256 of the text, copy)"),
    ("positions", "manifest edit: node positions (C composer)"),
    ("edit", "manifest edit (bump_manifest, less the above)"),
    ("view", "submit: the component's part of the manifest"),
    ("lock", "lock: re-resolve + write (lock_manifest, write_lock)"),
    ("lockread", "lock: read / parse JSON (read_lock, lock_at)"),
    ("notes", "release notes (pin changes, notes text)"),
    ("store", "store (SQLite transactions and queries)"),
    ("progress", "progress lines (QueueManager._committed)"),
    ("candidate", "candidate & worktree (python part)"),
)


def instrument(profiler: Profiler) -> None:
    """Wraps the driver functions whose time the breakdown shows (this process only)."""
    gitutil._run_git = profiler.wrap(gitutil._run_git, GIT)  # git itself, inside gitutil.run's meter

    manifest_module._parse = profiler.wrap(manifest_module._parse, "manifest")  # a cache miss: the full parse
    lookup = profiler.wrap(manifest_module.parse_manifest, "lookup")
    manifest_module.parse_manifest = lookup  # load_manifest's
    manifest_edit.parse_manifest = lookup  # bump_manifest's (before and after the edit)
    manifest_edit.compose_positions = profiler.wrap(manifest_edit.compose_positions, "positions")
    manifest_edit.bump_manifest = profiler.wrap(manifest_edit.bump_manifest, "edit")
    submit_module.read_component = profiler.wrap(submit_module.read_component, "view")

    cand.lock_manifest = profiler.wrap(cand.lock_manifest, "lock")
    cand.write_lock = profiler.wrap(cand.write_lock, "lock")
    cand.read_lock = profiler.wrap(cand.read_lock, "lockread")
    cand.lock_at = profiler.wrap(cand.lock_at, "lockread")
    cand.make_candidate = profiler.wrap(cand.make_candidate, "candidate")
    cand.prepare_worktree = profiler.wrap(cand.prepare_worktree, "candidate")

    for name in ("release_notes_for", "previous_release", "stage_summary",
                 "pin_changes", "release_notes", "next_tag", "parse_tag"):
        setattr(release_module, name, profiler.wrap(getattr(release_module, name), "notes"))

    sqlite_store = sqlite_module.SQLiteStore
    sqlite_store.transaction = profiler.wrap_context(sqlite_store.transaction, "store")
    sqlite_store.read = profiler.wrap_context(sqlite_store.read, "store")
    tx_class = sqlite_tx_module.SQLiteTransaction
    for name, value in list(vars(tx_class).items()):
        if callable(value) and not name.startswith("__"):
            setattr(tx_class, name, profiler.wrap(value, "store"))

    QueueManager._committed = profiler.wrap(QueueManager._committed, "progress")


# --- the synthetic integration repository ----------------------------------------------


def git(args: List[str], cwd: Path) -> str:
    """git through convoy's runner (so that, during a request, it is git time like the driver's)."""
    return gitutil.run(args, cwd=cwd).stdout.strip()


def component_name(index: int) -> str:
    return f"comp{index:03d}"


def in_beta(index: int) -> bool:
    return index % 7 != 6


def pinned_in_beta(index: int) -> bool:
    return index % 10 == 5


def bump_plan(components: int, requests: int) -> List[tuple[str, str]]:
    """(component, version) per request: components that both configurations
    include, unpinned, spread over the manifest; again with a newer version
    once every one of them had a turn."""
    eligible = [i for i in range(components) if in_beta(i) and not pinned_in_beta(i)]
    plan = []
    for k in range(requests):
        turn, position = divmod(k, len(eligible))
        spread = eligible[(position * len(eligible)) // min(requests, len(eligible))]
        plan.append((component_name(spread), f"v1.{turn + 1}.0"))
    return plan


def make_shared_component(path: Path, versions: List[str]) -> None:
    """One git repository, a commit and an annotated tag per version."""
    path.mkdir(parents=True)
    git(["init", "-q", "--initial-branch=main", "."], path)
    for version in versions:
        (path / "BUILD.bazel").write_text(f'# synthetic component, {version}\nexports_files(["VERSION"])\n')
        (path / "VERSION").write_text(version + "\n")
        git(["add", "-A", "."], path)
        git(["commit", "-q", "-m", f"component {version}"], path)
        git(["tag", "-a", version, "-m", f"component {version}"], path)


def manifest_text(components: int, remote: str) -> str:
    lines = [
        f"# Synthetic manifest of {components} components (benchmarks/driver_overhead.py).",
        "# Every component comes from the same git repository, at its own version.",
        "schema_version: 1",
        f"default_configuration: {CONFIGURATIONS[0]}",
        "",
        "release:",
        '  tag_format: "v{year}.{month}.{n}"',
        "",
        "components:",
    ]
    for i in range(components):
        lines += [
            f"  {component_name(i)}:          # synthetic component {i}",
            "    source: git",
            f"    remote: {remote}",
            f"    version: {BASE_VERSION}",
        ]
    lines += ["", "configurations:", f"  {CONFIGURATIONS[0]}:           # every component", "    components:"]
    lines += [f"      - {component_name(i)}" for i in range(components)]
    lines += [f"  {CONFIGURATIONS[1]}:            # all but every 7th; every 10th pinned older", "    components:"]
    lines += [f"      - {component_name(i)}" for i in range(components) if in_beta(i)]
    pins = [i for i in range(components) if in_beta(i) and pinned_in_beta(i)]
    if pins:
        lines.append("    pins:")
        lines += [f"      {component_name(i)}: {PINNED_VERSION}" for i in pins]
    return "\n".join(lines) + "\n"


@dataclass
class World:
    root: Path
    checkout: Path
    setup_seconds: float
    lock_seconds: float
    manifest_bytes: int
    lock_bytes: int


def make_world(root: Path, components: int, plan: List[tuple[str, str]]) -> World:
    started = time.monotonic()
    versions = [PINNED_VERSION, BASE_VERSION] + sorted({v for _, v in plan}, key=lambda v: int(v.split(".")[1]))
    shared = root / "remotes" / "shared"
    make_shared_component(shared, versions)

    origin, checkout = root / "origin.git", root / "checkout"
    git(["init", "-q", "--bare", "--initial-branch=main", str(origin)], root)
    checkout.mkdir()
    git(["init", "-q", "--initial-branch=main", "."], checkout)
    (checkout / "manifests").mkdir()
    manifest_path = checkout / "manifests" / "manifest.yaml"
    manifest_path.write_text(manifest_text(components, shared.as_uri()))
    (checkout / "convoy.yaml").write_text(default_config_text())
    (checkout / ".gitignore").write_text("/.convoy/\n/bazel-*\n")
    lock_started = time.monotonic()
    lock = lock_module.lock_manifest(load_manifest(manifest_path), checkout, "manifests/manifest.yaml")
    lock_module.write_lock(checkout / "manifests" / "manifest.lock.json", lock)
    lock_seconds = time.monotonic() - lock_started
    git(["add", "-A", "."], checkout)
    git(["commit", "-q", "-m", "Synthetic integration repository"], checkout)
    git(["remote", "add", "origin", str(origin)], checkout)
    git(["push", "-q", "-u", "origin", "main"], checkout)
    return World(root, checkout, time.monotonic() - started, lock_seconds, manifest_path.stat().st_size,
                 (checkout / "manifests" / "manifest.lock.json").stat().st_size)


# --- Bazel's stand-in ------------------------------------------------------------------


def passing_bazel(workspace, command, targets, *, log_path, bep_path, flags, startup_flags, output_base, repo_env,
                  timeout, cancel, on_start, secret_env=(), pass_env=()):
    """run_bazel's stand-in: Bazel is not run; every task passes at once."""
    on_start(os.getpid())
    results = () if command == "build" else tuple(
        TargetResult(f"//integration:synthetic_{n}_test", "passed", duration_ms=1) for n in range(3)
    )
    return BazelResult(outcome=Outcome.PASSED, exit_code=0, duration=0.0, log_path=Path(log_path),
                       bep_path=Path(bep_path), targets=results, detail="passed (Bazel not run: benchmark stand-in)")


# --- one size ---------------------------------------------------------------------------


@dataclass
class Figures:
    components: int
    requests: int
    world: World
    submit: List[float] = field(default_factory=list)
    submit_breakdown: List[Dict[str, float]] = field(default_factory=list)
    total: List[float] = field(default_factory=list)
    bazel: List[float] = field(default_factory=list)
    git: List[float] = field(default_factory=list)
    driver: List[float] = field(default_factory=list)
    breakdown: List[Dict[str, float]] = field(default_factory=list)
    calls: List[Dict[str, int]] = field(default_factory=list)
    states: List[str] = field(default_factory=list)
    connections: int = 0
    process_rss_mb: float = 0.0
    process_seconds: float = 0.0


def convoy(checkout: Path, *args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = convoy_main(["convoy", args[0], f"--repo={checkout}", *args[1:]])
    if code != 0:
        raise SystemExit(f"convoy {' '.join(args)} failed (exit {code}):\n{err.getvalue()}{out.getvalue()}")
    return out.getvalue()


@contextlib.contextmanager
def empty_manifest_cache():
    """The manifest cache of a new process: empty, and the queue's own put back after."""
    queue_cache = manifest_module._CACHE
    manifest_module._CACHE = manifest_module._Cache()
    try:
        yield
    finally:
        manifest_module._CACHE = queue_cache


def measure(components: int, requests: int, profiler: Optional[Profiler]) -> Figures:
    plan = bump_plan(components, requests + 1)  # the last: `convoy process --all` in a child process
    plan, child_bump = plan[:-1], plan[-1]
    root = Path(tempfile.mkdtemp(prefix=f"convoy-bench-driver-{components}-"))
    try:
        world = make_world(root, components, plan + [child_bump])
        manifest_module.clear_cache()  # the queue starts with none
        figures = Figures(components, requests, world)
        checkout = world.checkout
        config = load_config(checkout / "convoy.yaml")
        lines: List[str] = []
        with ProcessLock(checkout), checkout_store(checkout, create=True) as store:
            processor = open_queue(QueueContext(checkout, config, store, out=lines.append, pool_check=None,
                                                run_bazel=passing_bazel),
                                   plugins=list(make_plugins(config.plugins, checkout)))
            processor.start()
            try:
                processor.recover()
                for component, version in plan:
                    if profiler is not None:
                        profiler.reset()
                        profiler.recording = True
                    try:
                        with empty_manifest_cache():
                            started = time.monotonic()
                            submitted = json.loads(convoy(checkout, "submit", "--json", f"--component={component}",
                                                          f"--version={version}", "--requested_by=bench"))
                            figures.submit.append(time.monotonic() - started)
                    finally:
                        if profiler is not None:
                            profiler.recording = False
                            figures.submit_breakdown.append(dict(profiler.seconds))
                    if profiler is not None:
                        profiler.reset()
                        profiler.recording = True
                    try:
                        done = processor.step()
                    finally:
                        if profiler is not None:
                            profiler.recording = False
                    if done != submitted["id"]:
                        raise SystemExit(f"processed request {done}, expected {submitted['id']}")
                    shown = json.loads(convoy(checkout, "show", "--json", str(done)))
                    t = shown["timings"]
                    figures.states.append(shown["request"]["state"])
                    if shown["request"]["state"] != "merged":
                        print(f"warning: request {done} ended {shown['request']['state']}: "
                              f"{shown['request']['detail']}", file=sys.stderr)
                    figures.total.append(t["total_seconds"])
                    figures.bazel.append(t["bazel_seconds"])
                    figures.git.append(t["git_seconds"])
                    figures.driver.append(t["total_seconds"] - t["bazel_seconds"] - t["git_seconds"])
                    if profiler is not None:
                        figures.breakdown.append(dict(profiler.seconds))
                        figures.calls.append(dict(profiler.calls))
            finally:
                processor.finish()
                figures.connections = store.open_connections()
        component, version = child_bump
        convoy(checkout, "submit", "--json", f"--component={component}", f"--version={version}",
               "--requested_by=bench")
        figures.process_rss_mb, figures.process_seconds = process_in_child(checkout)
        return figures
    finally:
        shutil.rmtree(root, ignore_errors=True)


def process_in_child(checkout: Path) -> tuple[float, float]:
    """`convoy process --all` in a child process (Bazel's stand-in); its peak RSS in MB and wall time."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "tools" / "driver")}
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), f"--child-process={checkout}"],
                          env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    peak = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("VmHWM-kB ")]
    if done.returncode != 0 or not peak:
        raise SystemExit(f"convoy process --all failed (exit {done.returncode}):\n{done.stderr}{done.stdout}")
    return int(peak[-1]) / 1024, seconds


def child_process(checkout: Path) -> int:
    """The child of process_in_child: convoy process --all, run_bazel the stand-in; prints VmHWM-kB."""
    from convoy.commands import process as process_command
    from convoy import queue as queue_module

    process_command.QueueContext = functools.partial(queue_module.QueueContext, run_bazel=passing_bazel)
    done = process_command.process(checkout, mode="all")  # how many requests it processed
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            print("VmHWM-kB", line.split()[1])
    return 0 if done == 1 else 1


# --- the report --------------------------------------------------------------------------


def med_max(values: List[float]) -> str:
    return f"{statistics.median(values):.3f} / {max(values):.3f}"


def growth_header(results: List[Figures]) -> str:
    return "".join(f"{f'{b.components}/{results[0].components}':>16}" for b in results[1:])


def growth_cells(results: List[Figures], medians: List[float]) -> str:
    """The ratio of each size's median to the first size's (10 -> N), and that per component (1.0: linear)."""
    cells = ""
    for (a, b), (x, y) in zip(((results[0], r) for r in results[1:]), ((medians[0], m) for m in medians[1:])):
        if x <= 0:
            cells += f"{'-':>16}"
            continue
        ratio = y / x
        cells += f"{f'{ratio:.2f}x ({ratio / (b.components / a.components):.2f})':>16}"
    return cells


def report(results: List[Figures], breakdown: bool, startup: float) -> None:
    print()
    print("per request, in seconds, from `convoy show N --json` timings (median / max over the requests), and")
    print("the growth from the first size to each other (10 -> N): ratio of the medians (per component: ratio /")
    print("ratio of the sizes; 1.0 is linear growth):")
    width = 26
    header = f"{'components':<{width}}" + "".join(f"{f.components:>18}" for f in results) + growth_header(results)
    print(header)
    print("-" * len(header))
    rows = (
        ("total", [f.total for f in results]),
        ("git", [f.git for f in results]),
        ("driver-own", [f.driver for f in results]),
        ("bazel (stand-in)", [f.bazel for f in results]),
        ("convoy submit", [f.submit for f in results]),
    )
    for label, values in rows:
        print(f"{label:<{width}}" + "".join(f"{med_max(v):>18}" for v in values)
              + growth_cells(results, [statistics.median(v) for v in values]))
    print(f"{'peak RSS, process --all':<{width}}" + "".join(f"{f'{f.process_rss_mb:.0f} MB':>18}" for f in results))
    print(f"{'process --all, 1 request':<{width}}" + "".join(f"{f'{f.process_seconds:.2f} s':>18}" for f in results))
    per_component = [1000 * statistics.median(f.driver) / f.components for f in results]
    print(f"{'driver-own per component':<{width}}" + "".join(f"{f'{ms:.3f} ms':>18}" for ms in per_component))
    print("  driver-own = total - bazel - git; bazel: the stand-in (~0 by construction). The queue's manifest cache")
    print("  is empty at its first request (its max), then holds what the previous bump made, as in `convoy process`.")
    print("  convoy submit = wall time of `convoy submit` in this process, with an empty manifest cache (as a new")
    print("  process has); not part of a request's total. A new process also starts Python and imports convoy:")
    print(f"  {startup:.3f} s here (`python -c 'import convoy.main'`, median of 3), not in the figures above.")
    not_merged = [(f.components, s) for f in results for s in f.states if s != "merged"]
    if not_merged:
        print(f"  WARNING: requests not merged: {not_merged} (their figures cover a different path)")

    if breakdown:
        print()
        print("where the driver's own time goes, median ms per request (exclusive time, summed over the main")
        print("and task threads; 'unattributed' = driver-own less the rows above it):")
        width = 58
        print(f"{'':{width}}" + "".join(f"{f.components:>10}" for f in results) + growth_header(results))
        for key, label in CATEGORIES:
            if key == "view":
                continue
            medians = [1000 * statistics.median(b.get(key, 0.0) for b in f.breakdown) for f in results]
            print(f"{label:{width}}" + "".join(f"{m:10.1f}" for m in medians) + growth_cells(results, medians))
        medians = []
        for f in results:
            attributed = [sum(b.get(key, 0.0) for key, _ in CATEGORIES) for b in f.breakdown]
            medians.append(1000 * statistics.median(d - a for d, a in zip(f.driver, attributed)))
        print(f"{'unattributed (threads, process glue, ...)':{width}}" + "".join(f"{m:10.1f}" for m in medians))
        medians = [1000 * statistics.median(f.driver) for f in results]
        print(f"{'driver-own (from the table above)':{width}}" + "".join(f"{m:10.1f}" for m in medians)
              + growth_cells(results, medians))
        for key, label in ((GIT, "git commands"), ("manifest", "full manifest parses (cache misses)"),
                           ("lookup", "manifest cache lookups"),
                           ("store contexts", "store transactions and reads")):
            print(f"{'calls per request: ' + label:{width}}"
                  + "".join(f"{statistics.median(c.get(key, 0) for c in f.calls):10.0f}" for f in results))
        print()
        print("where `convoy submit`'s time goes, median ms (exclusive time; 'other' = the rest: flags, the")
        print("command's glue, the JSON output):")
        print(f"{'':{width}}" + "".join(f"{f.components:>10}" for f in results) + growth_header(results))
        for key, label in (("view", "the component's part of the manifest (read_component)"),
                           ("manifest", "manifest parse + validate (a fallback to the full load)"),
                           (GIT, "git (ls-remote of the component's remote)"),
                           ("store", "store (SQLite: open, queue the request)")):
            medians = [1000 * statistics.median(b.get(key, 0.0) for b in f.submit_breakdown) for f in results]
            print(f"{label:{width}}" + "".join(f"{m:10.1f}" for m in medians) + growth_cells(results, medians))
        medians = [1000 * statistics.median(t - sum(b.values()) for t, b in zip(f.submit, f.submit_breakdown))
                   for f in results]
        print(f"{'other':{width}}" + "".join(f"{m:10.1f}" for m in medians))
        medians = [1000 * statistics.median(f.submit) for f in results]
        print(f"{'convoy submit (from the table above)':{width}}" + "".join(f"{m:10.1f}" for m in medians)
              + growth_cells(results, medians))

    print()
    for f in results:
        w = f.world
        print(f"{f.components} components: manifest {w.manifest_bytes / 1024:.0f} KiB, lock {w.lock_bytes / 1024:.0f} "
              f"KiB; setup {w.setup_seconds:.1f} s (initial lock {w.lock_seconds:.1f} s); SQLite connections the "
              f"store opened: {f.connections}")


def startup_seconds() -> float:
    """Wall time of a new Python process that imports convoy's command line (median of 3)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "tools" / "driver")}
    times = []
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "import convoy.main"], env=env, check=True)
        times.append(time.monotonic() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5, help="requests processed per size (default 5)")
    parser.add_argument("--components", default="10,500,2000",
                        help="manifest sizes, comma-separated (default 10,500,2000)")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="leave the driver's functions unwrapped (no breakdown of the driver's time)")
    parser.add_argument("--child-process", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_process:
        return child_process(Path(args.child_process))
    try:
        sizes = [int(s) for s in args.components.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--components={args.components}: expected numbers such as 10,500,2000")
    if args.requests < 1 or not sizes or min(sizes) < 2:
        parser.error("--requests must be at least 1, and every size at least 2 components")

    os.environ.update(IDENTITY)
    os.environ["GIT_CONFIG_GLOBAL"] = os.devnull  # the user's git config stays out of it
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "CONVOY_FAILPOINT"):
        os.environ.pop(name, None)

    print("convoy driver overhead per request (benchmarks/driver_overhead.py)")
    print(machine())
    print("Bazel is NOT run: run_bazel is a stand-in that returns a passing result at once, so Bazel time is")
    print("~0 by construction. git IS run, for real, on local repositories (file:// remotes, no network): fetch,")
    print("worktree, ls-remote of the bumped component, commit, push, tag; it is counted as git time.")
    print(f"Each request bumps one git component that both configurations include: {len(CONFIGURATIONS)} "
          "configurations x 4 stages = 8 stand-in Bazel tasks, then merge, push and a release tag.")

    profiler = Profiler() if args.breakdown else None
    if profiler is not None:
        instrument(profiler)
    results = []
    for size in sizes:
        print(f"... {size} components, {args.requests} requests", flush=True)
        results.append(measure(size, args.requests, profiler))
    report(results, args.breakdown, startup_seconds())
    return 0


if __name__ == "__main__":
    sys.exit(main())
