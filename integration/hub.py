"""The active configuration, as the hub @convoy_manifest records it for this build.

    from integration import hub

    active = hub.load()
    active.name                          # "rover"
    active.components["messages"].version  # "v1.4.0"

Reads configuration.json from the test's runfiles: a target that uses this
library has @convoy_manifest//:configuration.json in its data through it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

HUB = "convoy_manifest"


@dataclass(frozen=True)
class Pin:
    """Where one component comes from: its source kind, version and immutable pin."""

    source: str
    version: str
    pin: str


@dataclass(frozen=True)
class ActiveConfiguration:
    """The configuration under test and the pin of each of its components."""

    name: str
    components: Dict[str, Pin]


def load() -> ActiveConfiguration:
    """Returns the active configuration recorded by the hub; raises FileNotFoundError outside a Bazel test."""
    data = json.loads(_configuration_json().read_text(encoding="utf-8"))
    components = {
        name: Pin(source=pin["source"], version=pin["version"], pin=pin["pin"])
        for name, pin in data["components"].items()
    }
    return ActiveConfiguration(name=data["configuration"], components=components)


def _configuration_json() -> Path:
    """configuration.json in the runfiles; under bzlmod the hub's directory has a canonical name."""
    if "TEST_SRCDIR" not in os.environ:
        raise FileNotFoundError("TEST_SRCDIR is not set: the hub's configuration.json is found in a Bazel test's runfiles")
    srcdir = Path(os.environ["TEST_SRCDIR"])
    path = srcdir / HUB / "configuration.json"
    if path.exists():
        return path
    for candidate in sorted(srcdir.glob(f"*{HUB}/configuration.json")):
        return candidate
    raise FileNotFoundError(f"no {HUB}/configuration.json under {srcdir}: is @{HUB}//:configuration.json in data?")
