"""The controller's part of the firmware image: the tables its on-board loop reads.

Layout: BLOB_MAGIC, a little-endian u32 section count, then per section a
4-byte tag, a u32 length and that many bytes of little-endian float32s.
"""

from __future__ import annotations

import struct
from typing import List

BLOB_MAGIC = b"CTRL"
GAIN_ENTRIES = 10240  # speed steps of the gain schedule (40 KiB)
# Since 1.3.0 the on-board loop ramps speed along a precomputed S-curve
# instead of stepping it: smoother starts and stops (32 KiB).
S_CURVE_ENTRIES = 8192


def firmware_blob() -> bytes:
    """Returns the blob that firmware.build_image packs into the image; the same bytes every time."""
    sections = [_section(b"GAIN", _gain_schedule()), _section(b"SCRV", _s_curve())]
    return BLOB_MAGIC + struct.pack("<I", len(sections)) + b"".join(sections)


def _section(tag: bytes, values: List[float]) -> bytes:
    data = struct.pack(f"<{len(values)}f", *values)
    return struct.pack("<4sI", tag, len(data)) + data


def _gain_schedule() -> List[float]:
    """Proportional gain per speed step: softer at speed, so the robot does not oscillate."""
    return [2.0 / (1.0 + 3.0 * i / GAIN_ENTRIES) for i in range(GAIN_ENTRIES)]


def _s_curve() -> List[float]:
    """Fraction of the target speed at each step of a ramp (smootherstep: no jerk at either end)."""
    steps = [i / (S_CURVE_ENTRIES - 1) for i in range(S_CURVE_ENTRIES)]
    return [t * t * t * (t * (6.0 * t - 15.0) + 10.0) for t in steps]
