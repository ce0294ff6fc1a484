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

Where each part lives: this module (the loaders) is what the rest of convoy
imports; the dataclasses are convoy.manifest_model's, the checker and the
schema's keys convoy.manifest_check's, the rules of versions and tag
formats convoy.versions'. Their names are importable from here too.
"""

from __future__ import annotations

import hashlib
import os

from convoy.manifest_check import RESERVED_NAMES, SCHEMA_VERSION, SOURCES, ManifestChecker
from convoy.manifest_model import Component, Configuration, Manifest
from convoy.versions import (
    DEFAULT_TAG_FORMAT,
    MAX_FIELD_WIDTH,
    MAX_TAG,
    tag_format_problem,
    tag_format_spec_problem,
    version_problem,
)
from convoy.yamlcheck import parse_checked, read_text

__all__ = [
    "DEFAULT_TAG_FORMAT", "MAX_FIELD_WIDTH", "MAX_TAG", "RESERVED_NAMES", "SCHEMA_VERSION", "SOURCES", "Component",
    "Configuration", "Manifest", "load_manifest", "parse_manifest", "tag_format_problem", "tag_format_spec_problem",
    "version_problem",
]


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Reads, parses and validates the manifest at `path`.

    Raises ConvoyError with every problem found, one line each, located as
    `<path as given>:<line>:` and sorted by line.
    """
    shown = os.fspath(path)
    text = read_text(path, shown, f"{shown} not found; run convoy from the integration repository or pass --manifest")
    return parse_manifest(text, shown)


def parse_manifest(text: str, shown: str = "manifests/manifest.yaml") -> Manifest:
    """Validates manifest `text`; problems are located as `<shown>:<line>:`.

    Raises ConvoyError with every problem found, one line each, sorted by
    line. The Manifest's sha256 is that of the UTF-8 text.
    """
    checker = ManifestChecker(shown)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return parse_checked(text, checker, lambda document: checker.manifest(document, digest))
