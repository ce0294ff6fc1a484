"""Driving: plans to motor commands, and where those commands take the robot."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence

from messages import MotorCommand, Plan, Telemetry, Waypoint

MAX_SPEED = 1.5  # metres per second; faster legs are driven at this speed
TURN_RATE = 1.0  # radians per second, turning in place


@dataclass(frozen=True)
class Pose:
    """Where the robot is: metres east and north of the origin, heading in radians from east."""

    x: float = 0.0
    y: float = 0.0
    heading: float = 0.0


def follow(plan: Plan, heading: float = 0.0) -> List[MotorCommand]:
    """Returns the commands that drive `plan`: turn in place toward each waypoint, then drive to it.

    Args:
        plan: the route; the robot stands at its first waypoint.
        heading: where the robot faces at the start, radians from east.

    Returns:
        One turn (when the direction changes) and one straight command per leg.
    """
    commands = []
    for index, (here, there) in enumerate(zip(plan.waypoints, plan.waypoints[1:]), start=1):
        distance = math.hypot(there.x - here.x, there.y - here.y)
        if distance == 0:
            continue
        bearing = math.atan2(there.y - here.y, there.x - here.x)
        turn = _wrap(bearing - heading)
        if turn:
            commands.append(_turn_in_place(turn))
        speed = _leg_speed(index, there)
        commands.append(MotorCommand(speed=speed, turn=0.0, duration=distance / speed))
        heading = bearing
    return commands


def dead_reckon(commands: Sequence[MotorCommand], start: Pose = Pose()) -> Pose:
    """Returns the pose that `commands` reach from `start` (exact unicycle motion)."""
    pose = start
    for command in commands:
        pose = _move(pose, command.speed, command.turn, command.duration)
    return pose


def telemetry(commands: Sequence[MotorCommand], start: Pose = Pose()) -> Telemetry:
    """Returns the telemetry the robot reports once it has executed `commands` from `start`."""
    pose = dead_reckon(commands, start)
    return Telemetry(
        x=pose.x,
        y=pose.y,
        heading=pose.heading,
        speed=commands[-1].speed if commands else 0.0,
        odometer=sum(abs(c.speed) * c.duration for c in commands),
    )


def _turn_in_place(angle: float) -> MotorCommand:
    return MotorCommand(speed=0.0, turn=math.copysign(TURN_RATE, angle), duration=abs(angle) / TURN_RATE)


def _leg_speed(index: int, waypoint: Waypoint) -> float:
    if waypoint.speed <= 0:
        raise ValueError(
            f"waypoint {index} ({waypoint.x}, {waypoint.y}): speed {waypoint.speed} m/s is not positive"
        )
    return min(float(waypoint.speed), MAX_SPEED)


def _move(pose: Pose, speed: float, turn: float, duration: float) -> Pose:
    heading = pose.heading + turn * duration
    if turn == 0:
        dx = speed * duration * math.cos(pose.heading)
        dy = speed * duration * math.sin(pose.heading)
    else:
        radius = speed / turn
        dx = radius * (math.sin(heading) - math.sin(pose.heading))
        dy = radius * (math.cos(pose.heading) - math.cos(heading))
    return Pose(x=pose.x + dx, y=pose.y + dy, heading=_wrap(heading))


def _wrap(angle: float) -> float:
    """`angle` in (-pi, pi]."""
    wrapped = math.remainder(angle, 2 * math.pi)
    return math.pi if wrapped == -math.pi else wrapped
