"""Encode messages as bytes and back: a JSON envelope {"protocol", "type", "body"}."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Tuple, Union

from messages.types import MotorCommand, Plan, Telemetry, Waypoint

# The version of the wire format. Firmware lists the versions it can speak;
# a change that an older reader would misread needs a new number.
PROTOCOL_VERSION = 2

Message = Union[Plan, MotorCommand, Telemetry]


class DecodeError(ValueError):
    """The bytes are not a message of this protocol version."""


def _waypoint_to_wire(waypoint: Waypoint) -> Dict[str, Any]:
    return {"x": waypoint.x, "y": waypoint.y, "speed": int(round(waypoint.speed))}


def _waypoint_from_wire(body: Dict[str, Any]) -> Waypoint:
    return Waypoint(x=body["x"], y=body["y"], speed=int(body["speed"]))


def _plan_to_wire(plan: Plan) -> Dict[str, Any]:
    return {"plan_id": plan.plan_id, "waypoints": [_waypoint_to_wire(w) for w in plan.waypoints]}


def _plan_from_wire(body: Dict[str, Any]) -> Plan:
    waypoints = tuple(_waypoint_from_wire(w) for w in body["waypoints"])
    return Plan(waypoints=waypoints, plan_id=body["plan_id"])


def _motor_command_to_wire(command: MotorCommand) -> Dict[str, Any]:
    return {"speed": command.speed, "turn": command.turn, "duration": command.duration}


def _motor_command_from_wire(body: Dict[str, Any]) -> MotorCommand:
    return MotorCommand(speed=body["speed"], turn=body["turn"], duration=body["duration"])


def _telemetry_to_wire(telemetry: Telemetry) -> Dict[str, Any]:
    body = {
        "x": telemetry.x,
        "y": telemetry.y,
        "heading": telemetry.heading,
        "speed": telemetry.speed,
        "odometer": telemetry.odometer,
    }
    if telemetry.battery is not None:
        body["battery"] = telemetry.battery
    return body


def _telemetry_from_wire(body: Dict[str, Any]) -> Telemetry:
    return Telemetry(
        x=body["x"],
        y=body["y"],
        heading=body["heading"],
        speed=body["speed"],
        odometer=body["odometer"],
        battery=body.get("battery"),
    )


# type -> (wire name, to wire, from wire). Readers ignore fields they do not
# know, so a field added later stays compatible.
_CODECS: Dict[type, Tuple[str, Callable[[Any], Dict[str, Any]], Callable[[Dict[str, Any]], Any]]] = {
    Plan: ("plan", _plan_to_wire, _plan_from_wire),
    MotorCommand: ("motor_command", _motor_command_to_wire, _motor_command_from_wire),
    Telemetry: ("telemetry", _telemetry_to_wire, _telemetry_from_wire),
}
_BY_NAME = {name: from_wire for name, _, from_wire in _CODECS.values()}


def encode(message: Message) -> bytes:
    """Returns the wire bytes of `message`."""
    try:
        name, to_wire, _ = _CODECS[type(message)]
    except KeyError:
        raise TypeError(f"not a message: {type(message).__name__}") from None
    envelope = {"protocol": PROTOCOL_VERSION, "type": name, "body": to_wire(message)}
    return json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode("utf-8")


def decode(data: bytes) -> Message:
    """Returns the message that `data` encodes; raises DecodeError if it cannot."""
    try:
        envelope = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DecodeError(f"not a JSON message: {e}") from None
    if envelope.get("protocol") != PROTOCOL_VERSION:
        raise DecodeError(
            f"protocol {envelope.get('protocol')!r} is not this library's protocol {PROTOCOL_VERSION}"
        )
    from_wire = _BY_NAME.get(envelope.get("type"))
    if from_wire is None:
        raise DecodeError(f"unknown message type {envelope.get('type')!r}")
    try:
        return from_wire(envelope["body"])
    except (KeyError, TypeError) as e:
        raise DecodeError(f"malformed {envelope['type']} body ({type(e).__name__}: {e})") from None
