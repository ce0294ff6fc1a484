"""Who may process a queue: the process lock on this host and the lease in the store.

    with ProcessLock(checkout):                  # one `convoy process` per checkout (flock)
        lease = Lease(store, "queue", ttl=30, on_lost=stop.set)
        lease.take(standby=say)                  # the store's row; renewed in a thread until release()
        with lease.fence():                      # a push or a tag: only while the lease is ours
            git push ...
        lease.release()

The flock keeps two drivers of one checkout apart. The lease row keeps
the workers of one shared store apart (several clones, on one host or
several: `store:` in convoy.yaml): one holds it and schedules the queue;
`take(standby=...)` waits while another live worker holds it and takes it
over when that worker stops renewing it (it died, or lost the database)
and the lease expires, after `ttl` seconds. A holder on this host whose
process is gone is taken over at once. A holder that cannot renew for
`ttl` seconds, or finds the lease taken, has lost it: `on_lost` (the
queue's stop) is called, and every push and tag is fenced: `fence()` is a
write transaction that renews the lease (refused if another holds it) and
holds the store's write lock while the push runs, so no worker takes the
lease over between the check and the push.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from convoy.errors import ConvoyError, StoreUnavailable
from convoy.models import WORKER_PREFIX
from convoy.store import Store, state_dir
from convoy.untrusted import printable

LOCK_NAME = "process.lock"
LEASE_TTL = 30.0  # seconds; queue.lease_ttl of convoy.yaml
WORKER_ENV = "CONVOY_WORKER"
IDLE_SECONDS = 0.1  # how often a worker on standby looks for a task offered to spares (convoy.queue.spare)


class ProcessLock:
    """The exclusive right to process this checkout's queue (flock)."""

    def __init__(self, checkout: Path) -> None:
        self.path = state_dir(checkout) / LOCK_NAME
        self.fd: Optional[int] = None

    def __enter__(self) -> "ProcessLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise ConvoyError(
                f"cannot open convoy's process lock {self.path} ({e.strerror}); it must be a writable file: "
                "remove or fix it, then run convoy process again"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConvoyError(
                f"another convoy process is already processing this queue (pid {holder}, lock {self.path}); "
                "wait for it to finish, or stop it"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:
            os.close(fd)
            raise ConvoyError(
                f"cannot write convoy's process lock {self.path} ({e.strerror}); free space on its disk "
                "or make .convoy writable, then run convoy process again"
            ) from None
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
            self.fd = None


class LeaseLost(ConvoyError):
    """This worker no longer holds the queue's lease: it must not push, tag or start anything."""


class Lease:
    """The store's lease on one queue, held by `host:pid` and renewed in a
    thread every third of its time to live (see the module docstring)."""

    def __init__(self, store: Store, name: str, ttl: float = LEASE_TTL,
                 on_lost: Optional[Callable[[str], None]] = None) -> None:
        self.store = store
        self.name = name
        self.ttl = ttl
        self.owner = f"{worker_name()}:{os.getpid()}"
        self.on_lost = on_lost
        self.presence = f"{WORKER_PREFIX}{self.owner}"  # this worker's own row, renewed too: `convoy workers`
        self.lost: Optional[str] = None  # why it was lost (then nothing more is pushed or tagged)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._renewed = time.monotonic()

    def take(self, standby: Optional[Callable[[str], None]] = None,
             stop: Optional[threading.Event] = None, idle: Optional[Callable[[], bool]] = None) -> bool:
        """Takes the lease and starts renewing it; True once held. Held by
        another live worker: ConvoyError, or with `standby` (called with a
        line each time what it waits for changes: that worker, or a store
        that cannot be reached) waits until it can take it over; False if
        `stop` is set meanwhile. `idle()`, between looks at the lease, does a
        spare worker's work (convoy.queue.spare): True if it did some (then
        it looks again at once)."""
        told = None
        while True:
            try:
                holder = self._try_take()
                line = (f"the queue is leased to {holder} (another worker); this one takes it over if that one "
                        f"stops renewing the lease for {self.ttl:g} s")
            except StoreUnavailable as e:
                if standby is None:
                    raise
                holder, line = "", f"the store cannot be reached ({' '.join(str(e).split())}); waiting for it"
            if holder is None:
                break
            if standby is None:
                raise ConvoyError(
                    f"the queue is leased to {holder} (another worker); wait for it, or for the lease to expire "
                    f"(in at most {self.ttl:g} s after it stops renewing it)"
                )
            if holder != told:
                standby(line)
                told = holder
            if self._idle_until(time.monotonic() + min(1.0, self.ttl / 3), idle, stop or self._stop):
                return False
        self.lost = None
        self._renewed = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew, name="lease", daemon=True)
        self._thread.start()
        return True

    @staticmethod
    def _idle_until(deadline: float, idle: Optional[Callable[[], bool]], stop: threading.Event) -> bool:
        """Waits until `deadline`, doing a spare's work every IDLE_SECONDS meanwhile; True if stopped."""
        while True:
            if idle is not None and idle():
                return stop.is_set()  # a task ran: look at the lease again now
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return stop.is_set()
            if stop.wait(min(remaining, IDLE_SECONDS) if idle is not None else remaining):
                return True

    def _try_take(self) -> Optional[str]:
        with self.store.transaction() as tx:
            tx.acquire_lease(self.presence, self.owner, self.ttl)  # a standby worker is seen too
            holder = tx.acquire_lease(self.name, self.owner, self.ttl)
            if holder is not None and _dead_here(holder):  # its process on this host is gone
                tx.release_lease(self.name, holder)
                holder = tx.acquire_lease(self.name, self.owner, self.ttl)
        return holder

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            with self.store.transaction() as tx:
                if self.lost is None:
                    tx.release_lease(self.name, self.owner)
                tx.release_lease(self.presence, self.owner)
        except StoreUnavailable:
            pass  # the rows expire by themselves

    @contextlib.contextmanager
    def fence(self) -> Iterator[None]:
        """The block (a push, a tag) runs only while the lease is ours, and
        no one can take it over until the block ends: a write transaction
        that renews it (LeaseLost if another worker holds it now)."""
        if self.lost is not None:
            raise LeaseLost(f"not pushing: this worker lost the queue's lease ({self.lost}); "
                            "the worker that holds it now resumes the request")
        with self.store.transaction() as tx:
            holder = tx.acquire_lease(self.name, self.owner, self.ttl)
            if holder is not None:
                self._lose(f"{holder} holds it now")
                raise LeaseLost(f"not pushing: the queue's lease is held by {holder} now; "
                                "that worker resumes the request")
            self._renewed = time.monotonic()
            yield

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                with self.store.transaction() as tx:
                    tx.acquire_lease(self.presence, self.owner, self.ttl)
                    holder = tx.acquire_lease(self.name, self.owner, self.ttl)
            except Exception as e:  # the database is away: the next renewal tries again, until the lease is gone
                if time.monotonic() - self._renewed >= self.ttl:
                    self._lose(f"not renewed for {self.ttl:g} s: {str(e).splitlines()[0] if str(e) else e!r}")
                    return
                continue
            if holder is not None:
                self._lose(f"{holder} holds it now")
                return
            self._renewed = time.monotonic()

    def _lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = why
            if self.on_lost is not None:
                self.on_lost(why)


def worker_name() -> str:
    """This worker's name in the lease and in `convoy workers`: CONVOY_WORKER
    (containers that share a host name), else the host's name."""
    name = " ".join(os.environ.get(WORKER_ENV, "").split())
    return printable(name) if name else socket.gethostname()


def _dead_here(holder: str) -> bool:
    """Whether `holder` ("<worker>:<pid>") is a process of this worker's host that is gone."""
    host, _, pid = holder.rpartition(":")
    if host != worker_name() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's): alive
        return False
    return False
