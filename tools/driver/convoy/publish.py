"""A merged candidate's release: its files assembled, the tag signed, the whole published.

    publisher = Publisher(checkout, config, store, build, held)   # held: the requests the candidate merges
    name, notes = release.push_release_tag(..., prepare=publisher.prepare, sign_args=publisher.sign_args())
    publisher.publish(name)                                       # into the artifact store (convoy.artifact_store)

`prepare(tag, content)` runs before the tag is made: it assembles the
release in `.convoy/artifacts/build-<id>/release-<tag>/` (the artifacts the
release stage kept, SHA256SUMS, NOTES.md, the provenance statement and its
signature: convoy.release_layout) and returns the line that the tag's
message ends with, naming the statement's sha256. An assembled release is
never assembled again, so a driver killed after the tag was made publishes
exactly the statement the tag names. `publish(tag)` copies it to the store
(whole or not at all; a release already there is kept).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

from convoy import artifacts
from convoy import provenance
from convoy import release_layout as layout
from convoy import signing
from convoy.artifact_store import open_artifact_store
from convoy.config import Config
from convoy.errors import ConvoyError, InfraError
from convoy.models import Build, Request
from convoy.store import Store


class Publisher:
    """The release of one build's merged candidate (see the module docstring)."""

    def __init__(self, checkout: Path, config: Config, store: Store, build: Optional[Build],
                 held: Sequence[Request]) -> None:
        self.checkout = checkout
        self.config = config
        self.store = store
        self.build = build
        self.held = list(held)

    def staging(self, tag: str) -> Path:
        root = artifacts.build_dir(self.checkout, self.build.id) if self.build is not None else \
            self.checkout / artifacts.ARTIFACTS_DIR / "by-hand"
        return root / f"release-{tag}"

    def sign_args(self) -> list[str]:
        """The git options that sign the tag (none without release.signing.key)."""
        key = self._key()
        return signing.git_sign_args(key) if key is not None else []

    def prepare(self, tag: str, content: Any) -> str:
        """Assembles the release of `tag` (once); returns the tag message's provenance line."""
        final = self.staging(tag)
        statement = final / layout.STATEMENT
        if statement.is_file():
            return layout.provenance_line(layout.sha256_file(statement))
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".release-{tag}.", dir=final.parent))
        try:
            digest = self._assemble(partial, tag, content)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(partial, final)
        except ConvoyError:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        except OSError as e:
            shutil.rmtree(partial, ignore_errors=True)
            raise InfraError(f"cannot assemble release {tag} in {final.parent}: {e}") from None
        return layout.provenance_line(digest)

    def _assemble(self, directory: Path, tag: str, content: Any) -> str:
        kept = artifacts.staged(self.checkout, self.build.id) if self.build is not None else {}
        if not kept and self.build is not None and self.config.release.has_artifacts:
            raise InfraError(f"release {tag}: the artifacts of build {self.build.id} are not in this clone "
                             f"({artifacts.ARTIFACTS_DIR}/build-{self.build.id}): another worker built it and keeps "
                             "them; run convoy process on that worker's clone to release it")
        digests = {}
        for name, path in kept.items():
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)
            digests[name] = layout.sha256_file(target)
        (directory / layout.SUMS).write_text(layout.sums_text(digests), encoding="utf-8")
        (directory / layout.NOTES).write_text(content.markdown, encoding="utf-8")
        if self.build is None:
            raise ConvoyError(f"release {tag}: no passed build of its commit; convoy tags only what it tested")
        statement = provenance.collect(self.checkout, self.config, self.store, build_id=self.build.id, tag=tag,
                                       artifacts=digests, requests=self.held)
        digest = provenance.write(statement, directory)
        key = self._key()
        if key is not None:
            signing.sign_file(key, directory / layout.STATEMENT)
        return digest

    def publish(self, tag: str) -> str:
        """Puts the assembled release of `tag` into the artifact store; returns where."""
        staged = self.staging(tag)
        if not (staged / layout.STATEMENT).is_file():
            raise InfraError(f"release {tag} was not assembled in {staged}; run convoy process again")
        target = open_artifact_store(self.config.release.store, self.checkout)
        target.publish(tag, staged)
        return f"{target.url.rstrip('/')}/{tag}"

    def _key(self) -> Optional[Path]:
        key = self.config.release.signing.key
        return signing.resolve_path(key, self.checkout) if key else None
