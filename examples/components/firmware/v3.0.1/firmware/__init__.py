"""firmware: board support and the image builder.

    image = firmware.build_image(controller.firmware_blob(), messages.PROTOCOL_VERSION)

The image is a header (magic, header format, protocol, payload length, CRC-32
of the payload) followed by the payload: this firmware's board support code
and the controller's blob. The header is the same for every board; a board's
bootloader checks it and refuses what does not fit its flash.
"""

from firmware.image import (
    FIRMWARE_VERSION,
    HEADER_SIZE,
    IMAGE_MAGIC,
    SUPPORTED_PROTOCOLS,
    ImageError,
    ImageHeader,
    build_image,
    read_header,
)

__version__ = "3.0.1"

__all__ = [
    "FIRMWARE_VERSION",
    "HEADER_SIZE",
    "IMAGE_MAGIC",
    "SUPPORTED_PROTOCOLS",
    "ImageError",
    "ImageHeader",
    "build_image",
    "read_header",
]
