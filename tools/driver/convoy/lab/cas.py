"""A small client of the REAPI ContentAddressableStorage and ByteStream services.

Runs in the lab's Python (.venv-lab: grpcio and BuildGrid's generated protos).

    cas = Cas(channel, instance="convoy", cache_dir=Path(".convoy/lab/cache/rover-rigs-1"))
    action = cas.read_message(action_digest, re_pb2.Action)
    cas.materialize(action.input_root_digest, Path("work/123/root"))
    result = cas.upload_outputs(Path("work/123/root"), command)

Inputs are fetched once per worker into a cache of files named by digest and
hard-linked into each action's fresh input root (read-only, as Bazel leaves
its inputs); outputs are uploaded with FindMissingBlobs first, small blobs in
batches and large ones through ByteStream.
"""

from __future__ import annotations

import hashlib
import os
import stat
import uuid
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple, Type, TypeVar

import grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from buildgrid._protos.google.bytestream import bytestream_pb2, bytestream_pb2_grpc
from google.protobuf.message import Message

# Stay well under gRPC's default 4 MiB message limit.
BATCH_BYTES = 2 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
# Calls wait (wait_for_ready) up to this long for a server that is
# restarting, instead of failing the action whose result they carry.
RPC_TIMEOUT = 60.0

M = TypeVar("M", bound=Message)


def digest_of(data: bytes) -> re_pb2.Digest:
    """The SHA-256 digest of `data`."""
    return re_pb2.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def digest_of_file(path: Path) -> re_pb2.Digest:
    """The SHA-256 digest of the file at `path`."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(chunk)
            size += len(chunk)
    return re_pb2.Digest(hash=h.hexdigest(), size_bytes=size)


def digest_str(digest: re_pb2.Digest) -> str:
    """hash/size, the way REAPI tools print a digest."""
    return f"{digest.hash}/{digest.size_bytes}"


class Cas:
    """CAS and ByteStream of one instance of a REAPI server."""

    def __init__(self, channel: grpc.Channel, instance: str, cache_dir: Optional[Path] = None) -> None:
        self.instance = instance
        self._cas = re_grpc.ContentAddressableStorageStub(channel)
        self._bytestream = bytestream_pb2_grpc.ByteStreamStub(channel)
        self.cache_dir = cache_dir
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)

    # --- reading ------------------------------------------------------------

    def read_blobs(self, digests: Iterable[re_pb2.Digest]) -> Dict[str, bytes]:
        """hash -> content of every digest (each read once)."""
        wanted = {d.hash: d for d in digests}
        out: Dict[str, bytes] = {}
        small = [d for d in wanted.values() if d.size_bytes <= BATCH_BYTES]
        for d in wanted.values():
            if d.size_bytes == 0:
                out[d.hash] = b""
            elif d.size_bytes > BATCH_BYTES:
                out[d.hash] = self._read_stream(d)
        for batch in _batches([d for d in small if d.size_bytes > 0]):
            response = self._cas.BatchReadBlobs(
                re_pb2.BatchReadBlobsRequest(instance_name=self.instance, digests=batch),
                timeout=RPC_TIMEOUT,
                wait_for_ready=True,
            )
            for r in response.responses:
                if r.status.code != 0:
                    raise LookupError(f"CAS has no blob {digest_str(r.digest)}: {r.status.message}")
                out[r.digest.hash] = r.data
        return out

    def read_message(self, digest: re_pb2.Digest, kind: Type[M]) -> M:
        """The message of type `kind` stored under `digest`."""
        message = kind()
        message.ParseFromString(self.read_blobs([digest])[digest.hash])
        return message

    def _read_stream(self, digest: re_pb2.Digest) -> bytes:
        name = f"{self.instance}/blobs/{digest.hash}/{digest.size_bytes}"
        parts = [
            r.data
            for r in self._bytestream.Read(
                bytestream_pb2.ReadRequest(resource_name=name), timeout=RPC_TIMEOUT, wait_for_ready=True
            )
        ]
        return b"".join(parts)

    def tree(self, root: re_pb2.Digest) -> Dict[str, re_pb2.Directory]:
        """digest hash -> Directory, for the directory `root` and everything under it."""
        directories: Dict[str, re_pb2.Directory] = {}
        token = ""
        while True:
            request = re_pb2.GetTreeRequest(instance_name=self.instance, root_digest=root, page_token=token)
            for page in self._cas.GetTree(request, timeout=RPC_TIMEOUT, wait_for_ready=True):
                for directory in page.directories:
                    directories[digest_of(directory.SerializeToString()).hash] = directory
                token = page.next_page_token
            if not token:
                break
        if root.size_bytes == 0:
            directories.setdefault(root.hash, re_pb2.Directory())
        return directories

    def materialize(self, root: re_pb2.Digest, dest: Path) -> int:
        """Writes the input root `root` into the empty directory `dest`; returns the number of files."""
        directories = self.tree(root)
        files: List[Tuple[Path, re_pb2.FileNode]] = []
        self._walk(directories, root.hash, dest, files)
        self._fill_cache(node for _, node in files)
        for path, node in files:
            cached = self._cached(node)
            try:
                os.link(cached, path)
            except OSError:
                data = cached.read_bytes()
                path.write_bytes(data)
                os.chmod(path, 0o555 if node.is_executable else 0o444)
        return len(files)

    def _walk(
        self, directories: Dict[str, re_pb2.Directory], key: str, dest: Path, files: List[Tuple[Path, re_pb2.FileNode]]
    ) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        directory = directories[key]
        for node in directory.files:
            files.append((dest / _safe(node.name), node))
        for link in directory.symlinks:
            os.symlink(link.target, dest / _safe(link.name))
        for sub in directory.directories:
            self._walk(directories, sub.digest.hash, dest / _safe(sub.name), files)

    def _cached(self, node: re_pb2.FileNode) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / (node.digest.hash + ("x" if node.is_executable else ""))

    def _fill_cache(self, nodes: Iterable[re_pb2.FileNode]) -> None:
        missing = {}
        for node in nodes:
            if not self._cached(node).exists():
                missing[(node.digest.hash, node.is_executable)] = node
        if not missing:
            return
        blobs = self.read_blobs(node.digest for node in missing.values())
        for node in missing.values():
            path = self._cached(node)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
            tmp.write_bytes(blobs[node.digest.hash])
            os.chmod(tmp, 0o555 if node.is_executable else 0o444)
            os.replace(tmp, path)

    # --- writing ------------------------------------------------------------

    def upload(self, blobs: Dict[str, Tuple[re_pb2.Digest, object]]) -> None:
        """Uploads blobs the server is missing. `blobs`: hash -> (digest, bytes or Path)."""
        if not blobs:
            return
        response = self._cas.FindMissingBlobs(
            re_pb2.FindMissingBlobsRequest(instance_name=self.instance, blob_digests=[d for d, _ in blobs.values()]),
            timeout=RPC_TIMEOUT, wait_for_ready=True,
        )
        missing = [blobs[d.hash] for d in response.missing_blob_digests]
        small = [(d, src) for d, src in missing if d.size_bytes <= BATCH_BYTES]
        for digest, src in missing:
            if digest.size_bytes > BATCH_BYTES:
                self._write_stream(digest, src)
        by_hash = {d.hash: src for d, src in small}
        for batch in _batches([d for d, _ in small]):
            requests = [
                re_pb2.BatchUpdateBlobsRequest.Request(digest=d, data=_content(by_hash[d.hash])) for d in batch
            ]
            response = self._cas.BatchUpdateBlobs(
                re_pb2.BatchUpdateBlobsRequest(instance_name=self.instance, requests=requests),
                timeout=RPC_TIMEOUT,
                wait_for_ready=True,
            )
            for r in response.responses:
                if r.status.code != 0:
                    raise IOError(f"CAS refused blob {digest_str(r.digest)}: {r.status.message}")

    def _write_stream(self, digest: re_pb2.Digest, src: object) -> None:
        name = f"{self.instance}/uploads/{uuid.uuid4()}/blobs/{digest.hash}/{digest.size_bytes}"

        def requests() -> Iterator[bytestream_pb2.WriteRequest]:
            data = _content(src)
            offset = 0
            while True:
                chunk = data[offset : offset + CHUNK_BYTES]
                last = offset + len(chunk) >= len(data)
                yield bytestream_pb2.WriteRequest(
                    resource_name=name if offset == 0 else "", write_offset=offset, data=chunk, finish_write=last
                )
                offset += len(chunk)
                if last:
                    return

        self._bytestream.Write(requests(), timeout=RPC_TIMEOUT, wait_for_ready=True)

    def upload_outputs(self, workdir: Path, command: re_pb2.Command, result: re_pb2.ActionResult) -> None:
        """Adds the outputs that `command` declares and that exist under `workdir` to `result`, uploading them."""
        blobs: Dict[str, Tuple[re_pb2.Digest, object]] = {}
        files = list(command.output_files)
        dirs = list(command.output_directories)
        for path in command.output_paths:
            (dirs if (workdir / path).is_dir() else files).append(path)
        for rel in files:
            path = workdir / rel
            if not path.is_file():
                continue
            digest = digest_of_file(path)
            blobs[digest.hash] = (digest, path)
            result.output_files.add(path=rel, digest=digest, is_executable=_is_executable(path))
        for rel in dirs:
            path = workdir / rel
            if not path.is_dir():
                continue
            tree = re_pb2.Tree()
            tree.root.CopyFrom(self._directory(path, tree, blobs))
            data = tree.SerializeToString()
            digest = digest_of(data)
            blobs[digest.hash] = (digest, data)
            result.output_directories.add(path=rel, tree_digest=digest)
        self.upload(blobs)

    def _directory(
        self, path: Path, tree: re_pb2.Tree, blobs: Dict[str, Tuple[re_pb2.Digest, object]]
    ) -> re_pb2.Directory:
        directory = re_pb2.Directory()
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            full = Path(entry.path)
            if entry.is_dir(follow_symlinks=True):
                child = self._directory(full, tree, blobs)
                tree.children.append(child)
                directory.directories.add(name=entry.name, digest=digest_of(child.SerializeToString()))
            elif entry.is_file(follow_symlinks=True):
                digest = digest_of_file(full)
                blobs[digest.hash] = (digest, full)
                directory.files.add(name=entry.name, digest=digest, is_executable=_is_executable(full))
        return directory

    def put(self, data: bytes) -> re_pb2.Digest:
        """Uploads `data`; returns its digest."""
        digest = digest_of(data)
        self.upload({digest.hash: (digest, data)})
        return digest


def _batches(digests: List[re_pb2.Digest]) -> Iterator[List[re_pb2.Digest]]:
    batch: List[re_pb2.Digest] = []
    size = 0
    for d in digests:
        if batch and size + d.size_bytes > BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(d)
        size += d.size_bytes
    if batch:
        yield batch


def _content(src: object) -> bytes:
    return src.read_bytes() if isinstance(src, Path) else src  # type: ignore[return-value]


def _is_executable(path: Path) -> bool:
    return bool(path.stat().st_mode & stat.S_IXUSR)


def _safe(name: str) -> str:
    """A path component from the CAS; refuses names that would escape the input root."""
    if not name or name in (".", "..") or "/" in name:
        raise ValueError(f"unsafe name in input tree: {name!r}")
    return name
