"""What moved between two locks: each (configuration, component) whose
version or pin differs, as a `PinChange`.

    for change in pin_changes(old_lock, new_lock):      # sorted by configuration, component
        print(change.describe())     # "rover/planner: v2.1.0 (1a2b3c4d) -> v2.2.0 (5e6f7a8b)"

A lock is the parsed JSON of manifests/manifest.lock.json or a
convoy.lock.Lock; None as the old lock (no previous release) makes
everything new. The release notes (convoy.release), the CHANGELOG entry of
a candidate (convoy.candidate) and each component's own commits between its
pins (convoy.changes: `changes_for(pin_changes(old, new), new, old,
cache_dir=checkout / COMPONENT_CACHE)`) all start from these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from convoy.lock import configuration_entries

_HEX_PIN = re.compile(r"[0-9a-f]{40}|[0-9a-fA-F]{64}")
_PIN_KEYS = ("commit", "sha256", "path")  # what pins a component, by source
SHORT_PIN = 8
COMPONENT_CACHE = ".convoy/cache/components"  # convoy.changes' clones of the components' remotes


@dataclass(frozen=True)
class PinChange:
    """A component whose pin differs between two locks, in one configuration.

    None on the old side: the component (or configuration) is new; on the new
    side: it is gone. A pin is a commit (git), a sha256 (archive) or a path
    (local).
    """

    configuration: str
    component: str
    old_version: Optional[str]
    new_version: Optional[str]
    old_pin: Optional[str]
    new_pin: Optional[str]

    def describe(self) -> str:
        """e.g. "rover/planner: v2.1.0 (1a2b3c4d) -> v2.2.0 (5e6f7a8b)"."""
        old = _side(self.old_version, self.old_pin)
        new = _side(self.new_version, self.new_pin)
        return f"{self.configuration}/{self.component}: {old} -> {new}"


def pin_changes(old_lock: Optional[Any], new_lock: Any) -> list[PinChange]:
    """Every (configuration, component) whose version or pin differs between
    two locks, sorted by configuration then component; None as old_lock (no
    previous release) makes everything new.

    A lock is the parsed JSON of manifests/manifest.lock.json
    ({"configurations": {name: {"components": {component: {...}}}}}) or a
    convoy.lock.Lock.
    """
    old = configuration_entries(old_lock) if old_lock is not None else {}
    new = configuration_entries(new_lock)
    changes = []
    for configuration in sorted(set(old) | set(new)):
        old_components = old.get(configuration, {})
        new_components = new.get(configuration, {})
        for component in sorted(set(old_components) | set(new_components)):
            before, after = old_components.get(component), new_components.get(component)
            old_side = (_str(before, "version"), _pin(before)) if before is not None else (None, None)
            new_side = (_str(after, "version"), _pin(after)) if after is not None else (None, None)
            if old_side != new_side or (before is None) != (after is None):
                changes.append(PinChange(configuration, component, old_side[0], new_side[0], old_side[1],
                                         new_side[1]))
    return changes


def short_pin(pin: Optional[str]) -> Optional[str]:
    """A commit or sha256 cut to 8 characters; a path as it is."""
    if pin is not None and _HEX_PIN.fullmatch(pin):
        return pin[:SHORT_PIN]
    return pin


def _side(version: Optional[str], pin: Optional[str]) -> str:
    if version is None and pin is None:
        return "(none)"
    short = short_pin(pin)
    if version is None:
        return f"({short})"
    return f"{version} ({short})" if short else version


def _pin(fields: Optional[Mapping[str, Any]]) -> Optional[str]:
    for key in _PIN_KEYS:
        value = _str(fields, key)
        if value:
            return value
    return None


def _str(fields: Optional[Mapping[str, Any]], key: str) -> Optional[str]:
    if fields is None:
        return None
    value = fields.get(key)
    return None if value is None else str(value)
