"""Loading and validating manifests/manifest.yaml (schema v1).

`load_manifest` reads the file with ruamel.yaml's round-trip loader (which
keeps line numbers), checks all of it, and either returns a Manifest or
raises one ConvoyError listing every problem, one line each, as
`<path>:<line>: <where>: <what is wrong>; <how to fix it>`:

    manifests/manifest.yaml:14: components.planner: unknown key 'urll' (expected: ...); fix or remove it

The schema, in short (`url`, `strip_prefix` and `path` may contain `{version}`):

    schema_version: 1                                 # optional
    default_configuration: <configuration>
    release: {tag_format: "v{year}.{month}.{n}"}      # optional
    components:
      <name>: {source: git, version: <ref>, remote: <url>, commit: <40 hex>}
      <name>: {source: archive, version: <v>, url: <url>, strip_prefix: <dir>, sha256: <64 hex>}
      <name>: {source: local, version: <v>, path: <dir>}
    configurations:
      <name>: {components: [<component>, ...], pins: {<component>: <version>}}

A text is parsed and validated once per process: `parse_manifest` (and so
`load_manifest`) keeps its last CACHE_SIZE results, keyed by the sha256 of
the text. A valid text seen before is not parsed again: it comes back as a
new Manifest (its own dicts, `path` as given this time), so that what one
caller does to it changes nothing for the next; an invalid one raises the
same lines again (for the same `shown`). The cache holds at most
CACHE_BYTES of manifest text; `clear_cache()` empties it.

`read_component(path, name)` is what `convoy submit` reads: a ManifestView
of one component, checked as load_manifest checks it, with the names of
the others and the configurations' members. It reads only those parts of
the file (the C parser still reads all of it: a syntax error anywhere is
reported); anything in them it does not take as plain strings, or any
problem, and it judges the whole file as load_manifest does instead, with
the same messages. A plainly written file (block mappings of plain or
simply quoted scalars, lists of names) is read faster still (_fast_view):
`components` and `configurations` are matched whole by a strict grammar,
a subset of YAML, the component's own lines and the rest of the file
parsed by the C parser; anything else goes the event reader's way. A mistake elsewhere in the file is reported by what
reads all of it (`convoy lock`, the queue's bump).

Where each part lives: this module (the loaders) is what the rest of convoy
imports; the dataclasses are convoy.manifest_model's, the checker and the
schema's keys convoy.manifest_check's, the rules of versions and tag
formats convoy.versions'. Their names are importable from here too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections import OrderedDict
from typing import Union

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.events import ScalarEvent

from convoy.errors import ConvoyError
from convoy.manifest_check import RESERVED_NAMES, SCHEMA_VERSION, SOURCES, ManifestChecker
from convoy.manifest_model import Component, Configuration, Manifest, ManifestView
from convoy.manifest_plain import _fast_view, checked_view
from convoy.versions import (
    DEFAULT_TAG_FORMAT,
    MAX_FIELD_WIDTH,
    MAX_TAG,
    tag_format_problem,
    tag_format_spec_problem,
    version_problem,
)
from convoy.yamlcheck import (
    MAX_BYTES,
    EventReader,
    Irregular,
    conflict_marker_line,
    no_cyclic_gc,
    parse_checked,
    read_text,
)

__all__ = [
    "DEFAULT_TAG_FORMAT", "MAX_FIELD_WIDTH", "MAX_TAG", "RESERVED_NAMES", "SCHEMA_VERSION", "SOURCES", "Component",
    "Configuration", "Manifest", "ManifestView", "cache_info", "clear_cache", "component_view", "load_manifest",
    "parse_manifest", "read_component", "remember", "tag_format_problem", "tag_format_spec_problem", "version_problem",
]

DEFAULT_SHOWN = "manifests/manifest.yaml"
CACHE_SIZE = 8  # texts
CACHE_BYTES = 16 * 1024 * 1024  # of text, in all (a manifest is a few KiB; 2,000 components ~400 KiB)


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Reads, parses and validates the manifest at `path`.

    Raises ConvoyError with every problem found, one line each, located as
    `<path as given>:<line>:` and sorted by line.
    """
    shown = os.fspath(path)
    return parse_manifest(read_text(path, shown, _missing(shown)), shown)


def parse_manifest(text: str, shown: str = DEFAULT_SHOWN) -> Manifest:
    """Validates manifest `text`; problems are located as `<shown>:<line>:`.

    Raises ConvoyError with every problem found, one line each, sorted by
    line. The Manifest's sha256 is that of the UTF-8 text. A text parsed
    before (see the module docstring) is not parsed again.
    """
    digest = _digest(text)
    cached = _CACHE.get(digest, shown)
    if cached is not None:
        return _fresh(cached, shown)
    try:
        manifest = _parse(text, shown, digest)
    except ConvoyError as e:
        _CACHE.put((digest, shown), e.problems, len(text))
        raise
    _CACHE.put(digest, manifest, len(text))
    return _fresh(manifest, shown)


def read_component(path: str | os.PathLike[str], name: str) -> ManifestView:
    """What `convoy submit` needs of the manifest at `path` for component
    `name` (see the module docstring); ConvoyError as load_manifest."""
    shown = os.fspath(path)
    return component_view(read_text(path, shown, _missing(shown)), name, shown)


def component_view(text: str, name: str, shown: str = DEFAULT_SHOWN) -> ManifestView:
    """read_component of manifest `text`."""
    digest = _digest(text)
    cached = _CACHE.get(digest, shown)
    if cached is not None:
        return dataclasses.replace(cached.view(name), path=shown)
    try:
        with no_cyclic_gc():
            try:
                return _fast_view(text, shown, name)
            except Irregular:
                return _read_view(text, shown, name)
    except Exception:  # noqa: BLE001 -- anything unusual (Irregular, a syntax error, a bound): the full load judges
        return parse_manifest(text, shown).view(name)


def remember(text: str, manifest: Manifest) -> Manifest:
    """Caches `manifest`, with the sha256 of `text`, as what parse_manifest
    makes of `text`, for a caller that derived it from a validated text by
    a checked edit (convoy.manifest_edit); returns a copy it may change."""
    digest = _digest(text)
    manifest = dataclasses.replace(manifest, sha256=digest)
    _CACHE.put(digest, manifest, len(text))
    return _fresh(manifest, manifest.path)


def clear_cache() -> None:
    """Forgets every parsed manifest (and the hit and miss counts)."""
    _CACHE.clear()


def cache_info() -> dict[str, int]:
    """{"hits", "misses", "entries", "bytes"} of the cache of parsed manifests."""
    return _CACHE.info()


# -- the whole file ------------------------------------------------------------------


def _parse(text: str, shown: str, digest: str) -> Manifest:
    """Parses and validates `text`, every time (parse_manifest's work on a cache miss)."""
    checker = ManifestChecker(shown)
    return parse_checked(text, checker, lambda document: checker.manifest(document, digest))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _missing(shown: str) -> str:
    return f"{shown} not found; run convoy from the integration repository or pass --manifest"


def _fresh(manifest: Manifest, shown: str) -> Manifest:
    """A copy of a cached manifest that its caller may change: its own dicts
    (the components and configurations themselves are frozen), named `shown`."""
    return dataclasses.replace(manifest, path=shown, components=dict(manifest.components),
                               configurations=dict(manifest.configurations))


class _Cache:
    """The last parses, newest last: a sha256 -> its valid Manifest (valid
    whatever the name it is shown as), or (sha256, shown) -> the lines of
    its ConvoyError. Shared by the driver's threads."""

    def __init__(self) -> None:
        self._entries: OrderedDict[object, tuple[Union[Manifest, tuple[str, ...]], int]] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = self.hits = self.misses = 0

    def get(self, digest: str, shown: str) -> Manifest | None:
        """The cached Manifest of `digest`; raises its cached ConvoyError; None if not cached."""
        with self._lock:
            for key in (digest, (digest, shown)):
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    break
            else:
                self.misses += 1
                return None
        value = entry[0]
        if isinstance(value, Manifest):
            return value
        raise ConvoyError(*value)

    def put(self, key: object, value: Union[Manifest, tuple[str, ...]], size: int) -> None:
        if size > CACHE_BYTES:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, size)
            self._bytes += size
            while len(self._entries) > CACHE_SIZE or self._bytes > CACHE_BYTES:
                self._bytes -= self._entries.popitem(last=False)[1][1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = self.hits = self.misses = 0

    def info(self) -> dict[str, int]:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "entries": len(self._entries), "bytes": self._bytes}


_CACHE = _Cache()


# -- one component ---------------------------------------------------------------------



def _read_view(text: str, shown: str, name: str) -> ManifestView:
    """component_view from the parts of `text` it needs: `components` (every
    name, and the entry of `name`), `configurations` and `schema_version`.
    Raises Irregular (or the parser's error) for whatever the full load must
    judge, including any problem in those parts."""
    if len(text.encode("utf-8")) > MAX_BYTES or conflict_marker_line(text) is not None:
        raise Irregular("refused before parsing")
    reader = EventReader(shown, text)
    document = CommentedMap()  # the parts read, as the round-trip document holds them
    names: dict[str, None] = {}
    spec = line = None
    for key, key_event, value in reader.entries(reader.document()):
        if key == "components":
            document[key] = None
            for component, component_event, component_value in reader.entries(value):
                names[component] = None
                if component == name:
                    spec, line = reader.build(component_value), component_event.start_mark.line + 1
                else:
                    reader.skip(component_value)
        elif key == "configurations":
            document._yaml_set_kv_line_col(key, [key_event.start_mark.line, key_event.start_mark.column,
                                                 value.start_mark.line, value.start_mark.column])
            document[key] = reader.build(value)
        elif key == "schema_version":
            if not (isinstance(value, ScalarEvent) and value.value == str(SCHEMA_VERSION) and value.implicit[0]
                    and value.tag is None and value.anchor is None):
                raise Irregular("schema_version")
        else:
            reader.skip(value)
    reader.end()
    if "components" not in document or "configurations" not in document:
        raise Irregular("a required section is missing")
    return checked_view(shown, name, spec, line, document, names)
