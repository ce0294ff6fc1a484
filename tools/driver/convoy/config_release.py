"""convoy.yaml's `release:` section: what a merge releases, where, and signed with what.

    release:
      tag_format: "v{year}.{month}.{n}"   # overrides the manifest's
      artifacts: [//product:distribution]    # built in every affected configuration; or per configuration:
      # artifacts: {rover: [//product:rover_tar], drone: [//product:drone_tar]}
      store: .convoy/releases             # a directory (relative to the checkout), file:///..., or a plugin's URL
      keep: 0                             # `convoy release prune` default: releases whose artifacts stay (0: all)
      changelog: CHANGELOG.md             # each bump's notes appended, in the tested commit
      signing:
        key: ~/.ssh/convoy_release        # an SSH private key: signs the tag and the provenance
        allowed_signers: .convoy/allowed_signers   # ssh-keygen's allowed signers file, for convoy verify
        principal: release@example.com    # the identity in allowed_signers (default: convoy)

Every key is optional. Without `artifacts` a release is a tag, its notes
and its provenance statement; without `signing` nothing is signed and
`convoy verify` checks digests only. `check_release` is a step of
convoy.config's checker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from convoy.config_values import ValueChecker
from convoy.versions import tag_format_problem
from convoy.yamlcheck import key_line, kind_of

RELEASE_KEYS = ("tag_format", "artifacts", "store", "keep", "changelog", "signing")
SIGNING_KEYS = ("key", "allowed_signers", "principal")
DEFAULT_STORE = ".convoy/releases"
DEFAULT_PRINCIPAL = "convoy"
ALL_CONFIGURATIONS = "*"  # the artifacts of a list apply to every configuration
RELEASE_STAGE = "release"  # the stage that builds the artifacts, last in every build
_TARGET = re.compile(r"(@[A-Za-z0-9_.~+-]*)?//[A-Za-z0-9_./+=,@~-]*(:[A-Za-z0-9_./+=,@~ -]+)?")
_PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
_CONFIGURATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class SigningSpec:
    """An SSH key that signs releases (`key`: a private key's path), and
    the allowed signers file `convoy verify` trusts."""

    key: Optional[str] = None
    allowed_signers: Optional[str] = None
    principal: str = DEFAULT_PRINCIPAL


@dataclass(frozen=True)
class ReleaseSpec:
    """The `release:` section. `artifacts` maps a configuration (or
    ALL_CONFIGURATIONS) to its release targets."""

    tag_format: Optional[str] = None
    artifacts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    store: str = DEFAULT_STORE
    keep: int = 0
    changelog: Optional[str] = None
    signing: SigningSpec = SigningSpec()

    def artifacts_of(self, configuration: str) -> tuple[str, ...]:
        """The release targets of `configuration` (() if it has none)."""
        if configuration in self.artifacts:
            return self.artifacts[configuration]
        return self.artifacts.get(ALL_CONFIGURATIONS, ())

    @property
    def has_artifacts(self) -> bool:
        return any(self.artifacts.values())


def check_release(checker: ValueChecker, document: Mapping) -> ReleaseSpec:
    """The `release:` section of `document`, its problems reported to `checker`."""
    release = checker.section(document, "release", RELEASE_KEYS)
    tag_format = checker.optional_string(release, "tag_format", "release", '"v{year}.{month}.{n}"')
    if tag_format is not None:
        problem = tag_format_problem(tag_format)
        if problem:
            checker.problem(key_line(release, "tag_format"), "release.tag_format", problem,
                            'fix it, e.g. tag_format: "v{year}.{month}.{n}"')
    artifacts = _artifacts(checker, release)
    store = checker.optional_string(release, "store", "release", DEFAULT_STORE) or DEFAULT_STORE
    if store != store.strip() or not store.isprintable():
        checker.problem(key_line(release, "store"), "release.store",
                        "must be a path or URL without surrounding spaces or control characters",
                        f"write it like store: {DEFAULT_STORE}")
    keep = checker.number(release, "keep", "release", 0, integer=True, above=False)
    changelog = checker.optional_string(release, "changelog", "release", "CHANGELOG.md")
    if changelog is not None and (changelog.startswith("/") or ".." in changelog.split("/")
                                  or not changelog.isprintable() or changelog != changelog.strip()
                                  or not changelog):
        checker.problem(key_line(release, "changelog"), "release.changelog",
                        f"'{changelog}' is not a path inside the integration repository",
                        "write a relative path like changelog: CHANGELOG.md")
        changelog = None
    signing = _signing(checker, release)
    return ReleaseSpec(tag_format=tag_format, artifacts=artifacts, store=store, keep=int(keep or 0),
                       changelog=changelog, signing=signing)


def _artifacts(checker: ValueChecker, release: Mapping) -> dict[str, tuple[str, ...]]:
    if "artifacts" not in release or release["artifacts"] is None:
        return {}
    value = release["artifacts"]
    line = key_line(release, "artifacts")
    example = "artifacts: [//product:distribution] or artifacts: {rover: [//product:rover_tar]}"
    if isinstance(value, Mapping):
        result = {}
        for name in value:
            if not isinstance(name, str) or not (name == ALL_CONFIGURATIONS or _CONFIGURATION.fullmatch(name)):
                checker.problem(key_line(value, name), "release.artifacts", f"'{name}' is not a configuration name",
                                example)
                continue
            targets = _targets(checker, value, name, f"release.artifacts.{name}")
            if targets is not None:
                result[name] = targets
        return result
    if isinstance(value, list):
        targets = _targets(checker, release, "artifacts", "release.artifacts")
        return {ALL_CONFIGURATIONS: targets} if targets else {}
    checker.problem(line, "release.artifacts", f"must be a list of Bazel targets or a mapping of configurations, "
                    f"not {kind_of(value)}", example)
    return {}


def _targets(checker: ValueChecker, parent: Mapping, key: Any, where: str) -> Optional[tuple[str, ...]]:
    targets = checker.strings(parent, key, where, "[//product:distribution]")
    if targets is None:
        return None
    bad = [t for t in targets if not _TARGET.fullmatch(t) or t.endswith("...")]
    if bad:
        checker.problem(key_line(parent, key), where, f"'{bad[0]}' is not a Bazel target label",
                        "name each target, like //product:distribution (no patterns: an artifact is one target)")
        return None
    return tuple(targets)


def _signing(checker: ValueChecker, release: Mapping) -> SigningSpec:
    section = checker.mapping(release, "signing", "release")
    if section is None:
        return SigningSpec()
    checker.unknown_keys(section, "release.signing", SIGNING_KEYS)
    key = checker.optional_string(section, "key", "release.signing", "~/.ssh/convoy_release")
    allowed = checker.optional_string(section, "allowed_signers", "release.signing", ".convoy/allowed_signers")
    principal = checker.optional_string(section, "principal", "release.signing", DEFAULT_PRINCIPAL)
    principal = principal or DEFAULT_PRINCIPAL
    if not _PRINCIPAL.fullmatch(principal):
        checker.problem(key_line(section, "principal"), "release.signing.principal",
                        f"'{principal}' is not a signer identity", "write one like principal: release@example.com")
    for name, value in (("key", key), ("allowed_signers", allowed)):
        if value is not None and (not value or value != value.strip() or not value.isprintable()):
            checker.problem(key_line(section, name), f"release.signing.{name}",
                            "must be a path without surrounding spaces or control characters",
                            f"write a path, like {name}: ~/.ssh/convoy_release")
    if key is not None and allowed is None:
        checker.problem(key_line(section, "key"), "release.signing",
                        "a signing key needs allowed_signers (the file convoy verify trusts)",
                        "add allowed_signers: <path>, a line '<principal> <public key>'")
    return SigningSpec(key=key, allowed_signers=allowed, principal=principal)
