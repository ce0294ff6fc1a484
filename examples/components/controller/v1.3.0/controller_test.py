"""Unit tests of the controller."""

import math
import struct
import unittest

import controller
from controller import Pose
from messages import MotorCommand, Plan, Waypoint

L_ROUTE = Plan(waypoints=(Waypoint(0.0, 0.0, 0.0), Waypoint(2.0, 0.0, 0.5), Waypoint(2.0, 1.0, 0.25)))


class FollowTest(unittest.TestCase):
    def test_drives_each_leg_and_turns_at_corners(self):
        self.assertEqual(
            controller.follow(L_ROUTE),
            [
                MotorCommand(speed=0.5, turn=0.0, duration=4.0),
                MotorCommand(speed=0.0, turn=controller.TURN_RATE, duration=math.pi / 2 / controller.TURN_RATE),
                MotorCommand(speed=0.25, turn=0.0, duration=4.0),
            ],
        )

    def test_turns_the_short_way(self):
        plan = Plan(waypoints=(Waypoint(0.0, 0.0, 0.0), Waypoint(0.0, -1.0, 1.0)))
        self.assertEqual(controller.follow(plan)[0].turn, -controller.TURN_RATE)

    def test_speed_is_capped(self):
        plan = Plan(waypoints=(Waypoint(0.0, 0.0, 0.0), Waypoint(3.0, 0.0, 10.0)))
        self.assertEqual(controller.follow(plan), [MotorCommand(speed=controller.MAX_SPEED, turn=0.0, duration=2.0)])

    def test_standing_still_is_refused(self):
        plan = Plan(waypoints=(Waypoint(0.0, 0.0, 0.0), Waypoint(1.0, 0.0, 0.0)))
        with self.assertRaisesRegex(ValueError, r"waypoint 1 \(1.0, 0.0\): speed 0.0 m/s is not positive"):
            controller.follow(plan)


class DeadReckonTest(unittest.TestCase):
    def test_commands_reach_the_last_waypoint(self):
        pose = controller.dead_reckon(controller.follow(L_ROUTE))
        self.assertAlmostEqual(pose.x, 2.0)
        self.assertAlmostEqual(pose.y, 1.0)
        self.assertAlmostEqual(pose.heading, math.pi / 2)

    def test_arc_is_exact(self):
        quarter_circle = MotorCommand(speed=1.0, turn=1.0, duration=math.pi / 2)
        pose = controller.dead_reckon([quarter_circle], Pose(0.0, 0.0, 0.0))
        self.assertAlmostEqual(pose.x, 1.0)
        self.assertAlmostEqual(pose.y, 1.0)

    def test_telemetry_reports_the_end_of_the_drive(self):
        report = controller.telemetry(controller.follow(L_ROUTE))
        self.assertAlmostEqual(report.x, 2.0)
        self.assertAlmostEqual(report.y, 1.0)
        self.assertEqual(report.speed, 0.25)
        self.assertAlmostEqual(report.odometer, 3.0)


class FirmwareBlobTest(unittest.TestCase):
    def test_blob_is_deterministic(self):
        self.assertEqual(controller.firmware_blob(), controller.firmware_blob())

    def test_blob_layout(self):
        blob = controller.firmware_blob()
        self.assertEqual(blob[:4], controller.BLOB_MAGIC)
        (count,) = struct.unpack_from("<I", blob, 4)
        offset, tags = 8, []
        for _ in range(count):
            tag, length = struct.unpack_from("<4sI", blob, offset)
            tags.append(tag)
            offset += 8 + length
        self.assertEqual(offset, len(blob))
        self.assertEqual(tags, [b"GAIN", b"SCRV"])


if __name__ == "__main__":
    unittest.main()
