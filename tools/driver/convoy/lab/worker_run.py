"""The execution of one lease's action on a lab worker (convoy.lab.worker).

    run = Run(config, cas, lease, done)    # a thread; `done` is set when it ends
    run.start()
    run.cancel()                           # the server withdrew the lease: kill the command, drop the result
    run.finished, run.status, run.result   # what the worker reports on the lease

A Run refuses an action whose platform does not name the worker's pool
(FAILED_PRECONDITION). Otherwise: the Action and Command from the CAS, the
input root in a fresh directory (with the parent directories of the
declared outputs), the command run through guard.py, in its own process
group, with the Command's environment plus CONVOY_RIG_ADDRESS=<rig>, killed
at the Action's timeout (DEADLINE_EXCEEDED) or on cancel; then its
stdout/stderr and outputs uploaded into the ActionResult. Any other failure
is INTERNAL (the scheduler retries it). An action whose environment
names this rig in CONVOY_AVOID_RIGS (a retry of a test that failed here,
convoy.lab.health) is given back, UNAVAILABLE, which the scheduler
requeues; the worker then rests (convoy.lab.worker). The action's `start` and `end`
lines go to records.jsonl (convoy.lab.worker_state). Runs in the lab's
environment (.venv-lab: grpcio, BuildGrid's protos).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional

from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from buildgrid._protos.google.devtools.remoteworkers.v1test2 import bots_pb2
from buildgrid._protos.google.rpc import code_pb2, status_pb2

from convoy.lab.cas import Cas, digest_of, digest_str
from convoy.lab.worker_state import Config, action_record, append_record, now

RIG_ENV = "CONVOY_RIG_ADDRESS"
AVOID_ENV = "CONVOY_AVOID_RIGS"  # rigs that must not run the action (a retry on another rig: convoy.lab.health)
POOL_KEY = "Pool"
GUARD = Path(__file__).with_name("guard.py")

log = logging.getLogger("convoy.lab.worker")


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
        self.started = now()
        self.status = status_pb2.Status(code=code_pb2.OK)
        self.result = re_pb2.ActionResult()
        self.cancelled = threading.Event()
        self._done = done
        self._pgid: Optional[int] = None
        self.finished = False
        self.avoided = False  # given back because the action avoids this rig (AVOID_ENV)
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
        append_record(self.config.records, self._record("start", time=self.started))
        refusal = self._refusal(action, command)
        if refusal:
            log.warning("refusing lease %s: %s", self.lease_id, refusal)
            self.status = status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message=refusal)
            return
        if self.config.rig and self.config.name in env.get(AVOID_ENV, "").split(","):
            # A retry of a test that failed here: back to the queue (UNAVAILABLE), for another rig.
            log.info("giving back lease %s: %s=%s avoids this rig", self.lease_id, AVOID_ENV, env[AVOID_ENV])
            self.status = status_pb2.Status(code=code_pb2.UNAVAILABLE,
                                            message=f"rig {self.config.name} is avoided by {AVOID_ENV}")
            self.avoided = True
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
        return action_record(
            self.config, event, lease=self.lease_id, action=self.action_digest, target=self.target, **extra
        )

    def _record_end(self) -> None:
        status = "CANCELLED" if self.cancelled.is_set() else code_pb2.Code.Name(self.status.code)
        exit_code = self.result.exit_code if status in ("OK", "DEADLINE_EXCEEDED") else None
        append_record(
            self.config.records,
            self._record("end", start=self.started, end=now(), exit_code=exit_code, status=status, **self.timings),
        )
