"""The lab's BuildGrid server: its configuration, database migration and start.

    text = buildgrid.config(port=50051, instance="convoy", database=cluster.url, cas=Path(".convoy/lab/cas"))

What the configuration says, and why:
- one `!channel` on 127.0.0.1 (loopback only), no authorization;
- the CAS on disk, an LRU action cache over it;
- the `!sql-scheduler` on PostgreSQL with a dynamic property set whose match
  keys are `Pool` (unique: one pool per action; also the label of metrics)
  and `Rig` (a test may pin one rig). A job goes only to a bot whose primary
  device advertises its Pool; a key that is not registered is refused;
- bot sessions expire after KEEPALIVE s without news (a killed worker's
  lease goes back to the queue, and to another rig of the pool), checked
  every 2 s;
- a job is assigned within ~0.1 s of being queued, and a job no bot could
  take is tried again after 0.5 s (BuildGrid's defaults, 1 s and 5 s, add
  seconds to every short test);
- enough gRPC threads for Bazel's open Execute streams plus every worker's
  long poll (the default, 5 per core, refuses calls with RESOURCE_EXHAUSTED);
- the Execution (with Operations and Bots), ActionCache, CAS, ByteStream and
  Introspection services on one instance.
"""

from __future__ import annotations

from pathlib import Path

KEEPALIVE = 20
THREADS = 128


def config(port: int, instance: str, database: str, cas: Path) -> str:
    """The YAML configuration of the server."""
    return f"""\
# Written by `convoy lab up`; do not edit (it is rewritten on every start).
server:
  - !channel
    address: "127.0.0.1:{port}"
    insecure-mode: true
authorization:
  method: none
thread-pool-size: {THREADS}
connections:
  - !sql-connection &sql
    connection-string: {database}
    pool-size: 10
    max-overflow: 20
storages:
  - !disk-storage &cas
    path: {cas}
caches:
  - !lru-action-cache &cache
    storage: *cas
    max-cached-refs: 65536
    allow-updates: true
    cache-failed-actions: false
schedulers:
  - !sql-scheduler &scheduler
    sql: *sql
    storage: *cas
    action-cache: *cache
    property-set: !dynamic-property-set
      match-property-keys: [Pool, Rig]
      unique-property-keys: [Pool]
      label-key: Pool
    bot-session-keepalive-timeout: {KEEPALIVE}
    session-expiry-timer-interval: 2
    poll-interval: 0.5
    bot-poll-interval: 0.5
    assigners:
      - !priority-age-assigner
        count: 1
        interval: 0.1
        failure-backoff: 0.5
        jitter-factor: 0.2
instances:
  - name: {instance}
    services:
      - !action-cache
        cache: *cache
      - !execution
        scheduler: *scheduler
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
      - !introspection
        scheduler: *scheduler
"""
