"""Unit tests of the firmware image builder."""

import struct
import unittest

import firmware

BLOB = b"CTRL" + bytes(range(256)) * 4


class BuildImageTest(unittest.TestCase):
    def test_header_describes_the_payload(self):
        protocol = firmware.SUPPORTED_PROTOCOLS[-1]
        image = firmware.build_image(BLOB, protocol)
        header = firmware.read_header(image)
        self.assertEqual(header.protocol, protocol)
        self.assertEqual(header.length, len(image) - firmware.HEADER_SIZE)
        self.assertTrue(image.endswith(BLOB))

    def test_image_is_deterministic(self):
        protocol = firmware.SUPPORTED_PROTOCOLS[0]
        self.assertEqual(firmware.build_image(BLOB, protocol), firmware.build_image(BLOB, protocol))

    def test_unsupported_protocol_is_refused(self):
        unsupported = max(firmware.SUPPORTED_PROTOCOLS) + 1
        with self.assertRaisesRegex(firmware.ImageError, f"speaks protocols .*, not {unsupported}"):
            firmware.build_image(BLOB, unsupported)

    def test_board_support_carries_the_version(self):
        image = firmware.build_image(BLOB, firmware.SUPPORTED_PROTOCOLS[0])
        start = firmware.HEADER_SIZE
        self.assertEqual(image[start : start + 7], b"BOOT" + bytes(firmware.FIRMWARE_VERSION))


class ReadHeaderTest(unittest.TestCase):
    def setUp(self):
        self.image = firmware.build_image(BLOB, firmware.SUPPORTED_PROTOCOLS[0])

    def test_corrupt_payload_is_refused(self):
        corrupt = self.image[:-1] + bytes([self.image[-1] ^ 0xFF])
        with self.assertRaisesRegex(firmware.ImageError, "payload CRC-32"):
            firmware.read_header(corrupt)

    def test_truncated_image_is_refused(self):
        with self.assertRaisesRegex(firmware.ImageError, "header says"):
            firmware.read_header(self.image[:-10])
        with self.assertRaisesRegex(firmware.ImageError, "shorter than its 16-byte header"):
            firmware.read_header(self.image[:5])

    def test_other_bytes_are_refused(self):
        with self.assertRaisesRegex(firmware.ImageError, "not a firmware image"):
            firmware.read_header(struct.pack("<4s12x", b"ELF\x7f"))


if __name__ == "__main__":
    unittest.main()
