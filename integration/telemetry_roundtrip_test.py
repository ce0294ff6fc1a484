"""controller -> messages -> decode: what the controller reports reaches the ground station intact.

Runs in every configuration (no planner needed): the route is written by
hand, as the drone's ground station sends it.
"""

import unittest

import controller
import messages

ROUTE = messages.Plan(
    waypoints=(
        messages.Waypoint(x=0.0, y=0.0, speed=0.0),
        messages.Waypoint(x=2.0, y=0.0, speed=0.5),
        messages.Waypoint(x=2.0, y=1.5, speed=0.5),
        messages.Waypoint(x=0.5, y=1.5, speed=1.0),
    ),
    plan_id="survey",
)


class TelemetryRoundTripTest(unittest.TestCase):
    def setUp(self):
        self.commands = controller.follow(ROUTE)

    def test_motor_commands_survive_the_wire(self):
        for command in self.commands:
            self.assertEqual(messages.decode(messages.encode(command)), command)

    def test_telemetry_survives_the_wire(self):
        report = controller.telemetry(self.commands)
        self.assertEqual(messages.decode(messages.encode(report)), report)

    def test_decoded_telemetry_reports_the_end_of_the_route(self):
        report = messages.decode(messages.encode(controller.telemetry(self.commands)))
        self.assertIsInstance(report, messages.Telemetry)
        self.assertAlmostEqual(report.x, 0.5)
        self.assertAlmostEqual(report.y, 1.5)
        self.assertAlmostEqual(report.odometer, 5.0)
        self.assertEqual(report.speed, 1.0)


if __name__ == "__main__":
    unittest.main()
