"""Axis-aligned routes: the warehouse aisles run east-west and north-south."""

from __future__ import annotations

import math
from typing import List, Tuple

from messages import Plan, Waypoint

Point = Tuple[float, float]

CRUISE_SPEED = 0.6  # metres per second
# Longest leg, metres: the controller re-checks its position at every
# waypoint, so long aisles get intermediate ones (since 2.2.0).
MAX_LEG = 2.0
# The last APPROACH metres are driven at APPROACH_FACTOR of the speed, so the
# rover arrives gently (since 2.3.0).
APPROACH = 1.0
APPROACH_FACTOR = 0.5


def plan_route(start: Point, goal: Point, speed: float = CRUISE_SPEED, plan_id: str = "") -> Plan:
    """Returns a plan from `start` to `goal`: along x first, then along y, in legs of at most MAX_LEG.

    The last APPROACH metres are a leg of their own, at APPROACH_FACTOR * speed.

    Args:
        start: (x, y) in metres, where the robot is.
        goal: (x, y) in metres, where it should go.
        speed: metres per second on every leg but the approach.
        plan_id: a name for the plan, carried in the message.

    Returns:
        A Plan whose first waypoint is `start` and last is `goal`.
    """
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed} m/s")
    waypoints = [Waypoint(x=start[0], y=start[1], speed=0.0)]
    points = _approach(start, _split(start, _corners(start, goal)))
    last = len(points) - 1
    waypoints += [
        Waypoint(x=x, y=y, speed=speed * APPROACH_FACTOR if i == last else speed)
        for i, (x, y) in enumerate(points)
    ]
    return Plan(waypoints=tuple(waypoints), plan_id=plan_id)


def _corners(start: Point, goal: Point) -> List[Point]:
    """The points after `start` where the route turns or ends; no zero-length legs."""
    corners = []
    if goal[0] != start[0]:
        corners.append((goal[0], start[1]))
    if goal[1] != start[1]:
        corners.append(goal)
    return corners


def _split(start: Point, corners: List[Point]) -> List[Point]:
    """`corners` with points added so that no leg is longer than MAX_LEG."""
    points = []
    for corner in corners:
        previous = points[-1] if points else start
        pieces = math.ceil(math.dist(previous, corner) / MAX_LEG)
        points += [_between(previous, corner, i / pieces) for i in range(1, pieces)]
        points.append(corner)
    return points


def _approach(start: Point, points: List[Point]) -> List[Point]:
    """`points` with one added APPROACH metres before the goal, if the last leg is longer."""
    if not points:
        return points
    previous = points[-2] if len(points) > 1 else start
    goal = points[-1]
    length = math.dist(previous, goal)
    if length <= APPROACH:
        return points
    return points[:-1] + [_between(goal, previous, APPROACH / length), goal]


def _between(a: Point, b: Point, fraction: float) -> Point:
    return (a[0] + (b[0] - a[0]) * fraction, a[1] + (b[1] - a[1]) * fraction)
