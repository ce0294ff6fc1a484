"""Unit tests of the simulated rig: its bootloader, its physics, its request handling."""

import base64
import math
import unittest
import zlib

from examples.rig import rig_sim

DRONE = rig_sim.BOARDS["drone"]
ROVER = rig_sim.BOARDS["rover"]


def make_image(payload: bytes, protocol: int = 2) -> bytes:
    """An image with a valid header, as firmware.build_image makes."""
    magic, header_format = rig_sim.IMAGE_MAGIC, rig_sim.IMAGE_HEADER_FORMAT
    return rig_sim.IMAGE_HEADER.pack(magic, header_format, protocol, len(payload), zlib.crc32(payload)) + payload


class CheckImageTest(unittest.TestCase):
    def test_valid_image_is_accepted(self):
        self.assertEqual(rig_sim.check_image(DRONE, make_image(b"x" * 1000, protocol=1)), 1)

    def test_image_larger_than_flash_is_refused(self):
        image = make_image(b"x" * DRONE.flash_size)
        with self.assertRaisesRegex(rig_sim.Refused, "image is 65,552 bytes; the drone board has 65,536 bytes of"):
            rig_sim.check_image(DRONE, image)
        self.assertEqual(rig_sim.check_image(ROVER, image), 2)

    def test_corrupt_image_is_refused(self):
        image = bytearray(make_image(b"payload"))
        image[-1] ^= 0xFF
        with self.assertRaisesRegex(rig_sim.Refused, "image is corrupt"):
            rig_sim.check_image(DRONE, bytes(image))

    def test_foreign_bytes_are_refused(self):
        with self.assertRaisesRegex(rig_sim.Refused, "not a firmware image"):
            rig_sim.check_image(DRONE, b"\x7fELF" + bytes(60))
        with self.assertRaisesRegex(rig_sim.Refused, "shorter than the 16-byte header"):
            rig_sim.check_image(DRONE, b"CVFW")

    def test_protocol_the_board_cannot_speak_is_refused(self):
        with self.assertRaisesRegex(rig_sim.Refused, r"protocol 3; the drone board speaks \[1, 2\]"):
            rig_sim.check_image(DRONE, make_image(b"x", protocol=3))


class SimulateTest(unittest.TestCase):
    def test_samples_every_period_and_at_the_end(self):
        samples = rig_sim.simulate(ROVER, rig_sim.State(), [{"speed": 1.0, "turn": 0.0, "duration": 0.25}], 0.1)
        self.assertEqual([round(s.t, 9) for s in samples], [0.1, 0.2, 0.25])
        self.assertAlmostEqual(samples[-1].x, 0.25)

    def test_turn_then_drive_reaches_the_point(self):
        commands = [
            {"speed": 0.0, "turn": 1.0, "duration": math.pi / 2},
            {"speed": 0.5, "turn": 0.0, "duration": 4.0},
        ]
        end = rig_sim.simulate(ROVER, rig_sim.State(), commands, 0.1)[-1]
        self.assertAlmostEqual(end.x, 0.0)
        self.assertAlmostEqual(end.y, 2.0)
        self.assertLess(end.battery, 1.0)

    def test_speed_saturates_at_the_board_maximum(self):
        end = rig_sim.simulate(ROVER, rig_sim.State(), [{"speed": 9.0, "turn": 0.0, "duration": 1.0}], 0.5)[-1]
        self.assertEqual(end.speed, ROVER.max_speed)
        self.assertAlmostEqual(end.x, ROVER.max_speed)

    def test_bad_commands_are_refused(self):
        bad = ({"speed": 1.0}, {"speed": "fast", "turn": 0, "duration": 1}, {"speed": 1, "turn": 0, "duration": -1})
        for command in bad:
            with self.subTest(command), self.assertRaisesRegex(rig_sim.Refused, "command"):
                rig_sim.simulate(ROVER, rig_sim.State(), [command], 0.1)

    def test_endless_scenario_is_refused(self):
        with self.assertRaisesRegex(rig_sim.Refused, "longer than 600.0 s"):
            rig_sim.simulate(ROVER, rig_sim.State(), [{"speed": 0, "turn": 0, "duration": 601}], 0.1)


class RigTest(unittest.TestCase):
    def setUp(self):
        self.rig = rig_sim.Rig(DRONE)

    def flash(self, image):
        return self.rig.handle({"op": "flash", "image": base64.b64encode(image).decode()})

    def test_hello_describes_the_board(self):
        self.assertEqual(
            self.rig.handle({"op": "hello"}),
            {"ok": True, "board": "drone", "flash_size": 65536, "protocols": [1, 2], "max_speed": 4.0},
        )

    def test_run_needs_a_flashed_image(self):
        reply = self.rig.handle({"op": "run", "commands": []})
        self.assertEqual(reply, {"ok": False, "error": "nothing is flashed: flash an image first"})

    def test_refused_flash_erases_the_board(self):
        self.assertEqual(self.flash(make_image(b"ok")), {"ok": True, "size": 18, "protocol": 2})
        self.assertFalse(self.flash(make_image(b"x" * DRONE.flash_size))["ok"])
        self.assertFalse(self.rig.handle({"op": "run", "commands": []})["ok"])

    def test_runs_continue_from_the_last_pose_until_reset(self):
        self.flash(make_image(b"ok"))
        forward = {"op": "run", "commands": [{"speed": 1.0, "turn": 0.0, "duration": 1.0}], "period": 1.0}
        self.rig.handle(forward)
        self.assertAlmostEqual(self.rig.handle(forward)["telemetry"][-1]["x"], 2.0)
        self.rig.handle({"op": "reset"})
        self.flash(make_image(b"ok"))
        self.assertAlmostEqual(self.rig.handle(forward)["telemetry"][-1]["x"], 1.0)

    def test_bad_requests_are_refused(self):
        self.assertIn("unknown op 'dance'", self.rig.handle({"op": "dance"})["error"])
        self.assertIn("base64", self.rig.handle({"op": "flash", "image": "%%%"})["error"])
        self.flash(make_image(b"ok"))
        self.assertIn("period must be", self.rig.handle({"op": "run", "commands": [], "period": 0})["error"])


if __name__ == "__main__":
    unittest.main()
