"""Who may process a queue: the process lock on this host and the lease in the store.

    with ProcessLock(checkout):                  # one `convoy process` per checkout (flock)
        lease = Lease(store, "queue")
        lease.take()                             # the store's row; renewed in a thread until release()
        ...
        lease.release()

The flock is what keeps two drivers on one host apart. The lease row is the
seam for several hosts sharing one store: a lease held by another machine
refuses this driver; one held by this host, while we hold the flock, was
left by a driver that died, and is taken over.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
from pathlib import Path
from typing import Optional

from convoy.errors import ConvoyError
from convoy.store import Store, state_dir

LOCK_NAME = "process.lock"
LEASE_TTL = 120.0


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


class Lease:
    """The store's lease on one queue, held by `host:pid` and renewed in a
    thread every third of its time to live."""

    def __init__(self, store: Store, name: str, ttl: float = LEASE_TTL) -> None:
        self.store = store
        self.name = name
        self.ttl = ttl
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def take(self) -> None:
        """Takes the lease (ConvoyError if another machine holds it) and starts renewing it."""
        with self.store.transaction() as tx:
            holder = tx.acquire_lease(self.name, self.owner, self.ttl)
            if holder is not None and holder.split(":")[0] != socket.gethostname():
                raise ConvoyError(
                    f"the queue is leased to {holder} (another machine); wait for it, or for the lease to expire"
                )
            if holder is not None:  # this host, and we hold the flock: its owner is dead
                tx.release_lease(self.name, holder)
                tx.acquire_lease(self.name, self.owner, self.ttl)
        self._thread = threading.Thread(target=self._renew, name="lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        with self.store.transaction() as tx:
            tx.release_lease(self.name, self.owner)

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                with self.store.transaction() as tx:
                    tx.acquire_lease(self.name, self.owner, self.ttl)
            except Exception:  # the next renewal tries again
                pass
