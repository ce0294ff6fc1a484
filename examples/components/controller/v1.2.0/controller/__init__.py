"""controller: turns plans into motor commands, and ships its tables to the firmware.

    commands = controller.follow(plan)            # [messages.MotorCommand]
    report = controller.telemetry(commands)       # messages.Telemetry at the end
    blob = controller.firmware_blob()             # bytes for firmware.build_image
"""

from controller.blob import BLOB_MAGIC, firmware_blob
from controller.drive import MAX_SPEED, TURN_RATE, Pose, dead_reckon, follow, telemetry

__version__ = "1.2.0"

__all__ = [
    "BLOB_MAGIC",
    "MAX_SPEED",
    "TURN_RATE",
    "Pose",
    "dead_reckon",
    "firmware_blob",
    "follow",
    "telemetry",
]
