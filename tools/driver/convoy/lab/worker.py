"""convoy's lab worker: a bot of the Remote Workers API that runs actions, one at a time.

    PYTHONPATH=tools/driver .venv-lab/bin/python -m convoy.lab.worker \\
        --server=127.0.0.1:50051 --instance=convoy --pool=rover-rigs --worker=rover-rigs-1 \\
        --rig=127.0.0.1:40123 --state_dir=.convoy/lab

A rig worker (--rig given) serves one hardware rig of a pool: it registers with
BuildGrid's BotsService with the platform properties Pool=<pool> and
Rig=<name> on its primary device, checks the rig (a `hello` on its port)
before it asks for work and reports itself UNHEALTHY (so the scheduler gives
it nothing) while the rig does not answer or the lab's health.json says it
is bad or in maintenance (convoy.lab.rig_health: drained). A lease whose
action avoids this rig (CONVOY_AVOID_RIGS, a retry on another rig) is given
back, and for AVOID_REST_SECONDS the worker reports UNHEALTHY, so that the
scheduler (which offers a bot a new job in the very call that gives one
back) hands the job to another rig of the pool. A general worker (no --rig) serves
the default pool and runs the build and non-hardware test actions.

This module is the bot session loop (`Worker`) and the process's entry point.
For each lease it starts a `Run` (convoy.lab.worker_run): the Action and
Command from the CAS, the input root in a fresh directory, the command run
(through guard.py, in its own process group) with the Command's environment
plus CONVOY_RIG_ADDRESS=<rig>, killed at the Action's timeout, its outputs
(test.xml, test.outputs/, ...) and stdout/stderr uploaded, and the
ActionResult returned on the lease. A lease that the server drops (the
operation was cancelled) kills its command. When the server is unreachable
the worker keeps its session and retries; if the session is gone it opens a
new one. SIGTERM stops it without leaving a command behind (the lease goes
back to the queue); a SIGKILL is covered by guard.py.

Every action is recorded in <state_dir>/records.jsonl (a `start` and an `end`
line: worker, pool, rig, lease, action digest, target, start/end times,
exit code, status, and the seconds spent fetching inputs, running and
uploading outputs); the worker's current state is in
<state_dir>/workers/<name>.json. Both files, and the worker's `Config`, are
convoy.lab.worker_state's.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Tuple

import grpc
from buildgrid._protos.google.devtools.remoteworkers.v1test2 import bots_pb2, bots_pb2_grpc, worker_pb2
from buildgrid._protos.google.rpc import code_pb2, status_pb2
from google.protobuf import any_pb2

from convoy.lab.cas import Cas
from convoy.lab.rig_health import DRAINED, HealthBook
from convoy.lab.worker_run import POOL_KEY, Run
from convoy.lab.worker_state import Config, write_status

RIG_KEY = "Rig"
# The server answers a long poll within 80% of the call's deadline; it
# assigns nothing when that is under 3 s.
POLL_SECONDS = 5.0
BUSY_BEAT_SECONDS = 1.0
RETRY_SECONDS = 1.0
PROBE_SECONDS = 2.0
# After giving back an action that avoids this rig: UNHEALTHY this long, so that the
# scheduler gives the job to another rig, not straight back to this one.
AVOID_REST_SECONDS = 2.0
# gRPC codes after which the session is kept and the call retried.
TRANSIENT = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)

# Reconnect soon after a server restart (gRPC's default backoff grows to 2 min).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
]

log = logging.getLogger("convoy.lab.worker")


def probe_rig(address: str, timeout: float = PROBE_SECONDS) -> Tuple[bool, str]:
    """(healthy, what it said): a rig is healthy when it answers `hello` on its port in time."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b'{"op": "hello"}\n')
            stream = s.makefile("rb")
            line = stream.readline()
    except (OSError, ValueError) as e:
        return False, f"rig {address} unreachable: {e}"
    try:
        reply = json.loads(line)
    except ValueError:
        return False, f"rig {address} answered {line[:80]!r}"
    if not isinstance(reply, dict) or not reply.get("ok"):
        return False, f"rig {address} refused hello: {reply}"
    return True, f"{reply.get('board', '?')} board at {address}"


class Worker:
    """The bot session loop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.channel = grpc.insecure_channel(config.server, options=CHANNEL_OPTIONS)
        self.bots = bots_pb2_grpc.BotsStub(self.channel)
        self.cas = Cas(self.channel, config.instance, config.cache_dir)
        self.session: Optional[bots_pb2.BotSession] = None
        self.run_: Optional[Run] = None
        self.stopping = threading.Event()
        self.changed = threading.Event()
        self.healthy = True
        self.health = "no rig" if not config.rig else "not checked yet"
        self.connected = False
        self.last_error = ""
        self.health_book = HealthBook(config.state_dir)
        self.resting_until = 0.0

    # --- health ---------------------------------------------------------------

    def check_health(self) -> bool:
        if self.config.rig:
            healthy, detail = probe_rig(self.config.rig)
            record = self.health_book.read().get(self.config.name, {})
            if record.get("state") in DRAINED:  # convoy.lab.rig_health: no new work until a person says --good
                last = (record.get("changes") or [{}])[-1]
                healthy, detail = False, f"drained: {record['state']} ({last.get('reason', '?')})"
            if healthy != self.healthy:
                log.warning("rig %s is now %s: %s", self.config.name, "healthy" if healthy else "UNHEALTHY", detail)
            self.healthy, self.health = healthy, detail
        return self.healthy

    # --- session --------------------------------------------------------------

    def _resting(self) -> bool:
        return time.monotonic() < self.resting_until

    def _bot_session(self) -> bots_pb2.BotSession:
        status = bots_pb2.OK if self.healthy and not self._resting() else bots_pb2.UNHEALTHY
        if self.stopping.is_set():
            status = bots_pb2.BOT_TERMINATING
        device = worker_pb2.Device(handle=self.config.name)
        device.properties.add(key=POOL_KEY, value=self.config.pool)
        if self.config.rig:
            device.properties.add(key=RIG_KEY, value=self.config.name)
        worker = worker_pb2.Worker(devices=[device])
        session = bots_pb2.BotSession(bot_id=self.config.bot_id, status=status, worker=worker)
        if self.session is not None:
            session.name = self.session.name
            session.version = self.session.version
        return session

    def _leases(self, session: bots_pb2.BotSession) -> bool:
        """Adds the lease of the current run to `session`; returns whether it reports it COMPLETED."""
        run = self.run_
        if run is None:
            return False
        lease = session.leases.add(id=run.lease_id)
        # `finished` is read once: the run may end while this session is sent,
        # and then it is reported ACTIVE now and COMPLETED next time.
        if run.finished and not run.cancelled.is_set():
            lease.state = bots_pb2.COMPLETED
            lease.status.CopyFrom(run.status)
            result = any_pb2.Any()
            result.Pack(run.result)
            lease.result.CopyFrom(result)
            return True
        lease.state = bots_pb2.ACTIVE
        return False

    def _create(self) -> None:
        session = self._bot_session()
        session.ClearField("name")
        session.ClearField("version")
        response = self.bots.CreateBotSession(
            bots_pb2.CreateBotSessionRequest(parent=self.config.instance, bot_session=session),
            timeout=POLL_SECONDS,
        )
        log.info("session %s open (pool %s)", response.name, self.config.pool)
        self.session = response
        self._reconcile(response)

    def _update(self, timeout: float) -> None:
        if self.run_ is not None and self.run_.finished and self.run_.avoided:
            self.resting_until = time.monotonic() + AVOID_REST_SECONDS  # reported with the lease given back
        session = self._bot_session()
        reported_done = self._leases(session)
        response = self.bots.UpdateBotSession(
            bots_pb2.UpdateBotSessionRequest(name=session.name, bot_session=session), timeout=timeout
        )
        self.session = response
        if reported_done:
            self.run_ = None
        self._reconcile(response)

    def _reconcile(self, response: bots_pb2.BotSession) -> None:
        leases = {lease.id: lease for lease in response.leases if lease.state in (bots_pb2.PENDING, bots_pb2.ACTIVE)}
        run = self.run_
        if run is not None and not run.finished and run.lease_id not in leases:
            log.warning("lease %s was withdrawn by the server (cancelled); killing its command", run.lease_id)
            run.cancel()
            run.join(timeout=30)
            self.run_ = None
        for lease_id, lease in leases.items():
            if self.run_ is not None and self.run_.lease_id == lease_id:
                continue
            if self.run_ is not None:
                log.error("server sent a second lease %s while %s runs; ignoring it", lease_id, self.run_.lease_id)
                continue
            self._start(lease)

    def _start(self, lease: bots_pb2.Lease) -> None:
        run = Run(self.config, self.cas, lease, self.changed)
        self.run_ = run
        if self.stopping.is_set():
            run.status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=f"worker {self.config.name} is stopping")
            run.finished = True
            return
        if self.config.rig and not self.check_health():
            # The rig failed between our last check and this lease: give the
            # lease back (UNAVAILABLE is retried by the scheduler) and stop
            # taking work until the rig answers again.
            run.status = status_pb2.Status(
                code=code_pb2.UNAVAILABLE, message=f"rig {self.config.name} is unhealthy: {self.health}"
            )
            run.finished = True
            log.warning("gave back lease %s: %s", lease.id, self.health)
            return
        log.info("lease %s started", lease.id)
        run.start()

    # --- main loop --------------------------------------------------------------

    def serve(self) -> None:
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        self.config.status_file.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.config.work_dir, ignore_errors=True)
        self.config.work_dir.mkdir(parents=True)
        while not self.stopping.is_set():
            busy = self.run_ is not None and not self.run_.finished
            if not busy:
                self.check_health()
            self._write_status()
            try:
                if self.session is None:
                    self._create()
                else:
                    # A long poll while idle; the server answers at once while busy or unhealthy.
                    self._update(POLL_SECONDS)
                self.connected, self.last_error = True, ""
            except grpc.RpcError as e:
                self._rpc_failed(e)
                self.stopping.wait(RETRY_SECONDS)
                continue
            if self.run_ is not None and not self.run_.finished:
                self.changed.wait(BUSY_BEAT_SECONDS)
                self.changed.clear()
            elif not self.healthy or self._resting():
                self.stopping.wait(RETRY_SECONDS)
        self._shutdown()

    def _rpc_failed(self, e: grpc.RpcError) -> None:
        code = e.code()  # type: ignore[attr-defined]
        detail = e.details()  # type: ignore[attr-defined]
        self.connected = False
        self.last_error = f"{code.name}: {detail}"
        if code in TRANSIENT:
            log.info("server unreachable (%s); keeping session %s", code.name, self.session and self.session.name)
            return
        log.warning(
            "session %s refused (%s: %s); opening a new one", self.session and self.session.name, code.name, detail
        )
        if self.run_ is not None and not self.run_.finished:
            self.run_.cancel()
            self.run_.join(timeout=30)
        self.run_ = None
        self.session = None

    def _shutdown(self) -> None:
        run = self.run_
        if run is not None and not run.finished:
            log.info("stopping: killing the command of lease %s and giving the lease back", run.lease_id)
            run.cancel()
            run.join(timeout=30)
            # Give the lease back: UNAVAILABLE is retried on another worker.
            run.cancelled.clear()
            run.status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=f"worker {self.config.name} stopped")
        if self.session is not None:
            # BOT_TERMINATING: the scheduler assigns nothing more to this session.
            try:
                self._update(3.0)
            except grpc.RpcError as e:
                log.info("could not say goodbye to the server: %s", e.code())  # type: ignore[attr-defined]
        self.healthy = False
        self.health = "stopped"
        self.connected = False
        self._write_status()
        self.channel.close()

    def _write_status(self) -> None:
        run = self.run_
        running = None
        if run is not None and not run.finished:
            running = {"lease": run.lease_id, "action": run.action_digest, "target": run.target, "since": run.started}
        write_status(
            self.config,
            pgid=run.pgid if run is not None else None,
            healthy=self.healthy,
            health=self.health,
            connected=self.connected,
            error=self.last_error,
            session=self.session.name if self.session is not None else "",
            running=running,
        )


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="host:port of the REAPI server (BuildGrid)")
    parser.add_argument("--instance", required=True, help="the REAPI instance name")
    parser.add_argument("--pool", required=True, help="the pool this worker serves (platform property Pool)")
    parser.add_argument("--worker", required=True, help="this worker's (and its rig's) name, unique in the lab")
    parser.add_argument("--rig", default=None, help="host:port of the rig; omit for a general worker")
    parser.add_argument("--state_dir", required=True, type=Path, help="the lab's state directory")
    parser.add_argument("--general_pool", default="default", help="the pool of non-hardware actions")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(threadName)s] %(message)s")
    config = Config(
        server=args.server,
        instance=args.instance,
        pool=args.pool,
        name=args.worker,
        rig=args.rig,
        state_dir=args.state_dir.resolve(),
        general_pool=args.general_pool,
    )
    worker = Worker(config)

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        worker.stopping.set()
        worker.changed.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.serve()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
