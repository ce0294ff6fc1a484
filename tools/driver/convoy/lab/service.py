"""Questions to the lab's REAPI server, answered as JSON on stdout (run with the lab's Python).

    PYTHONPATH=tools/driver .venv-lab/bin/python -m convoy.lab.service --server=127.0.0.1:50051 \\
        --instance=convoy workers
    ... ping                                  {"ok": true, "high_api": "2.2.0"}
    ... workers                               [{"bot_id", "pool", "name", "status", "healthy", "operations"}...]
    ... operations [--filter='stage=queued']  [{"name", "stage", "action", "done"}...]
    ... runs --invocation_id=<id>             [{"action", "target", "pool", "worker", "started", "finished",
                                                "exit_code", "cached"}...]: what the workers ran for it
    ... cancel --invocation_id=<id>           cancels that Bazel invocation's unfinished operations
    ... finish --invocation_id=<id>           {"cancelled": [...], "runs": [...]}: cancel, then runs (the end
                                              of a driver's run: one process instead of two)
    ... cancel --pool=<pool>                  cancels the unfinished operations of a pool
    ... cancel --all                          cancels every unfinished operation

The driver runs in its own virtual environment without gRPC; it asks these
questions through this module (convoy.lab.pools does), so that what it
decides rests on what the service itself knows: which bots are registered,
their status (a rig worker reports UNHEALTHY while its rig does not answer),
whether their session has expired.

`runs` is the provenance of a Bazel run: one entry per finished operation of
the invocation that a worker reported a result for (a cancelled or refused
one has none). The worker's bot id (`<pool>/<name>`) and its start and end
(epoch seconds; convoy's workers report whole seconds) come from the
ActionResult's execution metadata; the test's label (TEST_TARGET, "" for a
build action) and `Pool` from the Action and Command in the CAS. A filter
that names the invocation lists its finished operations too (BuildGrid
hides completed ones only when the filter is empty).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Dict, Iterator, List, Type, TypeVar

import grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from buildgrid._protos.build.buildgrid import introspection_pb2, introspection_pb2_grpc
from buildgrid._protos.google.devtools.remoteworkers.v1test2 import bots_pb2
from buildgrid._protos.google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf.message import Message

from convoy.lab.cas import Cas, digest_str

TIMEOUT = 10.0
UNFINISHED = "stage != completed"
POOL_KEY = "Pool"

M = TypeVar("M", bound=Message)


def ping(channel: grpc.Channel, instance: str) -> Dict[str, Any]:
    stub = re_grpc.CapabilitiesStub(channel)
    caps = stub.GetCapabilities(re_pb2.GetCapabilitiesRequest(instance_name=instance), timeout=TIMEOUT)
    return {"ok": True, "high_api": f"{caps.high_api_version.major}.{caps.high_api_version.minor}"}


def workers(channel: grpc.Channel, instance: str) -> List[Dict[str, Any]]:
    """Every bot the scheduler knows, with its pool (convoy's bot ids are <pool>/<name>)."""
    stub = introspection_pb2_grpc.IntrospectionStub(channel)
    response = stub.ListWorkers(introspection_pb2.ListWorkersRequest(instance_name=instance), timeout=TIMEOUT)
    now = time.time()
    out = []
    for w in response.workers:
        pool, _, name = w.worker_name.rpartition("/")
        status = bots_pb2.BotStatus.Name(w.bot_status)
        expires = w.expiry_time.seconds + w.expiry_time.nanos / 1e9 if w.HasField("expiry_time") else None
        out.append(
            {
                "bot_id": w.worker_name,
                "pool": pool,
                "name": name,
                "status": status,
                "expires": expires,
                "healthy": status == "OK" and (expires is None or expires > now),
                "operations": [op.operation_name for op in w.operations],
            }
        )
    return out


def _list(channel: grpc.Channel, instance: str, filter_string: str) -> Iterator[operations_pb2.Operation]:
    """Every operation that matches `filter_string` (all pages)."""
    stub = operations_pb2_grpc.OperationsStub(channel)
    token = ""
    while True:
        response = stub.ListOperations(
            operations_pb2.ListOperationsRequest(name=instance, filter=filter_string, page_token=token, page_size=500),
            timeout=TIMEOUT,
        )
        yield from response.operations
        token = response.next_page_token
        if not token:
            return


def _metadata(op: operations_pb2.Operation) -> re_pb2.ExecuteOperationMetadata:
    meta = re_pb2.ExecuteOperationMetadata()
    op.metadata.Unpack(meta)
    return meta


def operations(channel: grpc.Channel, instance: str, filter_string: str) -> List[Dict[str, Any]]:
    out = []
    for op in _list(channel, instance, filter_string):
        meta = _metadata(op)
        out.append(
            {
                "name": op.name,
                "stage": re_pb2.ExecutionStage.Value.Name(meta.stage),
                "action": digest_str(meta.action_digest),
                "done": op.done,
            }
        )
    return out


def _seconds(stamp: Any) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def _read(cas: Cas, digests: List[re_pb2.Digest], kind: Type[M]) -> Dict[str, M]:
    """hash -> message of each digest the CAS has (a missing blob is left out, not an error)."""
    try:
        blobs = cas.read_blobs(digests)
    except LookupError:  # one is gone: read them one by one
        blobs = {}
        for digest in digests:
            try:
                blobs.update(cas.read_blobs([digest]))
            except LookupError:
                pass
    out = {}
    for key, data in blobs.items():
        message = kind()
        message.ParseFromString(data)
        out[key] = message
    return out


def runs(channel: grpc.Channel, instance: str, invocation_id: str) -> List[Dict[str, Any]]:
    """What the workers ran for one Bazel invocation, in the order they started (see the module's docstring)."""
    finished = []
    for op in _list(channel, instance, f"invocation_id={invocation_id}"):
        response = re_pb2.ExecuteResponse()
        if not op.done or not op.response.Unpack(response) or not response.result.execution_metadata.worker:
            continue
        finished.append((_metadata(op).action_digest, response))
    cas = Cas(channel, instance)
    actions = _read(cas, [digest for digest, _ in finished], re_pb2.Action)
    commands = _read(cas, [a.command_digest for a in actions.values()], re_pb2.Command)
    out = []
    for digest, response in finished:
        action = actions.get(digest.hash, re_pb2.Action())
        command = commands.get(action.command_digest.hash, re_pb2.Command())
        platform = action.platform if action.HasField("platform") else command.platform
        meta = response.result.execution_metadata
        out.append(
            {
                "action": digest_str(digest),
                "target": next((v.value for v in command.environment_variables if v.name == "TEST_TARGET"), ""),
                "pool": next((p.value for p in platform.properties if p.name == POOL_KEY), ""),
                "worker": meta.worker,
                "started": _seconds(meta.execution_start_timestamp),
                "finished": _seconds(meta.execution_completed_timestamp),
                "exit_code": response.result.exit_code,
                "cached": response.cached_result,
            }
        )
    return sorted(out, key=lambda r: (r["started"], r["finished"], r["target"], r["action"]))


def cancel(channel: grpc.Channel, instance: str, filter_string: str) -> List[str]:
    """Cancels every unfinished operation that matches `filter_string`; returns their names."""
    stub = operations_pb2_grpc.OperationsStub(channel)
    both = f"{filter_string} & {UNFINISHED}" if filter_string else UNFINISHED
    names = [op["name"] for op in operations(channel, instance, both)]
    for name in names:
        stub.CancelOperation(operations_pb2.CancelOperationRequest(name=name), timeout=TIMEOUT)
    return names


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--instance", required=True)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("ping")
    sub.add_parser("workers")
    ops = sub.add_parser("operations")
    ops.add_argument("--filter", default=UNFINISHED)
    sub.add_parser("runs").add_argument("--invocation_id", required=True)
    sub.add_parser("finish").add_argument("--invocation_id", required=True)
    can = sub.add_parser("cancel")
    group = can.add_mutually_exclusive_group(required=True)
    group.add_argument("--invocation_id")
    group.add_argument("--pool")
    group.add_argument("--all", action="store_true")
    args = parser.parse_args(argv)
    channel = grpc.insecure_channel(args.server)
    try:
        if args.what == "ping":
            answer: Any = ping(channel, args.instance)
        elif args.what == "workers":
            answer = workers(channel, args.instance)
        elif args.what == "operations":
            answer = operations(channel, args.instance, args.filter)
        elif args.what == "runs":
            answer = runs(channel, args.instance, args.invocation_id)
        elif args.what == "finish":  # the end of a run: cancel and runs in one process
            answer = {"cancelled": cancel(channel, args.instance, f"invocation_id={args.invocation_id}"),
                      "runs": runs(channel, args.instance, args.invocation_id)}
        else:
            if args.invocation_id:
                filter_string = f"invocation_id={args.invocation_id}"
            elif args.pool:
                filter_string = f"platform=Pool:{args.pool}"
            else:
                filter_string = ""
            answer = cancel(channel, args.instance, filter_string)
    except grpc.RpcError as e:
        print(json.dumps({"error": f"{e.code().name}: {e.details()}"}))  # type: ignore[attr-defined]
        return 1
    finally:
        channel.close()
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
