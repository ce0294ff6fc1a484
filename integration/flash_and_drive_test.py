"""Hardware in the loop: flash the configuration's image onto its rig and drive a route.

The image is what ships: this configuration's firmware with the controller's
blob, speaking the messages protocol. The rig's bootloader refuses an image
that does not fit the board's flash or speaks a protocol the board cannot.

Whose failure (examples/rig/rig_client.py): a rig that cannot be reached or
whose flash fails (RigUnavailable) makes this test exit 75, the rig's
failure, which convoy's lab runs again on another rig; a refused image or a
robot off its route is an ordinary failure, the change's.
"""

import dataclasses
import os
import unittest

import controller
import firmware
import messages
from examples.rig import rig_client

ROUTE = messages.Plan(
    waypoints=(
        messages.Waypoint(x=0.0, y=0.0, speed=0.0),
        messages.Waypoint(x=1.5, y=0.0, speed=0.5),
        messages.Waypoint(x=1.5, y=1.0, speed=0.5),
    ),
    plan_id="bench-square",
)
TOLERANCE = 0.01  # metres


class FlashAndDriveTest(unittest.TestCase):
    def setUp(self):
        self.rig = rig_client.connect()
        self.addCleanup(self.rig.close)
        self.rig.reset()

    def flash(self):
        image = firmware.build_image(controller.firmware_blob(), messages.PROTOCOL_VERSION)
        what = f"firmware {firmware.__version__} + controller {controller.__version__} ({len(image):,} bytes)"
        try:
            return self.rig.flash(image)
        except rig_client.RigUnavailable:
            raise  # the rig's failure (exit 75), not the image's
        except rig_client.RigError as e:
            self.fail(f"the rig refused the image of {what}: {e}")

    def test_rig_is_the_configurations_board(self):
        configuration = os.environ["CONVOY_CONFIGURATION"]
        board = self.rig.hello()["board"]
        self.assertEqual(board, rig_client.BOARD_OF_CONFIGURATION[configuration], f"{configuration} got a {board} rig")

    def test_image_flashes(self):
        self.assertEqual(self.flash()["protocol"], messages.PROTOCOL_VERSION)

    def test_robot_drives_the_route(self):
        self.flash()
        commands = controller.follow(ROUTE)
        samples = self.rig.run([dataclasses.asdict(c) for c in commands])
        end, goal = samples[-1], ROUTE.waypoints[-1]
        self.assertLess(abs(end["x"] - goal.x), TOLERANCE, f"ended at x={end['x']:.3f}, goal {goal.x}")
        self.assertLess(abs(end["y"] - goal.y), TOLERANCE, f"ended at y={end['y']:.3f}, goal {goal.y}")
        self.assertAlmostEqual(end["t"], sum(c.duration for c in commands))
        self.assertLess(end["battery"], 1.0)


if __name__ == "__main__":
    rig_client.main()
