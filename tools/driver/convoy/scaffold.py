"""The files of a new integration repository (`convoy init`).

    rules = RulesSource.of("/path/to/convoy-0.2.0.tar.gz")     # or a URL (+ sha256), or a convoy directory
    files = scaffold_files("robot", rules, [ComponentSpec.parse("codec=https://git.example.com/codec.git@v1.0.0")])
    # {"MODULE.bazel": "...", "WORKSPACE.bazel": "...", ".bazelrc": "...", ...}

Every file is text made here from the arguments alone, so the tests can
check exactly what a user gets. The repository consumes convoy's rules as an
external repository (`@convoy`) under both entry points: MODULE.bazel
(Bazel >= 7) and WORKSPACE.bazel (Bazel 4-6), each pointing at the same
release archive or directory.
"""

from __future__ import annotations

import base64
import hashlib
import re
import tarfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

from convoy import bazel4, bazelrc
from convoy.config import default_config_text
from convoy.errors import ConvoyError

DEFAULT_CONFIGURATION = "main"
HUB = "convoy_manifest"  # fixed: convoy's macros load @convoy_manifest (rules/private/hub.bzl)
RULES_PYTHON_VERSION = "0.40.0"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_HEX64 = re.compile(r"[0-9a-f]{64}")
DOWNLOAD_TIMEOUT = 60.0


@dataclass(frozen=True)
class ComponentSpec:
    """One `--component NAME=REMOTE@VERSION`: a git component of the new manifest."""

    name: str
    remote: str
    version: str

    @classmethod
    def parse(cls, text: str) -> "ComponentSpec":
        """NAME=REMOTE@VERSION; the version is after the last @ (a remote may hold one: git@host:x)."""
        name, equals, rest = text.partition("=")
        remote, at, version = rest.rpartition("@")
        if not equals or not at or not name or not remote or not version:
            raise ConvoyError(f"--component={text}: expected NAME=REMOTE@VERSION, e.g. "
                              "--component=codec=https://git.example.com/team/codec.git@v1.0.0")
        if not _NAME.fullmatch(name):
            raise ConvoyError(f"--component={text}: '{name}' is not a component name (a Bazel repository name: "
                              "a letter, then letters, digits, _ . -)")
        return cls(name, remote, version)


@dataclass(frozen=True)
class RulesSource:
    """Where the integration repository gets convoy's rules: a release archive
    (url, sha256, strip_prefix) or a directory (a convoy checkout or an
    unpacked release)."""

    url: Optional[str] = None
    sha256: Optional[str] = None
    strip_prefix: Optional[str] = None
    path: Optional[str] = None

    @property
    def integrity(self) -> str:
        """Subresource Integrity of the archive (archive_override takes it)."""
        return "sha256-" + base64.b64encode(bytes.fromhex(self.sha256 or "")).decode()

    @classmethod
    def of(cls, where: str, sha256: Optional[str] = None) -> "RulesSource":
        """From `--rules`: a convoy-<version>.tar.gz (path or URL) or a directory.

        A local archive is hashed here; a remote one is downloaded and hashed
        unless `sha256` is given (then it is trusted as the pin).
        """
        if sha256 is not None and not _HEX64.fullmatch(sha256):
            raise ConvoyError(f"--rules_sha256={sha256} is not a sha256 (64 lowercase hex digits)")
        scheme = urllib.parse.urlsplit(where).scheme
        if scheme in ("http", "https", "file"):
            local = Path(urllib.parse.unquote(urllib.parse.urlsplit(where).path)) if scheme == "file" else None
            if local is not None:
                return cls._archive(local, where, sha256)
            if sha256 is None:
                sha256 = _download_sha256(where)
            return cls(url=where, sha256=sha256, strip_prefix=_prefix_from_name(where))
        path = Path(where).expanduser().absolute()
        if path.is_dir():
            if not (path / "rules" / "defs.bzl").is_file() or not (path / "MODULE.bazel").is_file():
                raise ConvoyError(f"--rules={where}: not a convoy directory (no rules/defs.bzl and MODULE.bazel); "
                                  "pass a convoy checkout, an unpacked release, or convoy-<version>.tar.gz")
            return cls(path=str(path))
        if path.is_file():
            return cls._archive(path, path.as_uri(), sha256)
        raise ConvoyError(f"--rules={where}: no such file or directory; pass convoy-<version>.tar.gz (a path or a "
                          "URL), or a convoy directory")

    @classmethod
    def _archive(cls, path: Path, url: str, sha256: Optional[str]) -> "RulesSource":
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ConvoyError(f"--rules={url}: cannot read {path} ({e.strerror})") from None
        actual = hashlib.sha256(data).hexdigest()
        if sha256 is not None and sha256 != actual:
            raise ConvoyError(f"--rules={url}: its sha256 is {actual}, not {sha256}; check the download")
        return cls(url=url, sha256=actual, strip_prefix=_prefix_in(path))


def _download_sha256(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:  # noqa: S310 (http/https only)
            return hashlib.sha256(response.read()).hexdigest()
    except OSError as e:
        raise ConvoyError(f"--rules={url}: cannot download it ({e}); pass --rules_sha256 or a local file") from None


def _prefix_from_name(url: str) -> str:
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    return name[:-len(".tar.gz")] if name.endswith(".tar.gz") else ""


def _prefix_in(path: Path) -> str:
    """The one top directory of the archive, or "" when there is none."""
    try:
        with tarfile.open(path) as tar:
            tops = {name.split("/", 1)[0] for name in tar.getnames() if name and not name.startswith("/")}
    except (tarfile.TarError, OSError) as e:
        raise ConvoyError(f"--rules={path}: not a .tar.gz archive ({e})") from None
    return tops.pop() if len(tops) == 1 else ""


def module_name(directory: Path) -> str:
    """A module / workspace name for the repository in `directory`: its name, made valid."""
    name = re.sub(r"[^a-z0-9_]", "_", directory.name.lower()).strip("_") or "integration"
    if not name[0].isalpha():
        name = "integration_" + name
    return name + "_integration" if name == "convoy" else name


def scaffold_files(name: str, rules: RulesSource, components: Sequence[ComponentSpec]) -> Dict[str, str]:
    """Path (relative to the new repository) -> text, for every file `convoy init` writes."""
    return {
        "MODULE.bazel": _module(name, rules, components),
        "WORKSPACE.bazel": _workspace(name, rules),
        "WORKSPACE.bzlmod": _WORKSPACE_BZLMOD,
        ".bazelrc": _bazelrc(),
        ".bazelignore": f".convoy\nbazel-bin\nbazel-out\nbazel-testlogs\nbazel-{name}\n",
        ".gitignore": _GITIGNORE,
        "convoy.yaml": default_config_text(),
        "manifests/manifest.yaml": manifest_text(components),
        "manifests/BUILD.bazel": _MANIFESTS_BUILD,
        "integration/BUILD.bazel": _integration_build(components),
        "integration/pins_test.py": _PINS_TEST,
    }


def manifest_text(components: Sequence[ComponentSpec]) -> str:
    """manifests/manifest.yaml: the components given (git), one configuration of them all, comments."""
    lines = [_MANIFEST_HEAD, "components:"]
    if not components:
        lines[-1] = "components: {}         # none yet: add yours as in the example below, then run: convoy lock"
    for c in components:
        lines += [f"  {c.name}:", "    source: git", f"    remote: {_yaml_string(c.remote)}",
                  f"    version: {_yaml_string(c.version)}"]
    lines.append(_MANIFEST_EXAMPLE)
    names = ", ".join(c.name for c in components)
    lines += [
        "configurations:",
        f"  {DEFAULT_CONFIGURATION}:               # bazel test --config={DEFAULT_CONFIGURATION} //integration/...",
        f"    components: [{names}]",
        "  # lite:                 # another product variant: some of the components, some pinned differently",
        "  #   components: [codec]",
        "  #   pins:",
        "  #     codec: v0.9.0",
        "",
    ]
    return "\n".join(lines)


def _yaml_string(value: str) -> str:
    """`value` as a YAML scalar: plain when that reads back as the same string, else double-quoted."""
    if re.fullmatch(r"[A-Za-z0-9_./@+-][A-Za-z0-9_./@:+~-]*", value) and not re.fullmatch(
            r"(?i)true|false|yes|no|on|off|null|~|[-+]?[0-9][0-9_.:eE+-]*", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _module(name: str, rules: RulesSource, components: Sequence[ComponentSpec]) -> str:
    from convoy import __version__

    version = _rules_version(rules) or __version__
    if rules.path:
        override = (
            "# convoy's rules from a directory on this machine. To pin a release instead:\n"
            "#   archive_override(\n"
            '#       module_name = "convoy",\n'
            '#       integrity = "sha256-...",          # scripts/release-rules prints these lines\n'
            f'#       strip_prefix = "convoy-{version}",\n'
            f'#       urls = ["https://example.com/convoy-{version}.tar.gz"],\n'
            "#   )\n"
            "local_path_override(\n"
            '    module_name = "convoy",\n'
            f'    path = "{rules.path}",\n'
            ")\n"
        )
    else:
        override = (
            "# convoy's rules, pinned: the release archive and its integrity (scripts/release-rules\n"
            "# prints these lines). A git checkout instead:\n"
            '#   git_override(module_name = "convoy", remote = "https://...", commit = "<40 hex>")\n'
            "archive_override(\n"
            '    module_name = "convoy",\n'
            f'    integrity = "{rules.integrity}",\n'
            f'    strip_prefix = "{rules.strip_prefix}",\n'
            f'    urls = ["{rules.url}"],\n'
            ")\n"
        )
    repos = ", ".join(f'"{n}"' for n in sorted([HUB] + [c.name for c in components]))  # buildifier's order
    return (
        f'"""{name}: an integration repository made by `convoy init` (Bazel >= 7, bzlmod).\n\n'
        "Bazel 4-6 read WORKSPACE.bazel instead (and Bazel >= 7 reads WORKSPACE.bzlmod\n"
        'in its place); both point at the same convoy.\n"""\n\n'
        f'module(name = "{name}")\n\n'
        f'bazel_dep(name = "convoy", version = "{version}")\n\n'
        + override
        + "\n# BUILD files here load py_library / py_test from it.\n"
        f'bazel_dep(name = "rules_python", version = "{RULES_PYTHON_VERSION}")\n\n'
        "# The hub @convoy_manifest and @<component> for every component of the\n"
        "# manifest, at the pins of the active configuration. After adding a\n"
        "# component to the manifest: convoy lock, then `bazel mod tidy` (Bazel >= 7.1)\n"
        "# adds it below, or add it by hand.\n"
        'manifest = use_extension("@convoy//rules:extensions.bzl", "manifest")\n'
        "manifest.lock(\n"
        '    lock = "//manifests:manifest.lock.json",\n'
        '    manifest = "//manifests:manifest.yaml",\n'
        ")\n"
        f"use_repo(manifest, {repos})\n\n"
        "# A component whose BUILD files need a repository of this module, say\n"
        "# rules_cc, gets it injected (Bazel >= 7.4):\n"
        '#   bazel_dep(name = "rules_cc", version = "0.1.1")\n'
        '#   inject_repo(manifest, "rules_cc")\n'
    )


def _rules_version(rules: RulesSource) -> Optional[str]:
    prefix = rules.strip_prefix or ""
    if prefix.startswith("convoy-"):
        return prefix[len("convoy-"):]
    if rules.path:
        match = re.search(r'module\(\s*name\s*=\s*"convoy",\s*version\s*=\s*"([^"]+)"',
                          (Path(rules.path) / "MODULE.bazel").read_text(encoding="utf-8"))
        return match.group(1) if match else None
    return None


def _workspace(name: str, rules: RulesSource) -> str:
    if rules.path:
        convoy = (
            "# convoy's rules from a directory on this machine. To pin a release instead:\n"
            '#   load("@bazel_tools//tools/build_defs/repo:http.bzl", "http_archive")\n'
            "#   http_archive(\n"
            '#       name = "convoy",\n'
            '#       sha256 = "...",                  # scripts/release-rules prints these lines\n'
            '#       strip_prefix = "convoy-<version>",\n'
            '#       urls = ["https://example.com/convoy-<version>.tar.gz"],\n'
            "#   )\n"
            "local_repository(\n"
            '    name = "convoy",\n'
            f'    path = "{rules.path}",\n'
            ")\n"
        )
    else:
        convoy = (
            'load("@bazel_tools//tools/build_defs/repo:http.bzl", "http_archive")\n\n'
            "# convoy's rules, pinned: the release archive and its sha256 (scripts/release-rules\n"
            "# prints these lines). A directory instead: local_repository(name = \"convoy\", path = ...).\n"
            "http_archive(\n"
            '    name = "convoy",\n'
            f'    sha256 = "{rules.sha256}",\n'
            f'    strip_prefix = "{rules.strip_prefix}",\n'
            f'    urls = ["{rules.url}"],\n'
            ")\n"
        )
    return (
        f"# {name}: an integration repository made by `convoy init`. Bazel 4-6 read this\n"
        "# file; Bazel >= 7 reads MODULE.bazel (and WORKSPACE.bzlmod in place of this one).\n"
        f'workspace(name = "{name}")\n\n'
        + convoy
        + "\n"
        'load("@convoy//rules:repositories.bzl", "convoy_dependencies", "convoy_manifest")\n\n'
        "# rules_python, platforms and bazel_skylib, each unless declared above (so\n"
        "# you choose the versions), then rules_python's own setup. On Debian's\n"
        "# offline Bazel 4.2 all of them come from the bazel4 config (convoy bazel4).\n"
        "convoy_dependencies()\n\n"
        'load("@rules_python//python:repositories.bzl", "py_repositories")\n\n'
        "py_repositories()\n\n"
        "# The hub @convoy_manifest (its name is fixed: convoy's macros load it) and\n"
        "# @<component> for every component of the manifest, at the pins of the\n"
        "# active configuration (--config=<configuration>; default: the manifest's).\n"
        "convoy_manifest(\n"
        '    lock = "//manifests:manifest.lock.json",\n'
        '    manifest = "//manifests:manifest.yaml",\n'
        ")\n\n"
        'load("@convoy_manifest//:repositories.bzl", "convoy_component_repositories")\n\n'
        "convoy_component_repositories()\n"
    )


def _bazelrc() -> str:
    return (
        "# Bazel settings of this integration repository (made by `convoy init`).\n"
        "# Version-specific flags live under named configs: an unknown flag in\n"
        "# .bazelrc is an error for every Bazel.\n\n"
        "# convoy's Bazel servers are short-lived and several per lane: the JVM's\n"
        "# optimizing compiler costs more CPU than it saves (docs/queue-modes.md).\n"
        "startup --host_jvm_args=-XX:TieredStopAtLevel=1\n\n"
        "# Tests see a clean environment and say why they failed. No generated\n"
        "# __init__.py in runfiles: they would shadow the components' packages.\n"
        "build --incompatible_strict_action_env\n"
        "build --incompatible_default_to_explicit_init_py\n"
        "test --test_output=errors\n"
        "build --test_env=PYTHONDONTWRITEBYTECODE=1\n\n"
        "# One config per configuration of manifests/manifest.yaml, written by\n"
        "# `convoy lock`: bazel test --config=<configuration> //integration/...\n"
        f"try-import %workspace%/manifests/{bazelrc.NAME}\n\n"
        "# --- hil: hardware tests on a remote execution service with rig pools ------\n"
        "#   bazel test --config=hil //integration/...\n"
        "# A hardware test's exec_properties {\"test.Pool\": <pool>} send it to a rig\n"
        "# of that pool; CONVOY_HARDWARE_REMOTE drops the `no-remote-exec` tag that keeps\n"
        "# hardware tests local. Point it at your service in user.bazelrc, e.g.\n"
        "#   build:hil --remote_executor=grpcs://remote.example.com\n"
        "build:hil --remote_executor=grpc://127.0.0.1:50051\n"
        "build:hil --remote_instance_name=convoy\n"
        "build:hil --remote_default_exec_properties=Pool=default\n"
        "build:hil --spawn_strategy=remote\n"
        "build:hil --repo_env=CONVOY_HARDWARE_REMOTE=1\n"
        "build:hil --remote_retries=10\n"
        "build:hil --jobs=8\n"
        "build:hil --noexperimental_split_xml_generation\n\n"
        "# --- bazel4: Debian's offline Bazel 4.2 (bazel-bootstrap) ------------------\n"
        "# Never on by itself: `convoy init` and `convoy bazel4` turn it on in the\n"
        "# git-ignored .bazelrc.local, with the stand-ins' absolute paths, only\n"
        "# where they find Bazel 4.x.\n"
        + bazel4.committed_config()
        + "# --- end bazel4 ---------------------------------------------------------------\n\n"
        "try-import %workspace%/.bazelrc.local\n"
        "try-import %workspace%/user.bazelrc\n"
    )


def _integration_build(components: Sequence[ComponentSpec]) -> str:
    a, b = ([c.name for c in components] + ["codec", "telemetry"])[:2]
    return f'''# The integration, configuration and hardware tests of this product. Each
# runs against the active configuration of the manifest:
#   bazel test //integration/...                       (the default configuration)
#   bazel test --config=<configuration> //integration/...
# A stage of `convoy process` runs the tests of one tag: convoy-integration,
# convoy-configuration, convoy-hardware (see convoy.yaml).
# To use the other macros, load them too:
#   load("@convoy//rules:defs.bzl", "configuration_test", "hardware_test", "integration_test")

load("@convoy//rules:defs.bzl", "configuration_test")

# Every component of the active configuration is pinned, as the hub says.
configuration_test(
    name = "pins_test",
    size = "small",
    srcs = ["pins_test.py"],
    args = ["$(rootpath @convoy_manifest//:configuration.json)"],
    data = ["@convoy_manifest//:configuration.json"],
)

# A behaviour across components (tag convoy-integration):
# integration_test(
#     name = "{a}_{b}_test",
#     srcs = ["{a}_{b}_test.py"],
#     configurations = ["{DEFAULT_CONFIGURATION}"],   # SKIPPED (not failed) in other configurations
#     deps = ["@{a}", "@{b}"],
# )

# A configuration is coherent (tag convoy-configuration), e.g. every
# component speaks the same protocol version:
# configuration_test(
#     name = "protocol_test",
#     srcs = ["protocol_test.py"],
#     deps = ["@{a}", "@{b}"],
# )

# On a hardware rig of a pool (tag convoy-hardware; exec_properties test.Pool):
# hardware_test(
#     name = "flash_test",
#     srcs = ["flash_test.py"],
#     pool = {{"{DEFAULT_CONFIGURATION}": "bench-rigs"}},   # or one pool for every configuration: pool = "rigs"
#     deps = ["@{a}"],
# )
'''


_WORKSPACE_BZLMOD = """\
# Bazel >= 7 with bzlmod reads this file instead of WORKSPACE.bazel:
# MODULE.bazel declares everything, so nothing is here.
"""

_GITIGNORE = """\
# convoy's state (queue database, candidate worktree, caches, Bazel 4 stand-ins)
/.convoy/
# Bazel
/bazel-*
/.bazelrc.local
/user.bazelrc
# Python
__pycache__/
*.pyc
"""

_MANIFESTS_BUILD = """\
# The manifest and its lock, read by the repository rule (WORKSPACE) or the
# module extension (MODULE.bazel).
exports_files([
    "manifest.yaml",
    "manifest.lock.json",
])
"""

_MANIFEST_HEAD = f"""\
# The product: its components, each versioned in a repository of its own,
# and its configurations (product or hardware variants), which select
# components and may pin some of them differently.
#
# Written by people, and by `convoy bump` and `convoy process` (which keep
# comments and key order). manifest.lock.json beside it is written by
# `convoy lock`: every component of every configuration at an immutable pin.
# After any edit here, run: convoy lock
schema_version: 1
default_configuration: {DEFAULT_CONFIGURATION}   # when no --config=<configuration> is given

release:
  tag_format: "v{{year}}.{{month}}.{{n}}"   # the tag of every state that passes; {{n}} counts in the month
"""

_MANIFEST_EXAMPLE = """\
  # name:                   # a Bazel repository name: @name in BUILD files
  #   source: git           # git | archive | local
  #   remote: https://git.example.com/team/name.git
  #   version: v1.2.3       # a tag of the remote (convoy lock pins its commit)
  # prebuilt:
  #   source: archive
  #   url: https://pkg.example.com/prebuilt-{version}.tar.gz
  #   strip_prefix: prebuilt-{version}
  #   version: v2.0.0
  # vendored:
  #   source: local         # a directory of this repository, committed
  #   path: components/vendored/{version}
  #   version: v0.1.0
"""

_PINS_TEST = '''"""Every component of the active configuration is pinned, as the hub @convoy_manifest says.

Made by `convoy init`. argv[1] is the hub's configuration.json.
"""

import json
import os
import sys


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        hub = json.load(f)
    active = os.environ["CONVOY_CONFIGURATION"]
    problems = []
    if hub["configuration"] != active:
        problems.append(f"the hub is for configuration {hub['configuration']}, the test for {active}")
    for name, pin in sorted(hub["components"].items()):
        if not pin.get("version") or not pin.get("pin"):
            problems.append(f"{name} has no version or pin: {pin}")
        print(f"{active}: {name} {pin.get('version')} ({pin.get('source')} {pin.get('pin')})")
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
'''
