"""messages: the wire format shared by the robot's services and its firmware.

Every message is a frozen dataclass; `encode` turns one into bytes (a JSON
envelope carrying PROTOCOL_VERSION) and `decode` turns bytes back:

    data = messages.encode(messages.Plan(waypoints=(...)))
    plan = messages.decode(data)

Units: metres, metres per second, radians, seconds; waypoint speeds are
whole centimetres per second (since 1.6.0).
"""

from messages.codec import PROTOCOL_VERSION, DecodeError, decode, encode
from messages.types import MotorCommand, Plan, Telemetry, Waypoint

__version__ = "1.6.0"

__all__ = [
    "DecodeError",
    "MotorCommand",
    "PROTOCOL_VERSION",
    "Plan",
    "Telemetry",
    "Waypoint",
    "decode",
    "encode",
]
