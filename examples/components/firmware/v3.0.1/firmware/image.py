"""Firmware images: build one from a controller blob, read its header back."""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

FIRMWARE_VERSION = (3, 0, 1)
# Wire protocol versions (messages.PROTOCOL_VERSION) this firmware speaks.
# 3.0 drops protocol 1 and adds protocol 3.
SUPPORTED_PROTOCOLS = (2, 3)
BOARD_SUPPORT_SIZE = 12 * 1024  # bytes of board support code in every image

IMAGE_MAGIC = b"CVFW"
HEADER_FORMAT = 1
# magic, header format, protocol, 2 reserved bytes, payload length, CRC-32.
_HEADER = struct.Struct("<4sBB2xII")
HEADER_SIZE = _HEADER.size


class ImageError(ValueError):
    """An image cannot be built, or bytes are not a valid image."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says: its wire protocol, payload length and CRC-32."""

    protocol: int
    length: int
    checksum: int


def build_image(controller_blob: bytes, protocol: int) -> bytes:
    """Returns the flashable image of this firmware with `controller_blob`.

    Args:
        controller_blob: controller.firmware_blob().
        protocol: the wire protocol the image speaks (messages.PROTOCOL_VERSION).

    Returns:
        Header and payload; the same bytes for the same inputs.

    Raises:
        ImageError: this firmware does not speak `protocol`.
    """
    if protocol not in SUPPORTED_PROTOCOLS:
        raise ImageError(
            f"firmware {_version()} speaks protocols {list(SUPPORTED_PROTOCOLS)}, not {protocol}"
        )
    payload = _board_support() + controller_blob
    header = _HEADER.pack(IMAGE_MAGIC, HEADER_FORMAT, protocol, len(payload), zlib.crc32(payload))
    return header + payload


def read_header(image: bytes) -> ImageHeader:
    """Returns the header of `image` after checking magic, length and checksum; raises ImageError."""
    if len(image) < HEADER_SIZE:
        raise ImageError(f"image is {len(image)} bytes, shorter than its {HEADER_SIZE}-byte header")
    magic, header_format, protocol, length, checksum = _HEADER.unpack_from(image)
    if magic != IMAGE_MAGIC or header_format != HEADER_FORMAT:
        raise ImageError(f"not a firmware image (magic {magic!r}, header format {header_format})")
    payload = image[HEADER_SIZE:]
    if len(payload) != length:
        raise ImageError(f"payload is {len(payload)} bytes, header says {length}")
    if zlib.crc32(payload) != checksum:
        raise ImageError(f"payload CRC-32 {zlib.crc32(payload):#010x} != header {checksum:#010x}")
    return ImageHeader(protocol=protocol, length=length, checksum=checksum)


def _board_support() -> bytes:
    """Stand-in for the compiled board support code: deterministic bytes led by the version."""
    code = b"BOOT" + bytes(FIRMWARE_VERSION)
    block = hashlib.sha256(code).digest()
    while len(code) < BOARD_SUPPORT_SIZE:
        code += block
        block = hashlib.sha256(block).digest()
    return code[:BOARD_SUPPORT_SIZE]


def _version() -> str:
    return ".".join(str(part) for part in FIRMWARE_VERSION)
