"""Questions to the lab's REAPI server, answered as JSON on stdout (run with the lab's Python).

    PYTHONPATH=tools/driver .venv-lab/bin/python -m convoy.lab.service --server=127.0.0.1:50051 \\
        --instance=convoy workers
    ... ping                                  {"ok": true, "high_api": "2.2.0"}
    ... workers                               [{"bot_id", "pool", "name", "status", "healthy", "operations"}...]
    ... operations [--filter='stage=queued']  [{"name", "stage", "action", "done"}...]
    ... cancel --invocation_id=<id>           cancels that Bazel invocation's unfinished operations
    ... cancel --pool=<pool>                  cancels the unfinished operations of a pool
    ... cancel --all                          cancels every unfinished operation

The driver runs in its own virtual environment without gRPC; it asks these
questions through this module (convoy.lab.pools does), so that what it
decides rests on what the service itself knows: which bots are registered,
their status (a rig worker reports UNHEALTHY while its rig does not answer),
whether their session has expired.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Dict, List

import grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from buildgrid._protos.build.buildgrid import introspection_pb2, introspection_pb2_grpc
from buildgrid._protos.google.devtools.remoteworkers.v1test2 import bots_pb2
from buildgrid._protos.google.longrunning import operations_pb2, operations_pb2_grpc

TIMEOUT = 10.0
UNFINISHED = "stage != completed"


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


def operations(channel: grpc.Channel, instance: str, filter_string: str) -> List[Dict[str, Any]]:
    stub = operations_pb2_grpc.OperationsStub(channel)
    out = []
    token = ""
    while True:
        response = stub.ListOperations(
            operations_pb2.ListOperationsRequest(name=instance, filter=filter_string, page_token=token, page_size=500),
            timeout=TIMEOUT,
        )
        for op in response.operations:
            meta = re_pb2.ExecuteOperationMetadata()
            op.metadata.Unpack(meta)
            out.append(
                {
                    "name": op.name,
                    "stage": re_pb2.ExecutionStage.Value.Name(meta.stage),
                    "action": f"{meta.action_digest.hash}/{meta.action_digest.size_bytes}",
                    "done": op.done,
                }
            )
        token = response.next_page_token
        if not token:
            return out


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
