"""Unit tests of the route planner."""

import math
import unittest

import planner
from messages import Waypoint


def _length(plan):
    points = [(w.x, w.y) for w in plan.waypoints]
    return sum(math.dist(a, b) for a, b in zip(points, points[1:]))


class PlanRouteTest(unittest.TestCase):
    def test_route_runs_along_x_then_y(self):
        plan = planner.plan_route(start=(0.0, 0.0), goal=(1.5, 2.0), plan_id="p")
        self.assertEqual(
            plan.waypoints,
            (
                Waypoint(0.0, 0.0, 0.0),
                Waypoint(1.5, 0.0, 0.6),
                Waypoint(1.5, 1.0, 0.6),
                Waypoint(1.5, 2.0, 0.3),
            ),
        )
        self.assertEqual(plan.plan_id, "p")

    def test_long_legs_are_split_evenly(self):
        plan = planner.plan_route(start=(0.0, 0.0), goal=(3.0, 4.0))
        points = [(w.x, w.y) for w in plan.waypoints]
        self.assertEqual(points, [(0.0, 0.0), (1.5, 0.0), (3.0, 0.0), (3.0, 2.0), (3.0, 3.0), (3.0, 4.0)])

    def test_short_last_leg_is_the_approach(self):
        plan = planner.plan_route(start=(0.0, 0.0), goal=(0.5, 0.0))
        self.assertEqual(plan.waypoints[1:], (Waypoint(0.5, 0.0, planner.CRUISE_SPEED * planner.APPROACH_FACTOR),))

    def test_route_is_manhattan_length(self):
        self.assertAlmostEqual(_length(planner.plan_route((1.0, 1.0), (-2.0, 5.0))), 7.0)

    def test_straight_route_has_no_zero_length_leg(self):
        plan = planner.plan_route((0.0, 0.0), (0.0, 1.5))
        self.assertEqual([(w.x, w.y) for w in plan.waypoints], [(0.0, 0.0), (0.0, 0.5), (0.0, 1.5)])

    def test_speed_must_be_positive(self):
        with self.assertRaisesRegex(ValueError, "speed must be positive, got 0 m/s"):
            planner.plan_route((0.0, 0.0), (1.0, 0.0), speed=0)


if __name__ == "__main__":
    unittest.main()
