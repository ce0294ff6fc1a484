"""`GET /api/status` latency of a real `convoy serve` with 1,000 requests in the store, with 0 and with 20
clients on the event stream, side by side in one run.

    .venv/bin/python benchmarks/serve_status.py [--requests=1000] [--streams=20] [--calls=200] [--threads=4]
                                                [--append-every=0.1] [--keep]

Set-up, in a temporary directory (removed at the end unless --keep): an
integration checkout (a git repository with a manifest of the sample's four
components in two configurations, rover and drone, and a convoy.yaml with the
speculative queue, a window of 4, the four stages build, integration,
configuration and hardware, and `serve: {reads: open}`), and its store made
through the store's transaction API (convoy.store.SQLiteStore, the calls
`convoy process` makes: insert_request, insert_build, insert_stage,
insert_task, update_*, add_event, requests.record_release):

  merged 76%     one build, every stage passed, 2 tasks a stage with test targets, a release
  rejected 18%   one build failed at a stage (a failing target with its logs), the later stages skipped
  cancelled 2%   ended while queued
  queued         the rest less the testing ones, oldest first
  testing 4      in the window, each in a stage, its tasks building

with the events a build writes (about 30 a request). Then `convoy serve
--listen=127.0.0.1:0` of this repository's venv starts as a subprocess (its
log in the directory), and two phases run one after the other:

  0 streams    --calls GETs of /api/status, from --threads client threads
               (each its own keep-alive connection), timed one by one;
  20 streams   the same, while --streams clients are connected to
               /api/events/stream (each a thread reading every message).

In both phases a writer appends an event every --append-every seconds
through the store's transaction API, as `convoy process` does (TASK_START
and TASK_COMPLETE of a testing request's task), so the phases differ only by
the streams. Printed: the median, p99 (nearest rank), mean and max latency
of each phase, their ratio (20 streams / 0 streams), the throughput, the
size of the status answer, and the events delivered to the stream clients
while measuring (how many, and the lag from the append's commit to the
client's read: median and max). Then the machine line (benchmarks/machine.py).

No figure is asserted. The exit status is 1 only when something is broken:
a status answer that is not 200 (or not the queue the store holds), a
stream that ends, or a stream client that missed, reordered or did not get
within 10 s an event that was appended while it was connected.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tools" / "driver"))

from machine import IDENTITY, machine  # noqa: E402  (benchmarks/machine.py)

from convoy import models, requests  # noqa: E402
from convoy.models import BuildState, Phase, RequestState, StageState, TargetOutcome, TaskState  # noqa: E402
from convoy.store import SQLiteStore  # noqa: E402

PYTHON = REPO / ".venv" / "bin" / "python"
CONFIGURATIONS = ("rover", "drone")
COMPONENTS = ("messages", "planner", "controller", "firmware")
STAGES = (("build", "build", 60.0), ("integration", "test", 90.0), ("configuration", "test", 45.0),
          ("hardware", "test", 300.0))
TESTING = 4
DELIVERY_TIMEOUT = 10.0

MANIFEST = """\
schema_version: 1
default_configuration: rover
components:
  messages:
    source: local
    path: components/messages/{version}
    version: v1.0.0
  planner:
    source: local
    path: components/planner/{version}
    version: v1.0.0
  controller:
    source: local
    path: components/controller/{version}
    version: v1.0.0
  firmware:
    source: local
    path: components/firmware/{version}
    version: v1.0.0
configurations:
  rover:
    components: [messages, planner, controller, firmware]
  drone:
    components: [messages, controller, firmware]
"""

CONFIG = """\
queue: {mode: speculative, poll_interval: 1, window: 4}
stages:
  - {name: build, command: build, timeout: 600}
  - {name: integration, command: test, tag_filter: convoy-integration, timeout: 600}
  - {name: configuration, command: test, tag_filter: convoy-configuration, timeout: 600}
  - {name: hardware, command: test, tag_filter: convoy-hardware, timeout: 900}
serve: {reads: open}
"""


# --- the checkout and its store ---------------------------------------------------------------


def git(args: List[str], cwd: Path) -> None:
    env = {**os.environ, **IDENTITY, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, timeout=60)


def make_checkout(root: Path) -> None:
    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "manifest.yaml").write_text(MANIFEST)
    (root / "convoy.yaml").write_text(CONFIG)
    git(["init", "--quiet", "--initial-branch=main"], root)
    git(["add", "--all"], root)
    git(["commit", "--quiet", "-m", "integration"], root)


def targets(stage: str, configuration: str, failing: bool, logs: str) -> tuple:
    """The test targets a task reports: a few passed (some from the cache), and one failed if `failing`."""
    labels = [f"//integration:{stage}_{n}_test" for n in range(4)] if stage != "build" else []
    found = [TargetOutcome(label, "passed", cached=n % 2 == 0, duration_ms=1200 + 100 * n)
             for n, label in enumerate(labels)]
    if failing:
        found.append(TargetOutcome(f"//integration:{stage}_{configuration}_test", "failed", duration_ms=4100,
                                   log_paths=(f"{logs}/{stage}-{configuration}/test.log",)))
    return tuple(found)


def fill(root: Path, count: int, seed: int = 12) -> Dict[str, int]:
    """`count` requests with their builds, stages, tasks, events and releases; returns counts by state."""
    rng = random.Random(seed)
    testing_at = count - TESTING
    queued_from = testing_at - max(1, count * 4 // 100)
    states: Dict[str, int] = {}
    start = time.time() - 30 * 86400
    step = (30 * 86400 - 3600) / count
    window = []
    with SQLiteStore(root / ".convoy" / "state.db") as store:
        for n in range(count):
            with store.transaction() as tx:
                created = start + n * step
                component = COMPONENTS[n % len(COMPONENTS)]
                version = f"v1.{n // 100}.{n % 100}"
                if n >= testing_at:
                    state = RequestState.TESTING
                elif n >= queued_from:
                    state = RequestState.QUEUED
                else:
                    roll = rng.random()
                    state = (RequestState.MERGED if roll < 0.78 else RequestState.REJECTED if roll < 0.98
                             else RequestState.CANCELLED)
                states[state.value] = states.get(state.value, 0) + 1
                if state in (RequestState.QUEUED, RequestState.TESTING):
                    created = time.time() - (count - n) * 60
                request = tx.insert_request(component=component, version=version, commit=f"{n:040x}",
                                            requested_by=f"ci-{component}", created_at=created, updated_at=created)
                tx.add_event(models.REQUEST_QUEUED, request_id=request.id,
                             data={"component": component, "version": version, "requested_by": request.requested_by})
                if state == RequestState.QUEUED:
                    continue
                if state == RequestState.CANCELLED:
                    tx.update_request(request.id, state=state, finished_at=created + 30, detail="cancelled")
                    tx.add_event(models.REQUEST_CANCELLED, request_id=request.id,
                                 data={"reason": "cancelled while queued"})
                    continue
                build_run(tx, request, state, created, rng, root)
                if state == RequestState.TESTING:
                    window.append({"requests": [request.id]})
        with store.transaction() as tx:  # the speculative window, as convoy.queue keeps it
            tx.set_meta("queue.chain", json.dumps({"window": 4, "items": window}))
    return states


def build_run(tx, request, state: RequestState, created: float, rng: random.Random, root: Path) -> None:
    base, candidate = f"{request.id:040x}"[::-1], f"{request.id + 7:040x}"
    tx.update_request(request.id, state=RequestState.TESTING, phase=Phase.BUILDING, base_commit=base,
                      candidate_commit=candidate)
    build = tx.insert_build(request.id, base, candidate)
    tx.add_event(models.BUILD_START, request_id=request.id, build_id=build.id,
                 data={"number": build.number, "stages": [s[0] for s in STAGES], "configurations": CONFIGURATIONS})
    fails_at = rng.randrange(len(STAGES)) if state == RequestState.REJECTED else None
    running_at = rng.randrange(len(STAGES)) if state == RequestState.TESTING else None
    at = created + 20
    logs = f".convoy/logs/request-{request.id}/build-{build.number}"
    for position, (name, command, seconds) in enumerate(STAGES):
        stage = tx.insert_stage(build.id, position, name, command)
        later = (fails_at is not None and position > fails_at) or (running_at is not None and position > running_at)
        tasks = [tx.insert_task(stage.id, build.id, c) for c in CONFIGURATIONS]
        if later:
            tx.update_stage(stage.id, state=StageState.SKIPPED if fails_at is not None else StageState.WAITING)
            for task in tasks:
                tx.update_task(task.id, state=TaskState.SKIPPED if fails_at is not None else TaskState.WAITING)
            continue
        tx.add_event(models.STAGE_START, request_id=request.id, build_id=build.id, stage_id=stage.id,
                     data={"stage": name, "configurations": CONFIGURATIONS})
        running = position == running_at
        took = seconds * rng.uniform(0.8, 1.3)
        for slot, task in enumerate(tasks):
            failing = position == fails_at and task.configuration == "rover"
            ids = {"request_id": request.id, "build_id": build.id, "stage_id": stage.id, "task_id": task.id}
            tx.add_event(models.TASK_START, data={"stage": name, "configuration": task.configuration, "slot": slot},
                         **ids)
            if running:
                tx.update_task(task.id, state=TaskState.BUILDING, slot=slot, runs=1, started_at=time.time() - 20,
                               log_path=f"{logs}/{name}-{task.configuration}.log")
                continue
            tx.update_task(task.id, state=TaskState.FAILED if failing else TaskState.SUCCEEDED, slot=slot, runs=1,
                           outcome="TESTS_FAILED" if failing else "PASSED", exit_code=3 if failing else 0,
                           log_path=f"{logs}/{name}-{task.configuration}.log", started_at=at, finished_at=at + took,
                           targets=targets(name, task.configuration, failing, logs))
            tx.add_event(models.TASK_COMPLETE, data={"stage": name, "configuration": task.configuration,
                                                     "outcome": "TESTS_FAILED" if failing else "PASSED",
                                                     "duration": took}, **ids)
            tx.add_event(models.TASK_FAIL if failing else models.TASK_SUCCESS,
                         data={"stage": name, "configuration": task.configuration}, **ids)
        if running:
            tx.update_stage(stage.id, state=StageState.BUILDING, started_at=time.time() - 20)
            continue
        failed = position == fails_at
        tx.update_stage(stage.id, state=StageState.FAILED if failed else StageState.SUCCEEDED, started_at=at,
                        finished_at=at + took)
        tx.add_event(models.STAGE_COMPLETE, request_id=request.id, build_id=build.id, stage_id=stage.id,
                     data={"stage": name, "state": "failed" if failed else "succeeded", "duration": took})
        at += took
    if state == RequestState.TESTING:
        return
    if state == RequestState.REJECTED:
        name = STAGES[fails_at][0]
        detail = f"stage {name} failed in rover: //integration:{name}_rover_test failed"
        tx.update_build(build.id, state=BuildState.FAILED, finished_at=at, detail=detail)
        tx.add_event(models.BUILD_FAIL, request_id=request.id, build_id=build.id,
                     data={"number": build.number, "reason": detail})
        tx.update_request(request.id, state=RequestState.REJECTED, phase=None, detail=detail, finished_at=at + 5)
        tx.add_event(models.REQUEST_REJECTED, request_id=request.id, data={"summary": detail})
        return
    tx.update_build(build.id, state=BuildState.SUCCEEDED, finished_at=at)
    tx.add_event(models.BUILD_SUCCESS, request_id=request.id, build_id=build.id, data={"number": build.number})
    tag = f"v2026.{1 + request.id // 100}.{request.id % 100}"
    tx.update_request(request.id, state=RequestState.MERGED, phase=Phase.TAGGED, tag=tag, finished_at=at + 10,
                      detail=f"merged to main and tagged {tag}")
    requests.record_release(tx, tx.request(request.id), build, tag=tag, commit=candidate,
                            notes=f"{request.component} {request.version}\n")


# --- the server ------------------------------------------------------------------------------


class Broken(Exception):
    """Something the benchmark needs does not work: reported, exit 1."""


def start_server(root: Path, log: Path) -> "tuple[subprocess.Popen, int]":
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CONVOY_FAILPOINT")}
    with open(log, "w") as out:
        proc = subprocess.Popen([str(PYTHON), "-m", "convoy", "serve", "--listen=127.0.0.1:0", f"--repo={root}"],
                                cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text())
        if found:
            return proc, int(found.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop_server(proc)
    raise Broken(f"convoy serve did not start: {log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


# --- the clients -----------------------------------------------------------------------------


@dataclass
class Calls:
    seconds: List[float] = field(default_factory=list)
    wrong: List[str] = field(default_factory=list)
    size: int = 0
    wall: float = 0.0


def call_status(port: int, total: int, threads: int, expect_items: int) -> Calls:
    """`total` GETs of /api/status from `threads` threads (a keep-alive connection each), timed."""
    calls, lock = Calls(), threading.Lock()
    shares = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]

    def client(share: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for _ in range(share):
                started = time.monotonic()
                conn.request("GET", "/api/status")
                response = conn.getresponse()
                body = response.read()
                took = time.monotonic() - started
                problem = None
                if response.status != 200:
                    problem = f"GET /api/status {response.status}: {body[:300]!r}"
                else:
                    items = json.loads(body)["queues"][0]["items"]
                    if len(items) != expect_items:
                        problem = f"GET /api/status listed {len(items)} items, the store has {expect_items}"
                with lock:
                    calls.seconds.append(took)
                    calls.size = len(body)
                    if problem:
                        calls.wrong.append(problem)
        except (OSError, http.client.HTTPException, ValueError) as e:
            with lock:
                calls.wrong.append(f"GET /api/status: {type(e).__name__}: {e}")
        finally:
            conn.close()

    workers = [threading.Thread(target=client, args=(share,)) for share in shares]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    calls.wall = time.monotonic() - started
    return calls


class StreamClient(threading.Thread):
    """One client of /api/events/stream after event `after`: the id of each message and when it came."""

    def __init__(self, port: int, after: int) -> None:
        super().__init__(daemon=True)
        self.port, self.after = port, after
        self.received: List[tuple] = []  # (event id, time.monotonic() when read)
        self.connected = threading.Event()
        self.problem: Optional[str] = None
        self.stopping = False
        self.conn: Optional[http.client.HTTPConnection] = None

    def run(self) -> None:
        try:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.conn.request("GET", "/api/events/stream", headers={"Last-Event-ID": str(self.after)})
            response = self.conn.getresponse()
            if response.status != 200:
                self.problem = f"GET /api/events/stream {response.status}"
                return
            self.connected.set()
            while True:
                line = response.fp.readline()
                if not line:
                    if not self.stopping:
                        self.problem = "the stream ended"
                    return
                if line.startswith(b"id: "):
                    self.received.append((int(line[4:]), time.monotonic()))
        except (OSError, http.client.HTTPException, ValueError) as e:
            if not self.stopping:
                self.problem = f"{type(e).__name__}: {e}"
        finally:
            self.connected.set()

    def stop(self) -> None:
        self.stopping = True
        if self.conn is not None and self.conn.sock is not None:
            try:
                self.conn.sock.shutdown(2)
            except OSError:
                pass
            self.conn.close()


class Writer(threading.Thread):
    """Appends an event every `every` seconds through the store's transactions, as convoy process does."""

    def __init__(self, root: Path, every: float, request_id: int) -> None:
        super().__init__(daemon=True)
        self.root, self.every, self.request_id = root, every, request_id
        self.appended: List[tuple] = []  # (event id, time.monotonic() after its commit)
        self.done = threading.Event()
        self.problem: Optional[str] = None

    def run(self) -> None:
        try:
            with SQLiteStore(self.root / ".convoy" / "state.db") as store:
                with store.read() as tx:
                    request = tx.request(self.request_id)
                    build = tx.builds(request.id)[-1]
                    stage = next(s for s in tx.stages(build.id) if s.state == StageState.BUILDING)
                    task = tx.tasks(stage_id=stage.id)[0]
                n = 0
                while not self.done.wait(self.every):
                    kind = models.TASK_START if n % 2 == 0 else models.TASK_COMPLETE
                    with store.transaction() as tx:
                        event = tx.add_event(kind, request_id=request.id, build_id=build.id, stage_id=stage.id,
                                             task_id=task.id, data={"stage": stage.name,
                                                                    "configuration": task.configuration,
                                                                    "slot": 0, "run": n // 2 + 1})
                    self.appended.append((event.id, time.monotonic()))
                    n += 1
        except Exception as e:  # reported, and the run exits 1
            self.problem = f"{type(e).__name__}: {e}"


def last_event_id(root: Path) -> int:
    with SQLiteStore(root / ".convoy" / "state.db") as store, store.read() as tx:
        return tx.last_event_id()


# --- one phase -------------------------------------------------------------------------------


@dataclass
class Measured:
    streams: int
    calls: Calls
    appended: List[tuple]
    delivered: int = 0
    lags: List[float] = field(default_factory=list)
    wrong: List[str] = field(default_factory=list)


def run_phase(root: Path, port: int, streams: int, args, testing_id: int, expect_items: int) -> Measured:
    clients = [StreamClient(port, last_event_id(root)) for _ in range(streams)]
    for client in clients:
        client.start()
    for client in clients:
        client.connected.wait(30)
    wrong = [f"stream client {i}: {c.problem}" for i, c in enumerate(clients) if c.problem]
    writer = Writer(root, args.append_every, testing_id)
    writer.start()
    calls = call_status(port, args.calls, args.threads, expect_items)
    writer.done.set()
    writer.join()
    phase = Measured(streams, calls, writer.appended, wrong=wrong + calls.wrong)
    if writer.problem:
        phase.wrong.append(f"the writer: {writer.problem}")
    wanted = [event_id for event_id, _ in writer.appended]
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while clients and time.monotonic() < deadline and any(
            len(c.received) < len(wanted) and not c.problem for c in clients):
        time.sleep(0.05)
    when = dict(writer.appended)
    for i, client in enumerate(clients):
        got = [event_id for event_id, _ in client.received]
        if client.problem:
            phase.wrong.append(f"stream client {i}: {client.problem}")
        elif got != wanted:
            missing = sorted(set(wanted) - set(got))
            phase.wrong.append(f"stream client {i} got {len(got)} events, {len(wanted)} were appended (missing: "
                               f"{missing[:5]}; in order: {got == sorted(got)}; in {DELIVERY_TIMEOUT:g} s)")
        phase.delivered += len(got)
        phase.lags += [at - when[event_id] for event_id, at in client.received if event_id in when]
        client.stop()
    for client in clients:
        client.join(10)
    return phase


# --- printing --------------------------------------------------------------------------------


def rank(values: List[float], q: float) -> float:
    """The nearest-rank q-quantile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def print_phases(phases: List[Measured], args) -> None:
    base, loaded = phases
    rows = [("median (ms)", statistics.median), ("p99 (ms)", lambda v: rank(v, 0.99)),
            ("mean (ms)", statistics.mean), ("max (ms)", max)]
    print(f"\n== GET /api/status: {args.calls} calls from {args.threads} client threads, {args.requests} requests "
          "in the store")
    print(f"   {'':<26} {'0 streams':>10} {f'{loaded.streams} streams':>11} {'ratio':>7}")
    for title, f in rows:
        a, b = f(base.calls.seconds), f(loaded.calls.seconds)
        print(f"   {title:<26} {ms(a):>10} {ms(b):>11} {b / a:>7.2f}")
    a, b = len(base.calls.seconds) / base.calls.wall, len(loaded.calls.seconds) / loaded.calls.wall
    print(f"   {'throughput (calls/s)':<26} {a:>10.1f} {b:>11.1f} {b / a:>7.2f}")
    print(f"   {'answer size (KiB)':<26} {base.calls.size / 1024:>10.1f} {loaded.calls.size / 1024:>11.1f}")
    print(f"   {'events appended':<26} {len(base.appended):>10} {len(loaded.appended):>11}")
    lags = loaded.lags
    lag = f"lag from commit to read: median {ms(statistics.median(lags))} ms, max {ms(max(lags))} ms" if lags else ""
    print(f"   events delivered to the {loaded.streams} stream clients while measuring: {loaded.delivered} "
          f"({loaded.streams} x {len(loaded.appended)} appended, one every {args.append_every:g} s); {lag}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests in the store")
    parser.add_argument("--streams", type=int, default=20, help="clients on /api/events/stream in the second phase")
    parser.add_argument("--calls", type=int, default=200, help="GET /api/status calls a phase")
    parser.add_argument("--threads", type=int, default=4, help="client threads making them")
    parser.add_argument("--append-every", type=float, default=0.1, help="seconds between appended events")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (the checkout, the log)")
    args = parser.parse_args()
    if args.requests < 2 * TESTING or args.calls < 1 or args.threads < 1 or args.streams < 1:
        parser.error(f"--requests is at least {2 * TESTING}; --calls, --threads and --streams at least 1")
    if not PYTHON.is_file():
        parser.error(f"{PYTHON} not found: run scripts/setup first")

    directory = Path(tempfile.mkdtemp(prefix="convoy-bench-serve-"))
    root, log = directory / "integration", directory / "serve.log"
    wrong: List[str] = []
    proc = None
    try:
        make_checkout(root)
        started = time.monotonic()
        states = fill(root, args.requests)
        with SQLiteStore(root / ".convoy" / "state.db") as store, store.read() as tx:
            active = tx.requests([RequestState.QUEUED, RequestState.TESTING])
            testing_id = next(r.id for r in active if r.state == RequestState.TESTING)
            builds = sum(len(tx.builds(r.id)) for r in tx.requests())
            tasks = len(tx.tasks())
            events = tx.last_event_id()
        print(f"store: {args.requests} requests ({', '.join(f'{n} {s}' for s, n in sorted(states.items()))}), "
              f"{builds} builds, {tasks} tasks, {events} events, made in {time.monotonic() - started:.1f} s; "
              f"{directory}")
        proc, port = start_server(root, log)
        warm = call_status(port, 5, 1, len(active))  # the first answers (imports, SQLite's page cache)
        wrong += warm.wrong
        phases = []
        for streams in (0, args.streams):
            phase = run_phase(root, port, streams, args, testing_id, len(active))
            phases.append(phase)
            wrong += phase.wrong
        if proc.poll() is not None:
            wrong.append(f"convoy serve exited ({proc.returncode}); see {log}")
        if not wrong:
            print_phases(phases, args)
    except Broken as e:
        wrong.append(str(e))
    finally:
        if proc is not None:
            stop_server(proc)
        if args.keep or wrong:
            print(f"kept {directory} (convoy serve's log: {log})")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    print(machine())
    for line in wrong[:20]:
        print(f"serve_status: {line}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
