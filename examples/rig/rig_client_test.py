"""Unit tests of the rig client: which rig it picks, and what it reports."""

import os
import socket
import threading
import unittest
import zlib
from unittest import mock

from examples.rig import rig_client, rig_sim

RIG_ENV = (rig_client.ADDRESS_ENV, rig_client.BOARD_ENV, rig_client.CONFIGURATION_ENV)


def make_image(payload: bytes, protocol: int = 2) -> bytes:
    """An image with a valid header, as firmware.build_image makes."""
    magic, header_format = rig_sim.IMAGE_MAGIC, rig_sim.IMAGE_HEADER_FORMAT
    return rig_sim.IMAGE_HEADER.pack(magic, header_format, protocol, len(payload), zlib.crc32(payload)) + payload


def rig_environment(**values):
    """Patches os.environ: the rig variables are exactly `values`."""
    environ = {k: v for k, v in os.environ.items() if k not in RIG_ENV}
    environ.update(values)
    return mock.patch.dict(os.environ, environ, clear=True)


class LocalSimulatorTest(unittest.TestCase):
    def test_board_comes_from_the_configuration(self):
        with rig_environment(CONVOY_CONFIGURATION="drone"), rig_client.connect() as rig:
            self.assertEqual(rig.hello()["board"], "drone")

    def test_rig_board_wins_over_the_configuration(self):
        with rig_environment(CONVOY_CONFIGURATION="drone", CONVOY_RIG_BOARD="rover"), rig_client.connect() as rig:
            self.assertEqual(rig.hello()["board"], "rover")

    def test_close_stops_the_simulator(self):
        with rig_environment(CONVOY_RIG_BOARD="rover"):
            rig = rig_client.connect()
        rig.close()
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(rig.address, timeout=2).close()

    def test_flash_and_run(self):
        with rig_environment(CONVOY_RIG_BOARD="rover"), rig_client.connect() as rig:
            self.assertEqual(rig.flash(make_image(b"payload")), {"ok": True, "size": 23, "protocol": 2})
            samples = rig.run([{"speed": 0.5, "turn": 0.0, "duration": 2.0}], period=0.5)
        self.assertEqual(len(samples), 4)
        self.assertAlmostEqual(samples[-1]["x"], 1.0)

    def test_refusal_carries_the_rig_reason(self):
        with rig_environment(CONVOY_RIG_BOARD="drone"), rig_client.connect() as rig:
            with self.assertRaisesRegex(rig_client.RigError, "refused flash: image is 70,016 bytes; the drone board"):
                rig.flash(make_image(bytes(70000)))

    def test_no_board_named(self):
        with rig_environment(), self.assertRaisesRegex(rig_client.RigError, "no rig: set CONVOY_RIG_ADDRESS"):
            rig_client.connect()


class RigAddressTest(unittest.TestCase):
    def setUp(self):
        self.server = rig_sim.RigServer(rig_sim.Rig(rig_sim.BOARDS["drone"]))
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(thread.join)
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)

    def test_address_wins_and_starts_no_simulator(self):
        with rig_environment(CONVOY_RIG_ADDRESS=self.server.address, CONVOY_RIG_BOARD="rover"):
            with mock.patch("subprocess.Popen") as popen, rig_client.connect() as rig:
                self.assertEqual(rig.hello()["board"], "drone")
        popen.assert_not_called()



class BadAddressTest(unittest.TestCase):
    def test_malformed_address(self):
        with rig_environment(CONVOY_RIG_ADDRESS="rig-7"):
            with self.assertRaisesRegex(rig_client.RigError, "'rig-7' is not host:port"):
                rig_client.connect()

    def test_unreachable_address(self):
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            address = "127.0.0.1:%d" % unused.getsockname()[1]
        with rig_environment(CONVOY_RIG_ADDRESS=address):
            with self.assertRaisesRegex(rig_client.RigError, f"cannot reach the rig at {address}"):
                rig_client.connect(timeout=2)


if __name__ == "__main__":
    unittest.main()
