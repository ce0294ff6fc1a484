"""Several workers, one queue in a real PostgreSQL: a dead worker's queue
is taken over, and nothing is lost or done twice. Real git, the real Bazel,
`convoy process --forever` as real processes on two clones of one
integration repository, both with CONVOY_STORE_URL naming one database.

Each worker is named (CONVOY_WORKER), as two machines would be, so that a
dead one is noticed only by its lease expiring (queue.lease_ttl: 3 s here),
never by its pid. The campaign keeps two workers running: each is started
with a failpoint (convoy.failpoints) that kills it with SIGKILL when it
reaches that phase (candidate made, a task building, about to push, pushed,
tagged), and a dead worker is started again at once with the next
failpoint, as standby. After 20 kills the workers run without failpoints
until every request is final. Then: every request merged, each with one
commit on main built on the one before, and exactly one release tag; the
survivor took the queue over within lease_ttl + 10 s of each kill.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest

from convoy.models import RequestState, TaskState
from convoy.store import open_store

from tests.support.integration import CONVOY, Integration, config_text
from tests.support.window import assert_green, held_stage, tip, wait_for

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

LEASE_TTL = 3.0
KILLS = 20
FAILPOINTS = ("after_candidate", "task_running", "before_push", "after_push", "after_tag")
PHASES = {"after_candidate": "candidate", "task_running": "building", "before_push": "merging",
          "after_push": "pushed", "after_tag": "tag made, not pushed"}
BUMPS = ([("messages", f"v1.5.{p}") for p in range(1, 6)] + [("planner", f"v2.2.{p}") for p in range(1, 6)])


class Worker:
    """One `convoy process --forever` on one clone, its output in a file."""

    def __init__(self, name: str, checkout: Path, url: str, logs: Path) -> None:
        self.name, self.checkout, self.url, self.logs = name, checkout, url, logs
        self.proc: Optional[subprocess.Popen] = None
        self.failpoint: Optional[str] = None
        self.starts = 0

    def start(self, failpoint: Optional[str], env: Optional[dict] = None) -> None:
        self.starts += 1
        self.failpoint = failpoint
        env = {k: v for k, v in (env or os.environ).items() if k != "CONVOY_FAILPOINT"}
        env.update(CONVOY_STORE_URL=self.url, CONVOY_WORKER=self.name)
        if failpoint:
            env["CONVOY_FAILPOINT"] = failpoint
        out = open(self.logs / f"{self.name}-{self.starts}.log", "w")
        self.proc = subprocess.Popen([str(CONVOY), "process", "--forever"], cwd=self.checkout, env=env,
                                     stdout=out, stderr=subprocess.STDOUT, text=True)
        out.close()

    def output(self) -> str:
        return "".join(p.read_text() for p in sorted(self.logs.glob(f"{self.name}-*.log")))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def holder(url: str) -> Optional[str]:
    """The worker name holding the queue's lease now (None: nobody's, or expired)."""
    with open_store(url, create=False, readonly=True) as store, store.read() as tx:
        lease = next((lease for lease in tx.leases() if lease.name == "queue"), None)
    if lease is None or lease.expires_at < time.time():
        return None
    return lease.owner.rpartition(":")[0]


@pytest.fixture(scope="module")
def pair(make_integration, pg_server, tmp_path_factory):
    """Two clones of one integration repository sharing one PostgreSQL database."""
    config = config_text().replace("queue: {mode: serial, poll_interval: 0.1}\n",
                                   f"queue: {{mode: serial, poll_interval: 0.1, lease_ttl: {LEASE_TTL:g}}}\n")
    config = config.replace("parallelism: 2\n", "parallelism: 1\n")
    it = make_integration("failover", config=config)
    (it.checkout / "convoy.yaml").write_text(config)
    second = tmp_path_factory.mktemp("failover-b") / "checkout"
    subprocess.run(["git", "clone", "-q", str(it.bare), str(second)], check=True)
    (second / "convoy.yaml").write_text(config)
    shutil.copyfile(it.checkout / ".bazelrc.local", second / ".bazelrc.local")  # this machine's offline Bazel
    url = pg_server.new_database()
    return it, second, url


def test_kill_9_of_the_scheduling_worker_at_every_phase_loses_nothing_and_doubles_nothing(pair, tmp_path,
                                                                                       monkeypatch):
    it, second, url = pair
    monkeypatch.setenv("CONVOY_STORE_URL", url)  # `convoy submit` in this process: the shared store
    since = tip(it)
    bumps = iter(BUMPS)
    ids = [it.submit(f"--component={c}", f"--version={v}") for c, v in [next(bumps)]]  # one at a time: a
    # second request for one component would supersede the first
    schedule = itertools.cycle(FAILPOINTS)
    workers = [Worker("worker-a", it.checkout, url, tmp_path), Worker("worker-b", second, url, tmp_path)]
    workers[0].start(next(schedule))
    time.sleep(1.0)  # worker-a takes the lease first
    workers[1].start(next(schedule))
    kills: list[tuple[str, str, float]] = []  # (worker, phase, seconds until the other took over)
    deadline = time.monotonic() + 900
    try:
        while True:
            assert time.monotonic() < deadline, (kills, [w.output()[-3000:] for w in workers])
            for worker in workers:
                code = worker.proc.poll()
                if code is None:
                    continue
                assert code == -signal.SIGKILL, (worker.name, code, worker.output()[-4000:])
                died = time.monotonic()
                other = next(w for w in workers if w is not worker)
                while holder(url) != other.name:  # the survivor takes the queue over
                    assert time.monotonic() - died < LEASE_TTL + 10, (worker.name, worker.failpoint,
                                                                     other.output()[-3000:])
                    if other.proc.poll() is not None:
                        break  # it died too (its own failpoint): its restart takes over
                    time.sleep(0.1)
                kills.append((worker.name, PHASES[worker.failpoint], time.monotonic() - died))
                armed = sum(1 for w in workers if w is not worker and w.failpoint and w.proc.poll() is None)
                worker.start(next(schedule) if len(kills) + armed < KILLS else None)
            with open_store(url, create=False, readonly=True) as store, store.read() as tx:
                done = all(tx.request(i).state != RequestState.QUEUED and tx.request(i).state
                           != RequestState.TESTING for i in ids)
            if done and len(kills) >= KILLS:
                break
            if done and len(ids) < len(BUMPS):
                component, version = next(bumps)
                ids.append(it.submit(f"--component={component}", f"--version={version}"))
                continue
            if done:  # every request final before enough kills: more requests, for more kills
                with open_store(url, create=False, readonly=True) as store, store.read() as tx:
                    states = {i: (tx.request(i).state.value, tx.request(i).detail) for i in ids}
                pytest.fail(f"only {len(kills)} kills before the queue was empty: {kills}; {states}; "
                            + "\n".join(w.output()[-3000:] for w in workers))
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.stop()
    print(f"\nkills: {len(kills)}; by phase: "
          + ", ".join(f"{phase} {sum(1 for k in kills if k[1] == phase)}" for phase in PHASES.values())
          + f"; takeover seconds max {max(k[2] for k in kills):.1f}")
    with open_store(url, create=False, readonly=True) as store, store.read() as tx:
        states = {i: tx.request(i).state for i in ids}
        tagged = [e for e in tx.events() if e.type == "RELEASE_TAGGED"]
    lost = [i for i, s in states.items() if s != RequestState.MERGED]
    doubled = sorted(i for i in ids if sum(1 for e in tagged if e.request_id == i) != 1)
    print(f"requests {len(ids)}: lost {len(lost)}, doubled {len(doubled)}")
    assert lost == [] and doubled == [], (states, [w.output()[-4000:] for w in workers])
    assert_green(it, since, [[i] for i in ids])  # one commit each, built on the one before, one tag each


def test_the_database_stopped_during_a_build_then_started_the_request_completes_once(pair, pg_server, tmp_path,
                                                                                    monkeypatch):
    """A partition: PostgreSQL stops while the integration stage runs (held
    by a `bazel` wrapper), for longer than the lease; the held tests are
    let go while it is down, so the build ends with nothing to write to.
    Both workers go back to standby, neither exits nor pushes; once the
    server is back one takes the queue, resumes the request, and it merges
    with one commit and one tag."""
    it, second, url = pair
    monkeypatch.setenv("CONVOY_STORE_URL", url)
    since = tip(it)
    request = it.submit("--component=controller", "--version=v1.2.1")
    env, hold = held_stage(tmp_path, "convoy-integration")
    workers = [Worker("worker-a", it.checkout, url, tmp_path), Worker("worker-b", second, url, tmp_path)]
    for worker in workers:
        worker.start(None, env=env)
        time.sleep(1.0)
    try:
        wait_for(lambda: _stage_running(url, request, "integration"), "the integration stage", timeout=300)
        shown = it.convoy("status", "--json")
        row = next(r for r in json.loads(shown.out) if r["id"] == request)
        assert row["worker"].split(":")[0] in ("worker-a", "worker-b"), row  # who schedules it
        assert "scheduled by worker-" in it.convoy("status").out
        listed = json.loads(it.convoy("workers", "--json").out)
        live = sorted(w["role"] for w in listed["workers"] if w["role"] != "gone")  # the campaign's dead are gone
        assert live == ["scheduling", "standby"], listed
        assert pg_server.cluster.stop()
        stopped = time.monotonic()
        time.sleep(LEASE_TTL + 2)  # the lease cannot be renewed: whoever held it has lost it
        hold.unlink()  # the held tests end now, with no store to record them in
        time.sleep(3)
        assert all(w.proc.poll() is None for w in workers), [w.output()[-3000:] for w in workers]
        before = it.origin("rev-parse", "main")
        pg_server.cluster.start()
        print(f"\nPostgreSQL was down {time.monotonic() - stopped:.1f} s")
        assert before == since  # nothing was pushed while the store was away
        wait_for(lambda: it.request(request).state not in (RequestState.QUEUED, RequestState.TESTING),
                 "the request to end", timeout=300)
        assert all(w.proc.poll() is None for w in workers), [w.output()[-3000:] for w in workers]
    finally:
        if hold.exists():
            hold.unlink()
        if not pg_server.cluster.running():
            pg_server.cluster.start()
        codes = [w.stop() for w in workers]
    outputs = "\n".join(w.output() for w in workers)
    assert it.request(request).state == RequestState.MERGED, outputs[-6000:]
    assert "back to standby" in outputs, outputs[-6000:]
    assert_green(it, since, [[request]])
    assert codes == [0, 0], outputs[-6000:]


def _stage_running(url: str, request_id: int, stage: str) -> bool:
    with open_store(url, create=False, readonly=True) as store, store.read() as tx:
        builds = tx.builds(request_id)
        return bool(builds) and any(s.name == stage and s.state.value == "building" for s in tx.stages(builds[-1].id))


def test_a_spare_worker_builds_one_candidate_of_a_speculative_window_while_the_scheduler_builds_another(
        pair, tmp_path, monkeypatch):
    """queue.spare_workers: the worker on standby claims a task the
    scheduling worker offers and runs it in its own clone; with the
    integration stage held on both, a task of one candidate runs in one
    clone while a task of the other candidate runs in the other."""
    it, second, url = pair
    monkeypatch.setenv("CONVOY_STORE_URL", url)
    for checkout in (it.checkout, second):
        text = (checkout / "convoy.yaml").read_text()
        text = text.replace(f"queue: {{mode: serial, poll_interval: 0.1, lease_ttl: {LEASE_TTL:g}}}\n",
                            f"queue: {{mode: speculative, window: 2, poll_interval: 0.1, lease_ttl: {LEASE_TTL:g}, "
                            "spare_workers: true}\n")
        assert "spare_workers: true" in text
        (checkout / "convoy.yaml").write_text(text)
    since = tip(it)
    ids = [it.submit("--component=messages", "--version=v1.5.5"), it.submit("--component=planner", "--version=v2.2.1")]
    env, hold = held_stage(tmp_path, "convoy-integration")
    workers = [Worker("worker-a", it.checkout, url, tmp_path), Worker("worker-b", second, url, tmp_path)]
    workers[0].start(None, env=env)
    time.sleep(1.5)  # worker-a schedules; worker-b is the spare
    workers[1].start(None, env=env)
    seen: dict[str, set] = {}
    try:
        def both_clones_building() -> bool:
            with open_store(url, create=False, readonly=True) as store, store.read() as tx:
                building = [(t.build_id, t.log_path) for r in ids for b in tx.builds(r)
                            for t in tx.tasks(build_id=b.id, states=[TaskState.BUILDING])]
            seen.clear()
            for build_id, log_path in building:
                clone = "a" if log_path.startswith(str(it.checkout)) else "b" if log_path.startswith(str(second)) else "?"
                seen.setdefault(clone, set()).add(build_id)
            return bool(seen.get("a")) and bool(seen.get("b")) and seen["a"] != seen["b"]

        wait_for(both_clones_building, "a task in each clone, of two candidates", timeout=300)
        hold.unlink()
        wait_for(lambda: all(it.request(i).state == RequestState.MERGED for i in ids), "both merged", timeout=300)
    finally:
        if hold.exists():
            hold.unlink()
        codes = [w.stop() for w in workers]
    outputs = "\n".join(w.output() for w in workers)
    assert "spare: task integration/" in workers[1].output(), outputs[-6000:]
    assert_green(it, since, [[ids[0]], [ids[1]]])
    assert codes == [0, 0], outputs[-6000:]
