"""The message types. Units: metres, metres per second, radians, seconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class Waypoint:
    """A point of a route and the speed of the leg that ends there.

    Attributes:
        x: metres east of the map origin.
        y: metres north of the map origin.
        speed: metres per second on the leg from the previous waypoint to
            this one (ignored on the first waypoint, the start).
    """

    x: float
    y: float
    speed: float


@dataclass(frozen=True)
class Plan:
    """A route: the robot starts at the first waypoint and drives to the last."""

    waypoints: Tuple[Waypoint, ...]
    plan_id: str = ""


@dataclass(frozen=True)
class MotorCommand:
    """Drive at `speed` (m/s forward) turning at `turn` (rad/s, counter-clockwise) for `duration` seconds."""

    speed: float
    turn: float
    duration: float


@dataclass(frozen=True)
class Telemetry:
    """Where the robot is and how it moves.

    Attributes:
        x: metres east of the map origin.
        y: metres north of the map origin.
        heading: radians counter-clockwise from east.
        speed: metres per second forward.
        odometer: metres driven since start.
    """

    x: float
    y: float
    heading: float
    speed: float
    odometer: float
