"""planner -> messages -> controller: a planned route makes the controller drive the planned speeds.

The plan crosses the wire as it does on the robot (encode, decode), so a
change in the messages wire format that the planner and the controller read
differently shows up here as wrong speeds or a wrong trip time.
"""

import math
import unittest

import controller
import messages
import planner

# (start, goal) in metres: a corner, a long aisle, a route back toward the origin.
ROUTES = (
    ((0.0, 0.0), (3.0, 4.0)),
    ((0.0, 0.0), (0.0, 5.0)),
    ((1.0, 1.0), (-2.0, -1.5)),
)


def _legs(plan):
    """(length in metres, planned speed) of each leg of `plan` that has a length."""
    pairs = zip(plan.waypoints, plan.waypoints[1:])
    return [(math.hypot(b.x - a.x, b.y - a.y), b.speed) for a, b in pairs if (a.x, a.y) != (b.x, b.y)]


class PlanToMotionTest(unittest.TestCase):
    def drive(self, start, goal):
        plan = planner.plan_route(start, goal, plan_id=f"{start}->{goal}")
        received = messages.decode(messages.encode(plan))
        return plan, controller.follow(received)

    def test_controller_drives_the_planned_speed_on_every_leg(self):
        for start, goal in ROUTES:
            with self.subTest(start=start, goal=goal):
                plan, commands = self.drive(start, goal)
                driven = [c.speed for c in commands if c.speed]
                planned = [min(speed, controller.MAX_SPEED) for _, speed in _legs(plan)]
                self.assertEqual(len(driven), len(planned), "one straight command per planned leg")
                for leg, (got, want) in enumerate(zip(driven, planned), start=1):
                    self.assertAlmostEqual(
                        got, want, msg=f"leg {leg}: the controller drives {got} m/s, the planner planned {want} m/s"
                    )

    def test_trip_takes_the_planned_time(self):
        for start, goal in ROUTES:
            with self.subTest(start=start, goal=goal):
                plan, commands = self.drive(start, goal)
                driving = sum(c.duration for c in commands if c.speed)
                planned = sum(length / min(speed, controller.MAX_SPEED) for length, speed in _legs(plan))
                self.assertAlmostEqual(driving, planned, msg=f"driving takes {driving:.2f} s, planned {planned:.2f} s")

    def test_controller_arrives_at_the_goal(self):
        for start, goal in ROUTES:
            with self.subTest(start=start, goal=goal):
                _, commands = self.drive(start, goal)
                end = controller.dead_reckon(commands, controller.Pose(x=start[0], y=start[1]))
                self.assertAlmostEqual(end.x, goal[0])
                self.assertAlmostEqual(end.y, goal[1])


if __name__ == "__main__":
    unittest.main()
