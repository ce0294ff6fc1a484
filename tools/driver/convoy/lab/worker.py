"""convoy's lab worker: a bot of the Remote Workers API that runs actions, one at a time.

    PYTHONPATH=tools/driver .venv-lab/bin/python -m convoy.lab.worker \\
        --server=127.0.0.1:50051 --instance=convoy --pool=rover-rigs --worker=rover-rigs-1 \\
        --rig=127.0.0.1:40123 --state_dir=.convoy/lab

A rig worker (--rig given) serves one hardware rig of a pool: it registers with
BuildGrid's BotsService with the platform properties Pool=<pool> and
Rig=<name> on its primary device, checks the rig (a `hello` on its port)
before it asks for work and reports itself UNHEALTHY (so the scheduler gives
it nothing) while the rig does not answer. A general worker (no --rig) serves
the default pool and runs the build and non-hardware test actions.

For each lease: the Action and Command from the CAS, the input root in a fresh
directory, the command run (through guard.py, in its own process group) with
the Command's environment plus CONVOY_RIG_ADDRESS=<rig>, killed at the
Action's timeout, its outputs (test.xml, test.outputs/, ...) and stdout/stderr
uploaded, and the ActionResult returned on the lease. A lease that the server
drops (the operation was cancelled) kills its command. When the server is
unreachable the worker keeps its session and retries; if the session is gone
it opens a new one. SIGTERM stops it without leaving a command behind (the
lease goes back to the queue); a SIGKILL is covered by guard.py.

Every action is recorded in <state_dir>/records.jsonl (a `start` and an `end`
line: worker, pool, rig, lease, action digest, target, start/end times,
exit code, status, and the seconds spent fetching inputs, running and
uploading outputs); the worker's current state is in
<state_dir>/workers/<name>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from buildgrid._protos.google.devtools.remoteworkers.v1test2 import bots_pb2, bots_pb2_grpc, worker_pb2
from buildgrid._protos.google.rpc import code_pb2, status_pb2
from google.protobuf import any_pb2

from convoy.lab.cas import Cas, digest_of, digest_str

RIG_ENV = "CONVOY_RIG_ADDRESS"
POOL_KEY = "Pool"
RIG_KEY = "Rig"
GUARD = Path(__file__).with_name("guard.py")
# The server answers a long poll within 80% of the call's deadline; it
# assigns nothing when that is under 3 s.
POLL_SECONDS = 5.0
BUSY_BEAT_SECONDS = 1.0
RETRY_SECONDS = 1.0
PROBE_SECONDS = 2.0
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


@dataclasses.dataclass(frozen=True)
class Config:
    """What one worker serves and where it keeps its state."""

    server: str
    instance: str
    pool: str
    name: str
    rig: Optional[str]
    state_dir: Path
    general_pool: str = "default"

    @property
    def bot_id(self) -> str:
        # The pool is part of the id, so that the service's worker list
        # (Introspection.ListWorkers) tells which pool each bot serves.
        return f"{self.pool}/{self.name}"

    @property
    def records(self) -> Path:
        return self.state_dir / "records.jsonl"

    @property
    def status_file(self) -> Path:
        return self.state_dir / "workers" / f"{self.name}.json"

    @property
    def work_dir(self) -> Path:
        return self.state_dir / "work" / self.name

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache" / self.name


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


def _append_record(path: Path, record: Dict[str, Any]) -> None:
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _write_json(path: Path, data: Dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, sort_keys=True, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _now() -> float:
    return round(time.time(), 3)


class Run(threading.Thread):
    """One lease: fetch the inputs, run the command, upload the outputs."""

    def __init__(self, config: Config, cas: Cas, lease: bots_pb2.Lease, done: threading.Event) -> None:
        super().__init__(name=f"run-{lease.id[:8]}", daemon=True)
        self.config = config
        self.cas = cas
        self.lease_id = lease.id
        self.payload = lease.payload
        self.action_digest = ""
        self.target = ""
        self.started = _now()
        self.status = status_pb2.Status(code=code_pb2.OK)
        self.result = re_pb2.ActionResult()
        self.cancelled = threading.Event()
        self._done = done
        self._pgid: Optional[int] = None
        self.finished = False
        self.timings: Dict[str, float] = {}

    def cancel(self) -> None:
        """Kills the command (if it runs) and drops the result."""
        self.cancelled.set()
        self._kill()

    def _kill(self) -> None:
        if self._pgid is not None:
            try:
                os.killpg(self._pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    @property
    def pgid(self) -> Optional[int]:
        return self._pgid

    def run(self) -> None:
        root = self.config.work_dir / self.lease_id.replace("/", "_")
        try:
            self._execute(root)
        except Exception as e:  # noqa: BLE001 - any failure goes back to the server, retryable
            log.exception("lease %s failed", self.lease_id)
            self.status = status_pb2.Status(code=code_pb2.INTERNAL, message=f"worker {self.config.name}: {e}")
        finally:
            shutil.rmtree(root, ignore_errors=True)
            self.finished = True
            self._record_end()
            self._done.set()

    def _action(self) -> re_pb2.Action:
        action = re_pb2.Action()
        if self.payload.Is(re_pb2.Action.DESCRIPTOR):
            self.payload.Unpack(action)
            self.action_digest = digest_str(digest_of(action.SerializeToString()))
            return action
        digest = re_pb2.Digest()
        self.payload.Unpack(digest)
        self.action_digest = digest_str(digest)
        return self.cas.read_message(digest, re_pb2.Action)

    def _execute(self, root: Path) -> None:
        action = self._action()
        command = self.cas.read_message(action.command_digest, re_pb2.Command)
        env = {v.name: v.value for v in command.environment_variables}
        self.target = env.get("TEST_TARGET", "")
        _append_record(self.config.records, self._record("start", time=self.started))
        refusal = self._refusal(action, command)
        if refusal:
            log.warning("refusing lease %s: %s", self.lease_id, refusal)
            self.status = status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message=refusal)
            return
        fetch_start = time.monotonic()
        root.mkdir(parents=True)
        inputs = root / "root"
        inputs.mkdir()
        self.cas.materialize(action.input_root_digest, inputs)
        workdir = inputs / command.working_directory
        workdir.mkdir(parents=True, exist_ok=True)
        for rel in [*command.output_files, *command.output_directories, *command.output_paths]:
            (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        if self.config.rig:
            env[RIG_ENV] = self.config.rig
        timeout = action.timeout.seconds + action.timeout.nanos / 1e9 or None
        stdout_path, stderr_path = root / "stdout", root / "stderr"
        worker_start = time.time()
        self.timings["fetch_s"] = round(time.monotonic() - fetch_start, 3)
        run_start = time.monotonic()
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-I", str(GUARD), str(os.getpid()), "--", *command.arguments],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
            self._pgid = process.pid
            timed_out = self._wait(process, timeout)
        self._pgid = None
        self.timings["run_s"] = round(time.monotonic() - run_start, 3)
        if self.cancelled.is_set():
            return
        upload_start = time.monotonic()
        result = self.result
        result.exit_code = process.returncode
        result.stdout_digest.CopyFrom(self.cas.put(stdout_path.read_bytes()))
        result.stderr_digest.CopyFrom(self.cas.put(stderr_path.read_bytes()))
        self.cas.upload_outputs(workdir, command, result)
        self.timings["upload_s"] = round(time.monotonic() - upload_start, 3)
        meta = result.execution_metadata
        meta.worker = self.config.bot_id
        meta.execution_start_timestamp.FromSeconds(int(worker_start))
        meta.execution_completed_timestamp.FromSeconds(int(time.time()))
        if timed_out:
            self.status = status_pb2.Status(
                code=code_pb2.DEADLINE_EXCEEDED,
                message=f"action timed out after {timeout:g} s on {self.config.name}",
            )

    def _wait(self, process: subprocess.Popen, timeout: Optional[float]) -> bool:
        """Waits for the command; kills its group at the timeout or on cancel. True if it timed out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                process.wait(timeout=0.2)
                return False
            except subprocess.TimeoutExpired:
                pass
            if self.cancelled.is_set():
                self._kill()
                process.wait()
                return False
            if deadline is not None and time.monotonic() >= deadline:
                self._kill()
                process.wait()
                return True

    def _refusal(self, action: re_pb2.Action, command: re_pb2.Command) -> str:
        """Why this worker must not run the action ('' if it may)."""
        platform = action.platform if action.HasField("platform") else command.platform
        pools = sorted({p.value for p in platform.properties if p.name == POOL_KEY})
        if self.config.rig:
            if pools != [self.config.pool]:
                got = f"{POOL_KEY}={pools[0]}" if pools else f"no {POOL_KEY}"
                return (
                    f"rig {self.config.name} of pool {self.config.pool} runs only actions with "
                    f"{POOL_KEY}={self.config.pool}; this one has {got}. Use --config=hil, which sets "
                    f"--remote_default_exec_properties={POOL_KEY}={self.config.general_pool}"
                )
        elif pools and pools != [self.config.pool]:
            return f"worker {self.config.name} serves pool {self.config.pool}, not {POOL_KEY}={pools[0]}"
        return ""

    def _record(self, event: str, **extra: Any) -> Dict[str, Any]:
        return {
            "event": event,
            "worker": self.config.name,
            "pool": self.config.pool,
            "rig": self.config.rig or "",
            "lease": self.lease_id,
            "action": self.action_digest,
            "target": self.target,
            **extra,
        }

    def _record_end(self) -> None:
        status = "CANCELLED" if self.cancelled.is_set() else code_pb2.Code.Name(self.status.code)
        exit_code = self.result.exit_code if status in ("OK", "DEADLINE_EXCEEDED") else None
        _append_record(
            self.config.records,
            self._record("end", start=self.started, end=_now(), exit_code=exit_code, status=status, **self.timings),
        )


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

    # --- health ---------------------------------------------------------------

    def check_health(self) -> bool:
        if self.config.rig:
            healthy, detail = probe_rig(self.config.rig)
            if healthy != self.healthy:
                log.warning("rig %s is now %s: %s", self.config.name, "healthy" if healthy else "UNHEALTHY", detail)
            self.healthy, self.health = healthy, detail
        return self.healthy

    # --- session --------------------------------------------------------------

    def _bot_session(self) -> bots_pb2.BotSession:
        status = bots_pb2.OK if self.healthy else bots_pb2.UNHEALTHY
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
            elif not self.healthy:
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
        _write_json(
            self.config.status_file,
            {
                "name": self.config.name,
                "pool": self.config.pool,
                "rig": self.config.rig or "",
                "pid": os.getpid(),
                "pgid": run.pgid if run is not None else None,
                "healthy": self.healthy,
                "health": self.health,
                "connected": self.connected,
                "error": self.last_error,
                "session": self.session.name if self.session is not None else "",
                "running": running,
                "updated": _now(),
            },
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
