"""The queue's lease (convoy.queue.lock.Lease) among several workers of one
store, without Bazel or git: the real SQLite store, real processes.

- a second worker is refused (--all) or waits on standby (--forever) while
  a live worker holds the lease, and takes it over once it expires;
- a holder on this host whose process is gone is taken over at once;
- `fence()` runs a push only while the lease is ours, and a worker that
  finds its lease taken has lost it (on_lost) and fences nothing more.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from convoy.errors import ConvoyError
from convoy.queue.lock import Lease, LeaseLost, _dead_here

OTHER = "another-host.example:4242"  # a worker on another machine (only its row is here)


def test_a_live_holder_refuses_a_second_worker_and_standby_takes_over_when_it_expires(store):
    with store.transaction() as tx:
        assert tx.acquire_lease("queue", OTHER, 1.5) is None  # a worker elsewhere, renewing no more
    second = Lease(store, "queue", ttl=5)
    with pytest.raises(ConvoyError, match=f"the queue is leased to {OTHER} \\(another worker\\)"):
        second.take()
    told, started = [], time.monotonic()
    assert second.take(standby=told.append)
    waited = time.monotonic() - started
    try:
        assert told == [f"the queue is leased to {OTHER} (another worker); this one takes it over if that one "
                        "stops renewing the lease for 5 s"]  # said once
        assert 0.5 < waited < 1.5 + 5.0, waited  # at the expiry, not before, and soon after (a loaded machine)
        with store.transaction() as tx:
            assert tx.acquire_lease("queue", OTHER, 5) == second.owner
    finally:
        second.release()
    with store.transaction() as tx:
        assert tx.acquire_lease("queue", OTHER, 5) is None  # released: free again


def test_standby_stops_when_asked(store):
    with store.transaction() as tx:
        tx.acquire_lease("queue", OTHER, 60)
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    assert Lease(store, "queue", ttl=5).take(standby=lambda holder: None, stop=stop) is False


def test_a_holder_of_this_host_whose_process_is_gone_is_taken_over_at_once(store):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = f"{Lease(store, 'queue').owner.rpartition(':')[0]}:{gone.stdout.strip()}"
    assert _dead_here(dead)
    assert not _dead_here(Lease(store, "queue").owner)  # this process: alive
    assert not _dead_here(OTHER)  # another host: only its lease's expiry says
    with store.transaction() as tx:
        tx.acquire_lease("queue", dead, 600)
    lease = Lease(store, "queue", ttl=5)
    started = time.monotonic()
    assert lease.take()
    assert time.monotonic() - started < 1.0
    lease.release()


def test_the_fence_runs_the_push_only_while_the_lease_is_ours(store):
    lost = []
    lease = Lease(store, "queue", ttl=0.9, on_lost=lost.append)
    assert lease.take()
    ran = []
    with lease.fence():
        ran.append("push")
    assert ran == ["push"] and lost == []
    lease._stop.set()  # this worker stops renewing (as if its machine froze) ...
    lease._thread.join(5)
    time.sleep(1.5)
    with store.transaction() as tx:  # ... its lease expires and another worker takes the queue
        assert tx.acquire_lease("queue", OTHER, 30) is None
    with pytest.raises(LeaseLost, match=f"held by {OTHER} now"):
        with lease.fence():
            ran.append("a push after the lease was lost")
    assert ran == ["push"]
    assert lost == [f"{OTHER} holds it now"]
    with pytest.raises(LeaseLost, match="lost the queue's lease"):
        with lease.fence():
            ran.append("again")
    lease.release()
    with store.transaction() as tx:
        assert tx.acquire_lease("queue", "a third:1", 30) == OTHER  # the loser released nothing of theirs


def test_renewal_finds_the_lease_taken_and_stops_the_worker(store):
    stopped = threading.Event()
    lease = Lease(store, "queue", ttl=0.6, on_lost=lambda why: stopped.set())
    assert lease.take()
    with store.transaction() as tx:  # another worker overwrites the row (its clock ran ahead, say)
        tx.release_lease("queue", lease.owner)
        tx.acquire_lease("queue", OTHER, 30)
    assert stopped.wait(5), "the renewal did not notice"
    assert lease.lost == f"{OTHER} holds it now"
    lease.release()


def test_convoy_workers_and_status_say_who_schedules_and_who_waits(state_checkout, convoy, capsys):
    from convoy.store import checkout_store

    with checkout_store(state_checkout) as store:
        assert convoy("workers", f"--repo={state_checkout}") == 0
        assert capsys.readouterr().out == "no worker runs this queue; start one: convoy process --forever\n"
        scheduling = Lease(store, "queue", ttl=30)
        assert scheduling.take()
        stop = threading.Event()
        standby = Lease(store, "queue", ttl=30)
        standby.owner, standby.presence = "worker-b:77", "worker worker-b:77"  # a second worker, elsewhere
        waiting = threading.Thread(target=standby.take, kwargs={"standby": lambda holder: None, "stop": stop})
        waiting.start()
        try:
            time.sleep(0.5)
            with store.transaction() as tx:
                tx.acquire_lease("worker gone-worker:5", "gone-worker:5", 0.01)  # killed: never renewed
            time.sleep(0.1)
            assert convoy("workers", f"--repo={state_checkout}", "--json") == 0
            found = json.loads(capsys.readouterr().out)
            me, _, pid = scheduling.owner.rpartition(":")
            assert found["scheduler"] == scheduling.owner and found["lease_ttl"] == 30
            roles = {(w["worker"], w["pid"]): (w["role"], w["holds"]) for w in found["workers"]}
            assert roles == {(me, int(pid)): ("scheduling", ["queue"]), ("worker-b", 77): ("standby", []),
                             ("gone-worker", 5): ("gone", [])}
            assert all(0 <= w["heartbeat_seconds_ago"] < 5 for w in found["workers"] if w["role"] != "gone")
            assert convoy("workers", f"--repo={state_checkout}") == 0
            table = capsys.readouterr().out.splitlines()
            assert table[0].split() == ["WORKER", "PID", "ROLE", "HOLDS", "HEARTBEAT", "LEASE"]
            assert any(line.split()[:4] == [me, pid, "scheduling", "queue"] for line in table[1:])
            assert any("gone" in line and "expired" in line for line in table[1:])
        finally:
            stop.set()
            waiting.join(5)
            scheduling.release()
        assert convoy("workers", f"--repo={state_checkout}", "--json") == 0
        after = json.loads(capsys.readouterr().out)
        assert after["scheduler"] is None and all(w["worker"] != me for w in after["workers"])


def test_a_takeover_fetches_a_candidate_that_spare_workers_were_given(tmp_path):
    """A worker that takes the queue over resumes a build whose candidate is
    not in its clone when the remote has it under refs/convoy/candidates
    (convoy.spares pushed it there); without that ref it is made again."""
    from types import SimpleNamespace

    from convoy.queue.window_record import ChainRecord
    from convoy.spares import REF

    def git(*args, cwd):
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()

    origin, a, b = tmp_path / "origin.git", tmp_path / "a", tmp_path / "b"
    git("init", "-q", "--bare", "--initial-branch=main", str(origin), cwd=tmp_path)
    git("clone", "-q", str(origin), str(a), cwd=tmp_path)
    (a / "f").write_text("one\n")
    git("add", "f", cwd=a)
    git("commit", "-q", "-m", "one", cwd=a)
    git("push", "-q", "origin", "HEAD:main", cwd=a)
    git("clone", "-q", str(origin), str(b), cwd=tmp_path)
    (a / "f").write_text("candidate\n")
    git("commit", "-q", "-am", "a candidate", cwd=a)
    candidate = git("rev-parse", "HEAD", cwd=a)
    (a / "f").write_text("another\n")
    git("commit", "-q", "-am", "a candidate never given to spares", cwd=a)
    unshared = git("rev-parse", "HEAD", cwd=a)
    git("push", "-q", "origin", f"{candidate}:{REF.format(commit=candidate)}", cwd=a)
    window = SimpleNamespace(ctx=SimpleNamespace(checkout=b, config=SimpleNamespace(remote="origin")))
    record = ChainRecord(window)  # only its git is used here: the clone and the remote's name
    assert record._here(candidate)  # fetched from refs/convoy/candidates
    assert git("cat-file", "-t", candidate, cwd=b) == "commit"
    assert not record._here(unshared)  # only in clone a: made again (ChainRecord._made_elsewhere)
