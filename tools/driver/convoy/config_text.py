"""The commented convoy.yaml that `convoy demo` and `convoy init` write: every default, spelled out.

    Path("convoy.yaml").write_text(default_config_text())

convoy.config's load_config accepts it and gives the defaults of its
Config, with one plugin more (the event log, .convoy/events.jsonl); a test
checks that the two agree.
"""

from __future__ import annotations

_DEFAULT_CONFIG_TEXT = """\
# convoy.yaml: how `convoy process` tests a candidate and where it merges it.
# Every key is optional; the values below are the defaults. Reference:
# docs/driver.md. `convoy process` and `convoy tag` load it and name every
# mistake in it at once; the other commands do not read it.

queue:
  mode: serial          # serial: one candidate at a time, oldest request first;
                        # speculative: up to `window` in flight, each built on the one ahead;
                        # batch: up to `batch_size` requests in one candidate, split when it fails
  poll_interval: 10     # seconds between looks at the queue (convoy process --forever)
  window: 4             # speculative, batch: candidates in flight at most (halves on a failure)
  window_floor: 1       # ... and at least
  batch_size: 4         # batch: requests in one candidate at most
  max_bisect: 3         # batch: splits of a failed batch before testing one request at a time
  lease_ttl: 30         # several workers on one store: seconds before a dead worker's queue is taken over
  spare_workers: false  # several workers: the ones on standby run stage tasks the scheduling one offers

# pools:                # rigs per hardware pool, for a `check_pools: true` stage in the
#   rover-rigs: 2       # speculative and batch modes (a pool not named here is not limited)

parallelism: 2          # task slots: Bazel invocations of one stage run side by side

retries:
  infrastructure: 2     # an infrastructure error (Bazel crashed or timed out, git
                        # unreachable) re-queues the request this often, then: error

git:
  remote: origin        # the integration repository's remote to fetch, push and tag
  branch: main

# release:
#   tag_format: "v{year}.{month}.{n}"   # default: release.tag_format of the manifest
#   artifacts: [//product:distribution]    # built per affected configuration, from the tested candidate,
#                                       # before the merge; or {rover: [...], drone: [...]}
#   store: .convoy/releases             # <store>/<tag>/: artifacts, SHA256SUMS, NOTES.md, provenance
#   keep: 20                            # convoy release prune: releases that keep their artifacts
#   changelog: CHANGELOG.md             # each candidate's notes appended, in the commit that is tested
#   signing:                            # SSH-signs the tag and the provenance statement
#     key: ~/.ssh/convoy_release
#     allowed_signers: .convoy/allowed_signers   # "<principal> <public key>", for convoy verify
#     principal: release@example.com

bazel:
  startup_flags: []     # e.g. [--output_user_root=/var/cache/convoy/bazel]
  flags: []             # added to every invocation, e.g. [--keep_going]
  disk_cache: .convoy/cache/bazel-disk   # one Bazel disk cache for every slot; false: none
  disk_cache_max_gb: 10                  # convoy removes the least recently used entries above this

# The construction plan: stages run in order and a failed stage ends the
# build; a stage's tasks (one per affected configuration) run in parallel.
stages:
  - name: build
    command: build
    targets: ["//integration/..."]
  - name: integration
    command: test
    tag_filter: convoy-integration
    # affected_only: true     # only the tests that depend on a component whose pin moved
    # flaky_test_attempts: 2  # Bazel's --flaky_test_attempts: a test that fails, then passes, is FLAKY
    # retry_failed: 1         # a failing test that passed on main runs once more (default 1; 0: never)
  - name: configuration
    command: test
    tag_filter: convoy-configuration
  - name: hardware
    command: test
    tag_filter: convoy-hardware
    # flags: [--config=hil]   # run on the remote hardware lab's pools
    # check_pools: true       # check the pools before the stage starts
    timeout: 3600             # seconds for one Bazel invocation

# Failing tests that do not reject a request until a date; each is reported
# (convoy status, the release notes, the provenance, convoy flakes). An entry
# past its date is an error: fix the test, or move the date.
# quarantine:
#   - target: //integration:plan_to_motion_test
#     reason: "times out on a loaded host (#123)"
#     until: 2026-12-31
#     configurations: [rover]   # default: every configuration

# Subscribers to events. A plugin that fails never fails a build; its
# failure is recorded as a PLUGIN_ERROR event.
plugins:
  - name: event-log
    type: log
    events: ["*"]
    path: .convoy/events.jsonl
    replay: true               # a new plugin starts at the newest event; this one gets the history too
  # - name: notify
  #   type: command
  #   events: [BUILD_FAIL, REQUEST_REJECTED]
  #   command: [scripts/notify-component]     # gets the event as JSON on stdin
  # - name: ci
  #   type: webhook
  #   events: [RELEASE_TAGGED, REQUEST_REJECTED]
  #   url: https://ci.example.com/convoy-hook
  #   secret_env: CONVOY_WEBHOOK_SECRET       # X-Convoy-Signature: sha256=<HMAC of the body>
  #   timeout: 10
  #   retries: 3

# convoy serve: the JSON API and the forges' webhooks (docs/api.md). Tokens
# and secrets are never written here: only the variables (or the file) that
# hold them. Without tokens, nothing can be submitted over HTTP.
# serve:
#   reads: open                # open: anyone may read the queue; token: GETs need a token too
#   max_body_kib: 1024         # a larger request body is refused (413)
#   tokens_file: /etc/convoy/serve-tokens   # lines of NAME SCOPE TOKEN, mode 0600
#   tokens:
#     - {name: ci-messages, env: CONVOY_TOKEN_MESSAGES, components: [messages]}
#     - {name: ops, env: CONVOY_TOKEN_OPS, admin: true}   # may also cancel and retry
#   github: {secret_env: CONVOY_GITHUB_SECRET}           # verifies X-Hub-Signature-256
#   gitlab: {token_env: CONVOY_GITLAB_TOKEN}             # compared with X-Gitlab-Token

# Where the queue's state lives: the checkout's .convoy/state.db (SQLite)
# unless this names another store; CONVOY_STORE_URL, when set, wins. Never a
# password here: libpq reads it from PGPASSFILE (~/.pgpass). docs/driver.md.
# store: postgresql://convoy@db.example.com/convoy
# logs_url: /srv/convoy/logs   # each task's log copied where every worker reads it (default: .convoy/logs only)
"""


def default_config_text() -> str:
    """A commented convoy.yaml with the default stages and an event log
    plugin (.convoy/events.jsonl); load_config accepts it."""
    return _DEFAULT_CONFIG_TEXT
