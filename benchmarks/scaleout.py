"""Claim latency and queue throughput with 1, 2 and 4 workers on one queue,
SQLite against PostgreSQL, side by side (issue 24).

    .venv/bin/python benchmarks/scaleout.py                       # 200 requests, workers 1,2,4, both stores
    .venv/bin/python benchmarks/scaleout.py --requests=40 --workers=1,2 --stores=postgresql

Bazel is NOT run: each worker is `convoy process --forever` (the real
command, in a process of its own, on its own clone) with convoy.bazel's
run_bazel replaced by benchmarks/driver_overhead.py's stand-in, which says
so in each task's detail and passes at once. git IS run, for real, on local
repositories. The synthetic integration repository is driver_overhead's
(300 components from one shared git repository, two configurations), one
request per component (a second queued request of a component would
supersede the first), queue mode speculative, window 4, stages build and
integration, `queue.spare_workers` when there is more than one worker.

For each store and worker count: the queue is paused, every request is
submitted, the workers start (the first takes the lease; the others are
spares), and once every worker is up the queue is resumed; the run ends
when every request is final. Figures: throughput (requests merged
per minute of wall time, from the workers' start to the last final
request); claim latency (from a task being offered to a spare until a spare
claims it, seen by this process polling the store every 10 ms, so good to
about 20 ms; "-" with one worker: nothing is offered); how many tasks spares
ran, and how many were offered and taken back. The store is a shared SQLite
file (`sqlite:///...`: every clone on this machine) or a private PostgreSQL
cluster (Debian's binaries, as the tests start one).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "driver"))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import machine  # noqa: E402  (benchmarks/machine.py)

import driver_overhead as bench  # noqa: E402  (the synthetic world and the Bazel stand-in)

from convoy.models import RequestState, TaskState  # noqa: E402
from convoy.store import open_store  # noqa: E402

COMPONENTS = 300
WORKER = """
import sys
sys.path.insert(0, {driver!r})
sys.path.insert(0, {benchmarks!r})
import driver_overhead
from convoy import bazel
bazel.run_bazel = driver_overhead.passing_bazel  # the stand-in: Bazel is not run
from convoy.main import main
sys.exit(main(["convoy", "process", "--forever", "--repo=" + sys.argv[1]]))
"""
CONFIG = """\
queue: {{mode: speculative, window: 4, poll_interval: 0.05, lease_ttl: 30, spare_workers: {spares}}}
parallelism: 2
retries: {{infrastructure: 1}}
stages:
  - {{name: build, command: build, timeout: 300}}
  - {{name: integration, command: test, tag_filter: convoy-integration, timeout: 300}}
plugins: []
"""


@dataclass
class Run:
    store: str
    workers: int
    requests: int
    seconds: float = 0.0
    merged: int = 0
    claims: list[float] = field(default_factory=list)
    spare_tasks: int = 0
    taken_back: int = 0

    def per_minute(self) -> float:
        return 60.0 * self.merged / self.seconds if self.seconds else 0.0


def start_postgres(directory: Path):
    sys.path.insert(0, str(REPO))
    from tests.support.postgres import pg_server

    return pg_server()


def run_one(store_kind: str, workers: int, requests: int, root: Path, pg) -> Run:
    plan = bench.bump_plan(COMPONENTS, requests)
    world = bench.make_world(root, COMPONENTS, plan)
    clones = [world.checkout]
    for n in range(1, workers):
        clone = root / f"clone-{n}"
        subprocess.run(["git", "clone", "-q", str(root / "origin.git"), str(clone)], check=True)
        clones.append(clone)
    for clone in clones:
        (clone / "convoy.yaml").write_text(CONFIG.format(spares="true" if workers > 1 else "false"))
    url = f"sqlite://{root / 'shared.db'}" if store_kind == "sqlite" else pg.new_database()
    env = {**os.environ, "CONVOY_STORE_URL": url}
    os.environ["CONVOY_STORE_URL"] = url
    bench.convoy(world.checkout, "pause", "--reason=the benchmark submits first")
    for component, version in plan:
        bench.convoy(world.checkout, "submit", f"--component={component}", f"--version={version}",
                     "--requested_by=bench")
    script = root / "worker.py"
    script.write_text(WORKER.format(driver=str(REPO / "tools" / "driver"), benchmarks=str(REPO / "benchmarks")))
    run = Run(store_kind, workers, requests)
    procs = []
    offered: dict[int, float] = {}
    claimed: set[int] = set()
    logs = []
    try:
        for n, clone in enumerate(clones):
            log = open(root / f"worker-{n}.log", "w")
            logs.append(log)
            procs.append(subprocess.Popen([sys.executable, str(script), str(clone)], cwd=clone, stdout=log,
                                          stderr=subprocess.STDOUT, env={**env, "CONVOY_WORKER": f"bench-{n}"}))
            if n == 0:
                time.sleep(1.0)  # the first takes the lease
        with open_store(url, create=False, readonly=True) as store:
            while True:  # every worker is up (its presence row) before the queue goes
                with store.read() as tx:
                    present = [lease for lease in tx.leases() if lease.name.startswith("worker ")]
                if len(present) >= workers:
                    break
                if any(proc.poll() is not None for proc in procs):
                    raise SystemExit(f"a worker exited:\n{(root / 'worker-0.log').read_text()[-3000:]}")
                time.sleep(0.05)
            bench.convoy(world.checkout, "resume")
            started = time.monotonic()
            deadline = time.monotonic() + 3600
            while time.monotonic() < deadline:
                with store.read() as tx:
                    states = [r.state for r in tx.requests()]
                    live = tx.tasks(states=[TaskState.OFFERED, TaskState.SCHEDULED]) if workers > 1 else []
                t = time.monotonic()
                for task in live:
                    if task.state == TaskState.OFFERED:
                        offered.setdefault(task.id, t)
                    elif task.id in offered and task.id not in claimed:
                        claimed.add(task.id)
                        run.claims.append(t - offered[task.id])
                if all(s not in (RequestState.QUEUED, RequestState.TESTING) for s in states):
                    break
                time.sleep(0.01)
            run.seconds = time.monotonic() - started
            with store.read() as tx:
                run.merged = sum(1 for r in tx.requests() if r.state == RequestState.MERGED)
                tasks = [t for r in tx.requests() for b in tx.builds(r.id) for t in tx.tasks(build_id=b.id)]
        run.spare_tasks = sum(1 for t in tasks if t.log_path and not t.log_path.startswith(str(world.checkout)))
        run.taken_back = len(set(offered) - claimed)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()
        os.environ.pop("CONVOY_STORE_URL", None)
    if run.merged != requests:
        tail = (root / "worker-0.log").read_text()[-3000:]
        raise SystemExit(f"{store_kind}, {workers} workers: {run.merged} of {requests} merged\n{tail}")
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--stores", default="sqlite,postgresql")
    opts = parser.parse_args()
    counts = [int(n) for n in opts.workers.split(",")]
    stores = opts.stores.split(",")
    print("convoy scale-out: claim latency and throughput (benchmarks/scaleout.py)")
    print(machine())
    print("Bazel is NOT run: every worker's run_bazel is benchmarks/driver_overhead.py's stand-in (passes at once);")
    print(f"git IS run. {opts.requests} requests, {COMPONENTS} components, speculative window 4, stages build + "
          "integration, 2 configurations; spare_workers with more than one worker.")
    results: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="convoy-bench-scaleout-") as tmp:
        pg_context = start_postgres(Path(tmp)) if "postgresql" in stores else None
        pg = pg_context.__enter__() if pg_context is not None else None
        try:
            for store_kind in stores:
                for workers in counts:
                    root = Path(tmp) / f"{store_kind}-{workers}"
                    root.mkdir()
                    print(f"... {store_kind}, {workers} worker(s)", flush=True)
                    results.append(run_one(store_kind, workers, opts.requests, root, pg))
                    shutil.rmtree(root, ignore_errors=True)
        finally:
            if pg_context is not None:
                pg_context.__exit__(None, None, None)
    print()
    print(f"{'store':12}{'workers':>8}{'merged':>8}{'seconds':>9}{'per min':>9}{'claim median':>14}{'claim p90':>11}"
          f"{'spare tasks':>13}{'taken back':>12}")
    for r in results:
        median = f"{1000 * statistics.median(r.claims):.0f} ms" if r.claims else "-"
        p90 = f"{1000 * sorted(r.claims)[int(0.9 * (len(r.claims) - 1))]:.0f} ms" if r.claims else "-"
        print(f"{r.store:12}{r.workers:>8}{r.merged:>8}{r.seconds:>9.1f}{r.per_minute():>9.1f}{median:>14}{p90:>11}"
              f"{r.spare_tasks:>13}{r.taken_back:>12}")
    for store_kind in stores:
        base = next((r for r in results if r.store == store_kind and r.workers == counts[0]), None)
        for r in results:
            if r.store == store_kind and base is not None and r is not base:
                print(f"{store_kind}: {r.workers} workers / {base.workers}: throughput "
                      f"{r.per_minute() / base.per_minute():.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
