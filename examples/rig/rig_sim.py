"""A simulated hardware test rig: one board on a TCP port, driven by line-delimited JSON.

    python3 rig_sim.py --board drone        # or: bazel run //examples/rig:rig_sim -- --board drone
    RIG_ADDRESS=127.0.0.1:40123             # printed once it listens

Each request is one JSON object on one line; each reply is one line too,
{"ok": true, ...} or {"ok": false, "error": "<why>"}:

    {"op": "hello"}                       board, flash_size, protocols, max_speed
    {"op": "flash", "image": "<base64>"}  size, protocol; refused when the image does
                                          not fit the flash, its header or CRC-32 is
                                          wrong, or the board cannot speak its protocol
    {"op": "run", "commands": [{"speed": m/s, "turn": rad/s, "duration": s}, ...],
     "period": s}                         telemetry: a sample {t, x, y, heading, speed,
                                          battery} every period; needs a flashed image
    {"op": "reset"}                       erase the flash, robot back at the origin
    {"op": "fault", "fault": "flash"}     a stand-in for broken hardware: "flash" makes every
                                          flash fail with {"ok": false, "fault": true, ...}
                                          (the rig's failure, not the image's), "silent"
                                          makes the rig answer nothing but "fault"; null
                                          (or "none") repairs it

A reply with "fault": true is the rig's own failure: the rig client raises
RigUnavailable and the test exits with its infrastructure code (75).

The bootloader reads the firmware image header that every board shares:
magic "CVFW", header format 1, protocol, 2 reserved bytes, payload length,
CRC-32 of the payload (little endian).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import json
import math
import socketserver
import struct
import sys
import threading
import zlib
from typing import Any, Dict, List, Optional, Tuple

IMAGE_HEADER = struct.Struct("<4sBB2xII")
IMAGE_MAGIC = b"CVFW"
IMAGE_HEADER_FORMAT = 1
MAX_SCENARIO_SECONDS = 600.0
BATTERY_PER_SECOND = 0.0005  # idle drain, fraction of a full charge
BATTERY_PER_METRE = 0.002


@dataclasses.dataclass(frozen=True)
class Board:
    """A board model: how much flash it has, which protocols its radio speaks, how fast it can go."""

    name: str
    flash_size: int
    protocols: Tuple[int, ...]
    max_speed: float


BOARDS = {
    "rover": Board(name="rover", flash_size=256 * 1024, protocols=(2, 3), max_speed=1.5),
    "drone": Board(name="drone", flash_size=64 * 1024, protocols=(1, 2), max_speed=4.0),
}


class Refused(Exception):
    """The rig refuses a request; the message says why, in words for a test log."""


class Fault(Refused):
    """The rig itself failed (its hardware, not the request): the reply carries "fault": true."""


FAULTS = ("flash", "silent")


def check_image(board: Board, image: bytes) -> int:
    """Returns the protocol of `image` if `board`'s bootloader accepts it; raises Refused otherwise."""
    if len(image) > board.flash_size:
        raise Refused(
            f"image is {len(image):,} bytes; the {board.name} board has {board.flash_size:,} bytes of flash"
        )
    if len(image) < IMAGE_HEADER.size:
        raise Refused(f"image is {len(image)} bytes, shorter than the {IMAGE_HEADER.size}-byte header")
    magic, header_format, protocol, length, checksum = IMAGE_HEADER.unpack_from(image)
    if magic != IMAGE_MAGIC or header_format != IMAGE_HEADER_FORMAT:
        raise Refused(f"not a firmware image (magic {magic!r}, header format {header_format})")
    payload = image[IMAGE_HEADER.size :]
    if len(payload) != length or zlib.crc32(payload) != checksum:
        raise Refused(
            f"image is corrupt: payload of {len(payload)} bytes does not match its header's length and CRC-32"
        )
    if protocol not in board.protocols:
        raise Refused(f"image speaks protocol {protocol}; the {board.name} board speaks {list(board.protocols)}")
    return protocol


@dataclasses.dataclass(frozen=True)
class State:
    """The simulated robot: pose, speed and battery, `t` seconds into a scenario."""

    t: float = 0.0
    x: float = 0.0
    y: float = 0.0
    heading: float = 0.0
    speed: float = 0.0
    battery: float = 1.0


def simulate(board: Board, start: State, commands: List[Dict[str, Any]], period: float) -> List[State]:
    """Returns a sample every `period` seconds (and at the end) of the robot executing `commands`.

    Speeds beyond the board's max_speed saturate, as real motors do.
    """
    steps = [_command(board, c) for c in commands]
    total = sum(duration for _, _, duration in steps)
    if total > MAX_SCENARIO_SECONDS:
        raise Refused(f"scenario lasts {total} s, longer than {MAX_SCENARIO_SECONDS} s")
    state, samples = start, []
    for speed, turn, duration in steps:
        remaining = duration
        while remaining > 1e-12:
            dt = min(period, remaining)
            state = _advance(state, speed, turn, dt)
            samples.append(state)
            remaining -= dt
    return samples


def _command(board: Board, command: Dict[str, Any]) -> Tuple[float, float, float]:
    try:
        speed, turn, duration = (float(command[k]) for k in ("speed", "turn", "duration"))
    except (KeyError, TypeError, ValueError):
        raise Refused(f"a command needs numbers speed, turn, duration; got {command!r}") from None
    if duration < 0 or not all(map(math.isfinite, (speed, turn, duration))):
        raise Refused(f"command {command!r} is not finite with a duration >= 0")
    return max(-board.max_speed, min(board.max_speed, speed)), turn, duration


def _advance(state: State, speed: float, turn: float, dt: float) -> State:
    heading = state.heading + turn * dt
    if turn == 0:
        dx, dy = speed * dt * math.cos(state.heading), speed * dt * math.sin(state.heading)
    else:
        radius = speed / turn
        dx = radius * (math.sin(heading) - math.sin(state.heading))
        dy = radius * (math.cos(state.heading) - math.cos(heading))
    drain = BATTERY_PER_SECOND * dt + BATTERY_PER_METRE * abs(speed) * dt
    return State(
        t=state.t + dt,
        x=state.x + dx,
        y=state.y + dy,
        heading=math.remainder(heading, 2 * math.pi),
        speed=speed,
        battery=max(0.0, state.battery - drain),
    )


class Rig:
    """One board on the bench: its flash and the robot it drives. Safe to share between connections."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self._lock = threading.Lock()
        self._protocol: Optional[int] = None
        self._state = State()
        self.fault: Optional[str] = None  # a stand-in for broken hardware (the "fault" op)

    def handle(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """Returns the reply to one request."""
        handlers = {"hello": self._hello, "flash": self._flash, "run": self._run, "reset": self._reset,
                    "fault": self._set_fault}
        handler = handlers.get(request.get("op"))
        if handler is None:
            return {"ok": False, "error": f"unknown op {request.get('op')!r}; ops: {sorted(handlers)}"}
        try:
            with self._lock:
                return {"ok": True, **handler(request)}
        except Fault as e:
            return {"ok": False, "error": str(e), "fault": True}
        except Refused as e:
            return {"ok": False, "error": str(e)}

    def _hello(self, request: Dict[str, Any]) -> Dict[str, Any]:
        board = self.board
        return {
            "board": board.name,
            "flash_size": board.flash_size,
            "protocols": list(board.protocols),
            "max_speed": board.max_speed,
        }

    def _flash(self, request: Dict[str, Any]) -> Dict[str, Any]:
        try:
            image = base64.b64decode(request["image"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise Refused("flash needs the image as base64 in 'image'") from None
        self._protocol = None  # a refused flash leaves the board erased
        if self.fault == "flash":
            raise Fault(f"flash write failed on the {self.board.name} board: the bootloader stopped answering")
        self._protocol = check_image(self.board, image)
        return {"size": len(image), "protocol": self._protocol}

    def _run(self, request: Dict[str, Any]) -> Dict[str, Any]:
        if self._protocol is None:
            raise Refused("nothing is flashed: flash an image first")
        commands = request.get("commands")
        if not isinstance(commands, list):
            raise Refused("run needs a list of commands in 'commands'")
        samples = simulate(self.board, self._state, commands, _period(request))
        if samples:
            self._state = samples[-1]
        return {"telemetry": [dataclasses.asdict(s) for s in samples]}

    def _set_fault(self, request: Dict[str, Any]) -> Dict[str, Any]:
        fault = request.get("fault")
        if fault not in (*FAULTS, None, "none"):
            raise Refused(f"fault must be one of {list(FAULTS)}, \"none\" or null; got {fault!r}")
        self.fault = None if fault == "none" else fault
        return {"fault": self.fault}

    def _reset(self, request: Dict[str, Any]) -> Dict[str, Any]:
        self._protocol = None
        self._state = State()
        return {}


def _period(request: Dict[str, Any]) -> float:
    period = request.get("period", 0.1)
    if not isinstance(period, (int, float)) or not 0 < period <= MAX_SCENARIO_SECONDS:
        raise Refused(f"period must be a positive number of seconds, got {period!r}")
    return float(period)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            if self.server.rig.fault == "silent" and b'"fault"' not in line:
                return  # a hung bench: the connection closes without an answer
            self.wfile.write(json.dumps(self._reply(line)).encode("utf-8") + b"\n")
            self.wfile.flush()

    def _reply(self, line: bytes) -> Dict[str, Any]:
        try:
            request = json.loads(line)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is one JSON object on one line"}
        return self.server.rig.handle(request)


class RigServer(socketserver.ThreadingTCPServer):
    """A TCP server for one Rig; every connection talks to the same board."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, rig: Rig, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.rig = rig

    @property
    def address(self) -> str:
        """host:port the server listens on."""
        host, port = self.server_address[:2]
        return f"{host}:{port}"


def main(argv: Optional[List[str]] = None) -> int:
    """Serves a simulated board until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", choices=sorted(BOARDS), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    with RigServer(Rig(BOARDS[args.board]), args.host, args.port) as server:
        print(f"RIG_ADDRESS={server.address}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
