"""Client of a hardware test rig: the simulated one in rig_sim.py, or a real one speaking its protocol.

    from examples.rig import rig_client

    with rig_client.connect() as rig:
        rig.flash(image)
        samples = rig.run([{"speed": 0.5, "turn": 0.0, "duration": 2.0}])

Which rig: CONVOY_RIG_ADDRESS (host:port), set by a hardware pool's worker
for the test it runs. Only when it is unset, connect() starts a simulated
rig (rig_sim.py from the test's runfiles) for the board named by
CONVOY_RIG_BOARD, else by the configuration under test
(CONVOY_CONFIGURATION), and stops it on close.

Whose failure: a rig that cannot be reached, stops answering, or fails
itself (its flash fails: a reply with "fault": true) raises RigUnavailable,
and a hardware test run by `main()` (instead of unittest.main()) then exits
with INFRA_EXIT, 75 (EX_TEMPFAIL): the rig's failure, not the product's.
convoy's lab runs such a test again on another rig of its pool and, if it
exits 75 on every rig, sends the request back to the queue instead of
rejecting it (convoy.lab.health). A product that behaves wrongly (the
bootloader refuses its image, the robot misses the route) is an ordinary
failure (exit 1), and rejects the change.

    if __name__ == "__main__":
        rig_client.main()
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import socket
import subprocess
import sys
import unittest
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

ADDRESS_ENV = "CONVOY_RIG_ADDRESS"
BOARD_ENV = "CONVOY_RIG_BOARD"
CONFIGURATION_ENV = "CONVOY_CONFIGURATION"
# Configuration under test -> the board a simulated rig has.
BOARD_OF_CONFIGURATION = {"rover": "rover", "drone": "drone"}

_SIM = Path(__file__).with_name("rig_sim.py")
_READY_PREFIX = "RIG_ADDRESS="

# The exit code of a hardware test that met a rig-side failure (sysexits.h EX_TEMPFAIL):
# infrastructure, not the change's fault. convoy.lab.health reads it from the lab's records.
INFRA_EXIT = 75

Address = Tuple[str, int]


class RigError(Exception):
    """The rig refused a request, or could not be reached; the message says why."""


class RigUnavailable(RigError):
    """The rig could not be reached, stopped answering, or failed itself: not the product's fault."""


class RigClient:
    """A connection to one rig. Close it (or use `with`) to release the rig."""

    def __init__(self, address: Address, timeout: float, process: Optional[subprocess.Popen] = None) -> None:
        self.address = address
        self._process = process
        self._socket = socket.create_connection(address, timeout=timeout)
        self._stream = self._socket.makefile("rwb")

    def hello(self) -> Dict[str, Any]:
        """Returns the board's description: board, flash_size, protocols, max_speed."""
        return self._request({"op": "hello"})

    def flash(self, image: bytes) -> Dict[str, Any]:
        """Flashes `image`; returns its size and protocol. Raises RigError with the bootloader's reason."""
        return self._request({"op": "flash", "image": base64.b64encode(image).decode("ascii")})

    def run(self, commands: Sequence[Mapping[str, float]], period: float = 0.1) -> List[Dict[str, float]]:
        """Drives `commands` ({speed, turn, duration} each); returns a telemetry sample every `period` s."""
        reply = self._request({"op": "run", "commands": [dict(c) for c in commands], "period": period})
        return reply["telemetry"]

    def reset(self) -> None:
        """Erases the flash and puts the robot back at the origin."""
        self._request({"op": "reset"})

    def close(self) -> None:
        """Closes the connection, and stops the simulated rig if connect() started one."""
        self._stream.close()
        self._socket.close()
        if self._process is not None:
            _stop(self._process)
            self._process = None

    def __enter__(self) -> "RigClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(self, request: Dict[str, Any]) -> Dict[str, Any]:
        try:
            self._stream.write(json.dumps(request).encode("utf-8") + b"\n")
            self._stream.flush()
            line = self._stream.readline()
        except OSError as e:
            raise RigUnavailable(f"rig {_format(self.address)}: {request['op']} failed: {e}") from None
        if not line:
            raise RigUnavailable(f"rig {_format(self.address)} closed the connection during {request['op']}")
        reply = json.loads(line)
        if not reply.get("ok") and reply.get("fault"):
            raise RigUnavailable(f"rig {_format(self.address)} failed during {request['op']}: {reply.get('error')}")
        if not reply.get("ok"):
            raise RigError(f"rig {_format(self.address)} refused {request['op']}: {reply.get('error')}")
        return reply


def connect(timeout: float = 30.0) -> RigClient:
    """Returns a client of the rig at CONVOY_RIG_ADDRESS, or of a simulated rig started for this test.

    Args:
        timeout: seconds to wait for the simulated rig to start, and for each reply.

    Raises:
        RigError: the address is malformed, no board is named, or the rig is unreachable.
    """
    address = os.environ.get(ADDRESS_ENV)
    if address:
        return _open(_parse_address(address), timeout)
    process, local = _start_sim(_local_board(), timeout)
    try:
        return _open(local, timeout, process)
    except RigError:
        _stop(process)
        raise


def _open(address: Address, timeout: float, process: Optional[subprocess.Popen] = None) -> RigClient:
    try:
        return RigClient(address, timeout, process)
    except OSError as e:
        raise RigUnavailable(f"cannot reach the rig at {_format(address)}: {e}") from None


class _Result(unittest.TextTestResult):
    """Counts the tests that met a rig-side failure (RigUnavailable)."""

    rig_failures = 0

    def addError(self, test: unittest.TestCase, err) -> None:  # noqa: N802 - unittest's name
        if isinstance(err[1], RigUnavailable):
            self.rig_failures += 1
        super().addError(test, err)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """unittest.main() for hardware tests: exits INFRA_EXIT when a test met a rig-side failure
    (the results on a broken rig say nothing about the product), 1 when one failed, else 0."""
    runner = unittest.TextTestRunner(resultclass=_Result, verbosity=2)
    program = unittest.main(module="__main__", argv=list(argv) if argv is not None else None, testRunner=runner,
                            exit=False)
    result = program.result
    if getattr(result, "rig_failures", 0):
        print(f"{result.rig_failures} test(s) met a rig-side failure: exit {INFRA_EXIT} (the rig's, not the "
              "product's)", file=sys.stderr)
        sys.exit(INFRA_EXIT)
    sys.exit(0 if result.wasSuccessful() else 1)


def _parse_address(value: str) -> Address:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise RigError(f"{ADDRESS_ENV}={value!r} is not host:port")
    return host, int(port)


def _local_board() -> str:
    board = os.environ.get(BOARD_ENV) or BOARD_OF_CONFIGURATION.get(os.environ.get(CONFIGURATION_ENV, ""))
    if not board:
        raise RigError(
            f"no rig: set {ADDRESS_ENV}=host:port (a hardware pool's worker does), or {BOARD_ENV}="
            f"{'|'.join(sorted(set(BOARD_OF_CONFIGURATION.values())))} to start a simulated one"
        )
    return board


def _start_sim(board: str, timeout: float) -> Tuple[subprocess.Popen, Address]:
    """Starts rig_sim.py for `board`; returns the process and the address it printed."""
    process = subprocess.Popen(
        [sys.executable, str(_SIM), "--board", board],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = _first_line(process, timeout)
    if not line.startswith(_READY_PREFIX):
        _stop(process)
        raise RigError(f"simulated {board} rig did not start within {timeout} s (said {line!r})")
    return process, _parse_address(line[len(_READY_PREFIX) :].strip())


def _first_line(process: subprocess.Popen, timeout: float) -> str:
    """The first line `process` prints, or '' if it prints none within `timeout` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        return process.stdout.readline() if selector.select(timeout) else ""


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()


def _format(address: Address) -> str:
    return f"{address[0]}:{address[1]}"
