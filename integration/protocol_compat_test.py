"""The active configuration is coherent: its firmware speaks the wire protocol, its versions are the pins.

Depends on every component of the active configuration (see BUILD.bazel),
so it checks what this build really links against the hub's record of the
manifest: a component whose repository is not at its pin fails here.
"""

import importlib
import os
import unittest

import firmware
import messages
from integration import hub


class ProtocolCompatTest(unittest.TestCase):
    def test_firmware_speaks_the_messages_protocol(self):
        self.assertIn(
            messages.PROTOCOL_VERSION,
            firmware.SUPPORTED_PROTOCOLS,
            f"messages {messages.__version__} speaks protocol {messages.PROTOCOL_VERSION}; firmware "
            f"{firmware.__version__} speaks {list(firmware.SUPPORTED_PROTOCOLS)}",
        )


class PinsTest(unittest.TestCase):
    def setUp(self):
        self.active = hub.load()

    def test_hub_and_environment_name_the_same_configuration(self):
        self.assertEqual(self.active.name, os.environ["CONVOY_CONFIGURATION"])

    def test_every_component_is_at_its_pin(self):
        for name, pin in sorted(self.active.components.items()):
            with self.subTest(component=name):
                seen = "v" + importlib.import_module(name).__version__
                why = f"{name}: this build sees {seen}; configuration {self.active.name} pins {pin.version}"
                self.assertEqual(seen, pin.version, why)


if __name__ == "__main__":
    unittest.main()
