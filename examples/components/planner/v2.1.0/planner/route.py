"""Axis-aligned routes: the warehouse aisles run east-west and north-south."""

from __future__ import annotations

from typing import List, Tuple

from messages import Plan, Waypoint

Point = Tuple[float, float]

CRUISE_SPEED = 0.6  # metres per second


def plan_route(start: Point, goal: Point, speed: float = CRUISE_SPEED, plan_id: str = "") -> Plan:
    """Returns a plan from `start` to `goal`: along x first, then along y.

    Args:
        start: (x, y) in metres, where the robot is.
        goal: (x, y) in metres, where it should go.
        speed: metres per second on every leg.
        plan_id: a name for the plan, carried in the message.

    Returns:
        A Plan whose first waypoint is `start` and last is `goal`.
    """
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed} m/s")
    waypoints = [Waypoint(x=start[0], y=start[1], speed=0.0)]
    waypoints += [Waypoint(x=x, y=y, speed=speed) for x, y in _corners(start, goal)]
    return Plan(waypoints=tuple(waypoints), plan_id=plan_id)


def _corners(start: Point, goal: Point) -> List[Point]:
    """The points after `start` where the route turns or ends; no zero-length legs."""
    corners = []
    if goal[0] != start[0]:
        corners.append((goal[0], start[1]))
    if goal[1] != start[1]:
        corners.append(goal)
    return corners
