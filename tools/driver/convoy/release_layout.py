"""The files of one release in the artifact store, and the formats they share.

    <store>/<tag>/
      <configuration>/<file>          the artifacts of each affected configuration (`convoy release prune` removes them)
      SHA256SUMS                      "<sha256>  <configuration>/<file>" per artifact (sha256sum -c reads it)
      NOTES.md                        the release notes in Markdown
      provenance.intoto.json          the in-toto Statement v1 with its SLSA provenance v1 predicate (convoy.provenance)
      provenance.intoto.json.sig      its SSH signature (ssh-keygen -Y sign, namespace SIGNING_NAMESPACE), if signed
      PRUNED                          written by `convoy release prune`: when, and which artifacts went

The tag's annotated message ends with PROVENANCE_LINE, so that the tag (signed
where a key is configured) names the one statement that belongs to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Mapping, Optional

STATEMENT = "provenance.intoto.json"
SIGNATURE = STATEMENT + ".sig"
SUMS = "SHA256SUMS"
NOTES = "NOTES.md"
PRUNED = "PRUNED"
SIGNING_NAMESPACE = "convoy-provenance"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/convoy-ci/convoy/integration@v1"
BUILDER_ID = "https://github.com/convoy-ci/convoy/driver"
PROVENANCE_PREFIX = "Provenance: sha256:"
_PROVENANCE_LINE = re.compile(r"^Provenance: sha256:([0-9a-f]{64}) " + re.escape(STATEMENT) + r"$", re.MULTILINE)
_SUMS_LINE = re.compile(r"([0-9a-f]{64}) [ *](\S.*)")


def provenance_line(digest: str) -> str:
    """The tag message's last line: 'Provenance: sha256:<digest> provenance.intoto.json'."""
    return f"{PROVENANCE_PREFIX}{digest} {STATEMENT}"


def provenance_digest(tag_message: str) -> Optional[str]:
    """The statement digest a tag's message names (its last such line), or None."""
    found = _PROVENANCE_LINE.findall(tag_message)
    return found[-1] if found else None


def canonical_json(document: Any) -> bytes:
    """The bytes a statement is written (and signed, and digested) as."""
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sums_text(digests: Mapping[str, str]) -> str:
    """SHA256SUMS for {"<configuration>/<file>": sha256}, sorted by name."""
    return "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))


def parse_sums(text: str) -> dict[str, str]:
    """{"<configuration>/<file>": sha256} of a SHA256SUMS text; ValueError on a line that is not one."""
    result = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _SUMS_LINE.fullmatch(line)
        if match is None:
            raise ValueError(f"line {number} of {SUMS} is not '<sha256>  <name>'")
        result[match.group(2)] = match.group(1)
    return result
