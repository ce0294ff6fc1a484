"""The real half of benchmarks/queue_throughput.py: one queue mode's side, from scratch.

    side = run_side("speculative", {"mode": "speculative", "window": 4}, directory / "side-speculative",
                    hw_seconds=20.0, scenario="configuration")
    side.wall, side.states(), side.tags, side.final

A side is made in its own directory, the way `convoy demo` makes the
sample: a git repository per component (convoy.sample.make_component_repos)
plus the releases this benchmark needs (RELEASES: the tree of an existing
version with only its version changed), the integration repository
(convoy.sample.make_integration_repo) with the default convoy.yaml and
these changes: the queue's mode and numbers, the shared Bazel
--output_user_root (the install base; output bases and the disk cache are
the side's own, under .convoy/, and start cold), `pools:` as `rigs`
(default RIGS, rover-rigs:2 and drone-rigs:2), and a hardware stage
that runs on the side's own lab (`--config=hil` at the lab's port,
`check_pools: true`, `affected_only: true`: only the rig tests that depend
on a component the candidate moved from its base run, and only those take
rigs at the gate). The lab (convoy.lab's Lab: PostgreSQL, BuildGrid, a
simulated rig and its worker per rig of each pool, two general workers)
is brought up for the side, on a free port,
before anything is submitted, and down after it; its action cache starts
empty too. One commit makes the hardware test sleep `hw_seconds` in
setUpModule, once per run of the test.

Before the timed requests, the eight WARM_UP requests are processed in two
rounds (not timed, the same in every mode), so that every lane has both
configurations' Bazel servers.
The requests (SCENARIOS: six per scenario, the fourth fails, in the
configuration stage or on a rig): the sample has four components, and a newer
request supersedes a *queued* one of the same component, so six requests
cannot all wait in the queue at once. The first wave (four, one per
component) is submitted before `convoy process --all` starts; each request
of the second wave is submitted by a watcher (0.2 s polls of the store)
as soon as the earlier request of its component has left the queue (is
being tested). The rule is the same in every mode; in no mode does the
queue wait for a request of the second wave (it arrives while at least
two requests are still queued ahead of it in serial; at once in the others).
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "driver"))

from ruamel.yaml import YAML  # noqa: E402  (the driver's)

from convoy import sample  # noqa: E402
from convoy.config import default_config_text  # noqa: E402
from convoy.lab.lab import Lab, parse_rigs  # noqa: E402
from convoy.manifest import parse_manifest  # noqa: E402
from cpu_meter import CpuMeter  # noqa: E402  (benchmarks/cpu_meter.py)
from machine import IDENTITY  # noqa: E402  (benchmarks/machine.py)

PYTHON = REPO / ".venv" / "bin" / "python"
OUTPUT_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convoy" / "bench-bazel"
STARTUP_FLAGS = [f"--output_user_root={OUTPUT_ROOT}", "--max_idle_secs=300"]
RIGS = "rover-rigs:2,drone-rigs:2"
HARDWARE_TEST = "//integration:flash_and_drive_test"
TEST_STATUSES = ("passed", "failed", "flaky", "timeout")
PROCESS_TIMEOUT = 3600
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", **IDENTITY}


@dataclass(frozen=True)
class Req:
    component: str
    version: str
    expected: str
    wave: int
    why: str


# What each scenario's six requests are. The failing request is the fourth in both;
# "configuration" (the default) fails where most breakage is caught, in a stage
# before the rigs; "hardware" fails on a rig, the costliest case for speculation
# (the candidates behind it have spent rigs on a base that goes away).
SCENARIOS = {
    "configuration": (
        Req("messages", "v1.5.0", "merged", 1, "both configurations"),
        Req("planner", "v2.2.0", "merged", 1, "rover only; the hardware test does not depend on it"),
        Req("controller", "v1.2.1", "merged", 1, "both configurations"),
        Req("firmware", "v3.1.0", "rejected", 1, "drops wire protocol 2: rover's configuration stage"),
        Req("messages", "v1.5.1", "merged", 2, "both configurations; once #1 has left the queue"),
        Req("firmware", "v3.0.2", "merged", 2, "rover only (the drone pins v2.9.4); once #4 has left the queue"),
    ),
    # As "configuration", but the sixth is another team's next bump (waiting for its own
    # earlier request, #3), not the failing team's fix (which waits for the rejection of #4).
    "configuration+other": (
        Req("messages", "v1.5.0", "merged", 1, "both configurations"),
        Req("planner", "v2.2.0", "merged", 1, "rover only; the hardware test does not depend on it"),
        Req("controller", "v1.2.1", "merged", 1, "both configurations"),
        Req("firmware", "v3.1.0", "rejected", 1, "drops wire protocol 2: rover's configuration stage"),
        Req("messages", "v1.5.1", "merged", 2, "both configurations; once #1 has left the queue"),
        Req("controller", "v1.2.2", "merged", 2, "both configurations; once #3 has left the queue"),
    ),
    "hardware": (
        Req("messages", "v1.5.0", "merged", 1, "both configurations"),
        Req("planner", "v2.2.0", "merged", 1, "rover only; the hardware test does not depend on it"),
        Req("firmware", "v3.0.2", "merged", 1, "rover only: the drone pins v2.9.4"),
        Req("controller", "v1.3.0", "rejected", 1, "its image outgrows the drone board (drone's hardware test)"),
        Req("messages", "v1.5.1", "merged", 2, "both configurations; once #1 has left the queue"),
        Req("controller", "v1.2.1", "merged", 2, "both configurations; once #4 has left the queue"),
    ),
}
# Processed (untimed) before the six, the same in every mode, in two rounds of
# four (each round one `convoy process --all`, its requests queued up front):
# every lane the mode uses gets both configurations' Bazel servers and external
# repositories, as in a queue that runs all day (a window of 4 uses lanes 0-3,
# the lowest free lane first, so the nth request of a round starts in lane
# n-1; serial uses lane 0). Planner and firmware bumps move the rover only:
# the first round's put them in lanes 2 and 3, the second's in lanes 0 and 1.
WARM_UP = (
    (Req("messages", "v1.4.1", "merged", 0, "warm-up"),
     Req("controller", "v1.2.0-1", "merged", 0, "warm-up"),
     Req("planner", "v2.1.1", "merged", 0, "warm-up"),
     Req("firmware", "v3.0.1-1", "merged", 0, "warm-up")),
    (Req("planner", "v2.1.2", "merged", 0, "warm-up"),
     Req("firmware", "v3.0.1-2", "merged", 0, "warm-up"),
     Req("messages", "v1.4.2", "merged", 0, "warm-up"),
     Req("controller", "v1.2.0-2", "merged", 0, "warm-up")),
)
# new version: (the version whose tree it is, {file: (old, new)})
RELEASES = {
    ("messages", "v1.4.1"): ("v1.4.0", {"messages/__init__.py": ('__version__ = "1.4.0"', '__version__ = "1.4.1"')}),
    ("planner", "v2.1.1"): ("v2.1.0", {"planner/__init__.py": ('__version__ = "2.1.0"', '__version__ = "2.1.1"')}),
    ("planner", "v2.1.2"): ("v2.1.0", {"planner/__init__.py": ('__version__ = "2.1.0"', '__version__ = "2.1.2"')}),
    ("messages", "v1.4.2"): ("v1.4.0", {"messages/__init__.py": ('__version__ = "1.4.0"', '__version__ = "1.4.2"')}),
    ("firmware", "v3.0.1-2"): ("v3.0.1", {"firmware/__init__.py": ('__version__ = "3.0.1"',
                                                                  '__version__ = "3.0.1-2"')}),
    ("controller", "v1.2.0-2"): ("v1.2.0", {"controller/__init__.py": ('__version__ = "1.2.0"',
                                                                      '__version__ = "1.2.0-2"')}),
    ("firmware", "v3.0.1-1"): ("v3.0.1", {"firmware/__init__.py": ('__version__ = "3.0.1"',
                                                                  '__version__ = "3.0.1-1"')}),
    ("messages", "v1.5.1"): ("v1.5.0", {"messages/__init__.py": ('__version__ = "1.5.0"', '__version__ = "1.5.1"')}),
    ("controller", "v1.2.1"): ("v1.2.0", {"controller/__init__.py": ('__version__ = "1.2.0"',
                                                                    '__version__ = "1.2.1"')}),
    ("controller", "v1.2.2"): ("v1.2.0", {"controller/__init__.py": ('__version__ = "1.2.0"',
                                                                    '__version__ = "1.2.2"')}),
    ("controller", "v1.2.0-1"): ("v1.2.0", {"controller/__init__.py": ('__version__ = "1.2.0"',
                                                                      '__version__ = "1.2.0-1"')}),
    ("firmware", "v3.1.0"): ("v3.0.1", {"firmware/__init__.py": ('__version__ = "3.0.1"', '__version__ = "3.1.0"'),
                                        "firmware/image.py": ("SUPPORTED_PROTOCOLS = (2, 3)",
                                                              "SUPPORTED_PROTOCOLS = (3,)")}),
    ("firmware", "v3.0.2"): ("v3.0.1", {"firmware/__init__.py": ('__version__ = "3.0.1"', '__version__ = "3.0.2"'),
                                        "firmware/image.py": ("FIRMWARE_VERSION = (3, 0, 1)",
                                                              "FIRMWARE_VERSION = (3, 0, 2)")}),
}


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


def driver_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CONVOY_FAILPOINT", "PYTHONPATH")}
    env["PYTHONPATH"] = str(REPO / "tools" / "driver")
    return env


def convoy(checkout: Path, *args: str) -> str:
    return run([str(PYTHON), "-m", "convoy", *args, f"--repo={checkout}"], checkout, driver_env(),
               what=f"convoy {' '.join(args)}")


def shutdown_bazel(checkout: Path) -> None:
    root = checkout / ".convoy" / "bazel"
    for output_base in sorted([*root.glob("slot-*"), *root.glob("lane-*/slot-*")]):
        if (output_base / "server").exists():
            subprocess.run(["bazel", *STARTUP_FLAGS[:1], f"--output_base={output_base}", "shutdown"], cwd=checkout,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False)


# --- the side's repositories ----------------------------------------------------------------


def release(remote: Path, version: str, of: str, edits: Dict[str, Tuple[str, str]]) -> None:
    """`version`: the tree of `of` with `edits`, committed on a branch of its own and tagged."""
    git(["checkout", "-q", "-B", f"release-{version}", of], remote)
    for name, (old, new) in edits.items():
        text = (remote / name).read_text()
        if text.count(old) != 1:
            raise SystemExit(f"{remote / name} at {of} has no single {old!r}")
        (remote / name).write_text(text.replace(old, new))
    git(["commit", "-q", "-am", f"{remote.name} {version}"], remote)
    git(["tag", "-a", version, "-m", f"{remote.name} {version}"], remote)
    git(["checkout", "-q", "main"], remote)


def config_text(queue: Dict[str, object], lab_server: str, rigs: str) -> str:
    """The default convoy.yaml (comments kept) with the queue's mode and numbers, the shared output user
    root, the pools and a hardware stage on the lab."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes, yaml.width = True, 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = yaml.load(default_config_text())
    document.setdefault("queue", {}).update(queue)
    document["pools"] = {pool: int(n) for pool, n in (s.split(":")[:2] for s in rigs.split(","))}
    document.setdefault("bazel", {})["startup_flags"] = list(STARTUP_FLAGS)
    hardware = [stage for stage in document["stages"] if stage["name"] == "hardware"]
    if len(hardware) != 1:
        raise SystemExit("the default convoy.yaml has no single stage named hardware")
    hardware[0]["flags"] = ["--config=hil", f"--remote_executor=grpc://{lab_server}"]
    hardware[0]["check_pools"] = True
    hardware[0]["affected_only"] = True  # the rig tests that depend on what moved (docs/driver.md)
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def slow_hardware_test(checkout: Path, seconds: float) -> None:
    """Commits (and pushes) a hardware test that sleeps `seconds` once per run."""
    path = checkout / "integration" / "flash_and_drive_test.py"
    text = path.read_text()
    cls = "\n\nclass FlashAndDriveTest("
    if text.count("\nimport unittest\n") != 1 or text.count(cls) != 1:
        raise SystemExit(f"{path} is not the sample's hardware test; cannot make it slow")
    text = text.replace("\nimport unittest\n", "\nimport time\nimport unittest\n", 1)
    sleep = (f"\n\nHW_SECONDS = {seconds!r}  # benchmarks/queue_throughput.py: the rig test's own time\n\n\n"
             "def setUpModule():\n    time.sleep(HW_SECONDS)\n")
    path.write_text(text.replace(cls, sleep + cls, 1))
    git(["commit", "-q", "-am", f"The hardware test takes {seconds:g} s"], checkout)
    git(["push", "-q", "origin", "main"], checkout)


def pins_at(bare: Path, commit: str) -> Dict[str, Dict[str, str]]:
    """Each configuration's resolved versions in manifests/manifest.yaml at `commit`."""
    manifest = parse_manifest(git(["show", f"{commit}:manifests/manifest.yaml"], bare))
    return {name: {n: c.version for n, c in manifest.resolved(name).items()} for name in manifest.configurations}


# --- one side --------------------------------------------------------------------------------


@dataclass
class Side:
    name: str
    queue: Dict[str, object]
    plan: Sequence[Req] = ()  # the scenario's requests, in order
    wall: float = 0.0
    requests: List[dict] = field(default_factory=list)  # convoy show --json of each, in plan's order
    arrivals: List[float] = field(default_factory=list)  # seconds after `convoy process` started
    tags: List[Tuple[str, str, Dict[str, Dict[str, str]]]] = field(default_factory=list)  # name, commit, pins
    final: Dict[str, Dict[str, str]] = field(default_factory=dict)
    log: Optional[Path] = None
    epoch: float = 0.0  # time.time() when `convoy process` started
    cpu: List[str] = field(default_factory=list)  # cpu_meter's report of the timed run
    withdrawn: int = 0  # rig runs the lab withdrew (cancelled) while they ran: its workers' logs

    def states(self) -> List[str]:
        return [r["request"]["state"] for r in self.requests]

    def count(self, state: str) -> int:
        return self.states().count(state)

    def builds(self) -> int:
        return sum(len(r["builds"]) for r in self.requests)

    def hardware_runs(self) -> int:
        return sum(1 for r in self.requests for b in r["builds"] for s in b["stages"] for t in s["tasks"]
                   for target in t["targets"] if target["label"] == HARDWARE_TEST
                   and target["status"] in TEST_STATUSES and not target["cached"])

    def hardware_seconds(self, configuration: str) -> float:
        """Seconds the hardware stage's tasks of `configuration` took (each holds a rig of its pool)."""
        return sum(t["duration"] or 0.0 for r in self.requests for b in r["builds"] for s in b["stages"]
                   if s["name"] == "hardware" for t in s["tasks"] if t["configuration"] == configuration)

    def timeline(self) -> List[str]:
        """Each build's stages, seconds after `convoy process` started: stage start-end (tasks' spread)."""
        lines = []
        for r in self.requests:
            for b in r["builds"]:
                parts = []
                for s in b["stages"]:
                    times = [(t["started_at"], t["finished_at"]) for t in s["tasks"] if t["started_at"]]
                    if not times:
                        continue
                    begin = min(a for a, _ in times) - self.epoch
                    end = max((z or a) for a, z in times) - self.epoch
                    parts.append(f"{s['name']} {begin:.1f}-{end:.1f}")
                lines.append(f"#{r['request']['id']} build {b['number']} ({b['state']}): " + " | ".join(parts))
        return lines

    def wrong(self) -> List[str]:
        return [f"{self.name}: #{r['request']['id']} {q.component} {q.version} ended {r['request']['state']}, "
                f"expected {q.expected} ({q.why}); see {self.log}"
                for q, r in zip(self.plan, self.requests) if r["request"]["state"] != q.expected]


class Watcher(threading.Thread):
    """Submits the second wave: each request once the earlier one of its component has left the queue."""

    def __init__(self, checkout: Path, plan: Sequence[Req], ids: Dict[int, int], start: float) -> None:
        super().__init__(daemon=True)
        self.checkout, self.plan, self.ids, self.start_time = checkout, plan, ids, start
        self.arrivals: Dict[int, float] = {}
        self.error: Optional[BaseException] = None
        self.done = threading.Event()

    def state(self, request_id: int) -> str:
        db = self.checkout / ".convoy" / "state.db"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
            return connection.execute("SELECT state FROM requests WHERE id = ?", (request_id,)).fetchone()[0]

    def run(self) -> None:
        try:
            for index, q in enumerate(self.plan):
                if q.wave == 1:
                    continue
                earlier = max(i for i in range(index) if self.plan[i].component == q.component)
                while self.state(self.ids[earlier]) == "queued":
                    if self.done.wait(0.2):
                        return
                self.arrivals[index] = time.monotonic() - self.start_time
                self.ids[index] = submit(self.checkout, q)
        except BaseException as e:  # noqa: BLE001 (reported by run_side)
            self.error = e


def submit(checkout: Path, q: Req) -> int:
    shown = json.loads(convoy(checkout, "submit", f"--component={q.component}", f"--version={q.version}",
                              f"--requested_by=bench@{q.component}", "--json"))
    if shown["superseded"] or shown["existing"]:
        raise SystemExit(f"submitting {q.component} {q.version} superseded {shown['superseded']} (or was queued)")
    return shown["id"]


def run_side(name: str, queue: Dict[str, object], work: Path, hw_seconds: float, rigs: str = RIGS,
             scenario: str = "configuration") -> Side:
    plan = SCENARIOS[scenario]
    side = Side(name, queue, plan)
    print(f"\n== {name}: queue {json.dumps(queue)}; in {work}", flush=True)
    work.mkdir(parents=True)
    remotes = {c: path for c, path in sample.make_component_repos(REPO / "examples", work / "components").items()}
    for (component, version), (of, edits) in RELEASES.items():
        release(remotes[component], version, of, edits)
    lab = Lab(work / "lab")
    checkout = None
    try:
        started = time.monotonic()
        lab.up(parse_rigs(rigs), general=2, port=0)
        server = lab.state()["server"]
        print(f"   lab up ({rigs}, 2 general workers) at {server} in {time.monotonic() - started:.1f} s", flush=True)
        repo = sample.make_integration_repo(REPO, work / "integration", {c: p.as_uri() for c, p in remotes.items()},
                                            config_text=config_text(queue, server, rigs))
        checkout = repo.checkout
        slow_hardware_test(checkout, hw_seconds)
        warm = time.monotonic()
        for round_ in WARM_UP:
            for q in round_:
                submit(checkout, q)
            run([str(PYTHON), "-m", "convoy", "process", "--all", f"--repo={checkout}"], checkout,
                env=driver_env(), timeout=PROCESS_TIMEOUT)
        print(f"   warm-up: {sum(map(len, WARM_UP))} requests in {len(WARM_UP)} rounds processed in "
              f"{time.monotonic() - warm:.1f} s (not timed)", flush=True)
        initial = pins_at(repo.bare, "main")
        ids = {i: submit(checkout, q) for i, q in enumerate(plan) if q.wave == 1}
        side.log = work / "process.log"
        print(f"   convoy process --all ({len(plan)} requests, {len(ids)} queued up front; its output: "
              f"{side.log})", flush=True)
        with open(side.log, "w") as output:
            meter = CpuMeter()
            start, side.epoch = time.monotonic(), time.time()
            watcher = Watcher(checkout, plan, ids, start)
            proc = subprocess.Popen([str(PYTHON), "-m", "convoy", "process", "--all", f"--repo={checkout}"],
                                    cwd=checkout, env=driver_env(), stdout=output, stderr=subprocess.STDOUT)
            watcher.start()
            try:
                code = proc.wait(timeout=PROCESS_TIMEOUT)
            finally:
                if proc.poll() is None:
                    proc.kill()
            side.wall = time.monotonic() - start
            side.cpu = meter.report(side.wall)
            watcher.done.set()
            watcher.join(30)
        if code != 0:
            raise SystemExit(f"{name}: convoy process --all failed (exit {code}):\n{side.log.read_text()[-4000:]}")
        if watcher.error is not None or len(ids) != len(plan):
            raise SystemExit(f"{name}: the second wave was not submitted ({watcher.error!r}); "
                             f"convoy process --all ended first?")
    finally:
        if checkout is not None:
            shutdown_bazel(checkout)
        lab.down()
        side.withdrawn = sum(log.read_text(errors="replace").count("was withdrawn by the server")
                             for log in (work / "lab").glob("**/*.log"))
    side.arrivals = [watcher.arrivals.get(i, 0.0) for i in range(len(plan))]
    side.requests = [json.loads(convoy(checkout, "show", str(ids[i]), "--json")) for i in range(len(plan))]
    refs = git(["for-each-ref", "--sort=version:refname", "--format=%(refname:short) %(*objectname) %(objectname)",
                "refs/tags"], repo.bare).split("\n")
    for line in filter(None, refs):
        tag, peeled, obj = (line.split(" ") + [""])[:3]
        commit = peeled or obj
        side.tags.append((tag, commit, pins_at(repo.bare, commit)))
    side.final = pins_at(repo.bare, "main")
    if side.final == initial:
        raise SystemExit(f"{name}: main did not move")
    print(f"   convoy process --all: {side.wall:.1f} s wall; " +
          ", ".join(f"#{r['request']['id']} {r['request']['component']} {r['request']['version']} "
                    f"{r['request']['state']}" for r in side.requests), flush=True)
    return side
