"""convoy.config: convoy.yaml loads into a Config; every mistake is reported
at once, one line each, with its line, what is wrong and how to fix it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from convoy.config import (
    DEFAULT_STAGES,
    EVENT_TYPES,
    Config,
    ReleaseSpec,
    StageSpec,
    default_config_text,
    load_config,
)
from convoy.errors import ConvoyError
from convoy.plugins import CommandSpec, LogSpec, WebhookSpec


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "convoy.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConvoyError) as info:
        load_config(_write(tmp_path, text))
    return list(info.value.problems)


def test_the_default_text_loads_to_the_defaults(tmp_path):
    path = _write(tmp_path, default_config_text())

    config = load_config(path)

    assert config == Config(
        path=str(path),
        plugins=(LogSpec(name="event-log", events=("*",), path=".convoy/events.jsonl", replay=True),),
    )
    assert config.stages == DEFAULT_STAGES
    assert (config.queue_mode, config.poll_interval, config.parallelism, config.infra_retries) == ("serial", 10, 2, 2)
    assert (config.remote, config.branch, config.tag_format) == ("origin", "main", None)
    assert default_config_text().count("\n#") >= 3  # it explains itself


def test_default_stages():
    assert [(s.name, s.command, s.tag_filter) for s in DEFAULT_STAGES] == [
        ("build", "build", None),
        ("integration", "test", "convoy-integration"),
        ("configuration", "test", "convoy-configuration"),
        ("hardware", "test", "convoy-hardware"),
    ]
    assert all(s.targets == ("//integration/...",) and s.per_configuration and s.timeout == 3600
               and not s.check_pools and s.flags == () for s in DEFAULT_STAGES)


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_file_is_every_default(tmp_path, text):
    path = _write(tmp_path, text)
    assert load_config(path) == Config(path=str(path), stages=DEFAULT_STAGES, plugins=())


def test_everything_set(tmp_path):
    path = _write(tmp_path, """\
        queue: {mode: serial, poll_interval: 2.5}
        parallelism: 4
        retries:
          infrastructure: 0
        git: {remote: upstream, branch: release/2026}
        release:
          tag_format: "rel-{year}.{month:02d}.{day}-{n}"
        bazel:
          startup_flags: [--output_user_root=/var/cache/bazel]
          flags: [--keep_going, --config=ci]
        stages:
          - name: build
            command: build
            targets: ["//integration/...", "-//integration/slow/..."]
            tag_filter: -manual
          - name: hw
            command: test
            tag_filter: convoy-hardware
            flags: [--config=hil]
            per_configuration: false
            timeout: 90
            check_pools: true
        plugins:
          - name: log
            type: log
            path: /var/log/convoy.jsonl
          - name: notify
            type: command
            events: [BUILD_FAIL, REQUEST_REJECTED]
            command: [scripts/notify, --to, "ci team"]
            timeout: 5
          - name: hook
            type: webhook
            events: ["*"]
            url: https://ci.example.com/hook
            secret_env: CONVOY_HOOK_SECRET
            timeout: 2
            retries: 0
        """)

    config = load_config(path)

    assert config == Config(
        path=str(path), queue_mode="serial", poll_interval=2.5, parallelism=4, infra_retries=0, remote="upstream",
        branch="release/2026", tag_format="rel-{year}.{month:02d}.{day}-{n}",
        release=ReleaseSpec(tag_format="rel-{year}.{month:02d}.{day}-{n}"),
        bazel_startup_flags=("--output_user_root=/var/cache/bazel",), bazel_flags=("--keep_going", "--config=ci"),
        stages=(
            StageSpec(name="build", command="build", targets=("//integration/...", "-//integration/slow/..."),
                      tag_filter="-manual"),
            StageSpec(name="hw", command="test", tag_filter="convoy-hardware", flags=("--config=hil",),
                      per_configuration=False, timeout=90.0, check_pools=True),
        ),
        plugins=(
            LogSpec(name="log", path="/var/log/convoy.jsonl"),
            CommandSpec(name="notify", events=("BUILD_FAIL", "REQUEST_REJECTED"),
                        command=("scripts/notify", "--to", "ci team"), timeout=5.0),
            WebhookSpec(name="hook", url="https://ci.example.com/hook",
                        secret_env="CONVOY_HOOK_SECRET", timeout=2.0, retries=0),
        ),
    )
    assert config.stage("hw").check_pools
    with pytest.raises(KeyError):
        config.stage("nope")


def test_stage_flags():
    assert StageSpec("t", "test", tag_filter="convoy-hardware", flags=("--config=hil",)).bazel_flags() == (
        "--test_tag_filters=convoy-hardware", "--config=hil")
    assert StageSpec("b", "build", tag_filter="-manual").bazel_flags() == (
        "--test_tag_filters=-manual", "--build_tag_filters=-manual")
    assert StageSpec("b", "build").bazel_flags() == ()


def test_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConvoyError) as info:
        load_config(tmp_path / "convoy.yaml")
    assert str(info.value) == (
        f"convoy.yaml not found at {tmp_path / 'convoy.yaml'}; create it (see docs/driver.md) or run: convoy demo"
    )


BAD = """\
queue:
  mode: zipper
  poll_interval: 0
parallelism: two
retries:
  infrastructure: -1
  build: 3
git:
  remote: "my remote"
  branch: main..x
release:
  tag_format: "v{year}.{month}"
bazel:
  startup_flags: --batch
  flags: [--keep_going, keep_going, --build_event_json_file=/x]
stages:
  - name: build
    command: build
  - name: Integration
    command: run
    targets: [//integration/..., --config=x]
    per_configuration: yes
    timeout: true
  - name: build
    command: test
  - command: test
  - just a string
plugins:
  - name: log
    type: log
  - name: hook
    type: webhook
    url: ftp://x
    events: [BUILD_FAIL, build_fail, BUILD_FAIL, NOPE]
  - name: cmd
    type: command
    command: scripts/notify --x
    retries: 2
  - name: log
    type: log
    path: x.jsonl
    events: ["*", BUILD_START]
  - name: x
    type: slack
colour: blue
"""


def test_every_problem_at_once_sorted_by_line(tmp_path):
    assert _problems(tmp_path, BAD) == [
        "convoy.yaml:2: queue.mode: 'zipper' is not a queue mode (known: serial, speculative, batch); write mode: serial",
        "convoy.yaml:3: queue.poll_interval: must be greater than 0, not 0; write it like poll_interval: 10",
        "convoy.yaml:4: parallelism: must be a whole number, not a string; write it like parallelism: 2",
        "convoy.yaml:6: retries.infrastructure: must be at least 0, not -1; write it like infrastructure: 2",
        "convoy.yaml:7: retries: unknown key 'build' (expected: infrastructure); fix or remove it",
        "convoy.yaml:9: git.remote: 'my remote' is not a git remote name like origin; write it like remote: origin",
        "convoy.yaml:10: git.branch: 'main..x' is not a valid branch name; write a branch name like main",
        "convoy.yaml:12: release.tag_format: 'v{year}.{month}' has no {n} (the release number that keeps tags "
        'unique); fix it, e.g. tag_format: "v{year}.{month}.{n}"',
        "convoy.yaml:14: bazel.startup_flags: must be a list, not a string; write it like "
        "startup_flags: [--output_user_root=/var/cache/bazel]",
        "convoy.yaml:15: bazel.flags: 'keep_going' is not a flag (flags start with -); write it as --name=value; "
        "targets go under a stage's targets:",
        "convoy.yaml:15: bazel.flags: '--build_event_json_file=/x' is set by convoy for every invocation; remove it",
        "convoy.yaml:19: stages.Integration: 'Integration' is not a valid stage name (a lowercase letter, then "
        "a-z 0-9 _ -); rename it",
        "convoy.yaml:20: stages.Integration.command: unknown Bazel command 'run' (expected: build, test); fix it",
        "convoy.yaml:21: stages.Integration.targets: '--config=x' is not a target pattern; write patterns like "
        "//integration/...; flags go under flags:",
        "convoy.yaml:22: stages.Integration.per_configuration: must be true or false, not a string; write "
        "per_configuration: true or per_configuration: false",
        "convoy.yaml:23: stages.Integration.timeout: must be a number, not a boolean; write it like timeout: 3600",
        "convoy.yaml:24: stages: duplicate stage name 'build' (first at line 17); rename one of them",
        "convoy.yaml:26: stages: missing required key 'name'; add it, e.g. name: integration",
        "convoy.yaml:27: stages: each stage must be a mapping, not a string; write it like "
        "- {name: build, command: build}",
        "convoy.yaml:29: plugins.log: missing required key 'path'; add it, e.g. path: .convoy/events.jsonl",
        "convoy.yaml:31: plugins.hook: a webhook needs secret_env (the environment variable holding its HMAC "
        "secret); add it, e.g. secret_env: CONVOY_WEBHOOK_SECRET",
        "convoy.yaml:33: plugins.hook.url: 'ftp://x' must start with https://, http://; write it like url: "
        "https://ci.example.com/convoy-hook",
        "convoy.yaml:34: plugins.hook.events: unknown event 'build_fail' (did you mean BUILD_FAIL?); fix or remove it",
        "convoy.yaml:34: plugins.hook.events: 'BUILD_FAIL' is listed twice; remove one",
        f"convoy.yaml:34: plugins.hook.events: unknown event 'NOPE' (expected one of: {', '.join(EVENT_TYPES)}, "
        'or "*"); fix or remove it',
        "convoy.yaml:37: plugins.cmd.command: must be a list, not a string; write it like "
        "command: [scripts/notify, --channel, ci]",
        "convoy.yaml:38: plugins.cmd: unknown key 'retries' (expected: name, type, events, command, timeout, replay); "
        "fix or remove it",
        "convoy.yaml:39: plugins: duplicate plugin name 'log' (first at line 29); rename one of them",
        'convoy.yaml:42: plugins.log.events: "*" already means every event; write events: ["*"] alone, or list '
        "the events you want",
        "convoy.yaml:44: plugins.x.type: unknown plugin type 'slack' (expected: log, command, webhook, forge-status); fix it",
        "convoy.yaml:45: unknown key 'colour' (expected: queue, pools, parallelism, retries, git, release, bazel, "
        "stages, plugins, serve, quarantine, store, logs_url); fix or remove it",
    ]


@pytest.mark.parametrize("text, problem", [
    ("stages: []\n", "convoy.yaml:1: stages: must list at least one stage; add one, e.g. - {name: build, "
                     "command: build}, or remove stages: for the defaults"),
    ("stages: {build: {}}\n", "convoy.yaml:1: stages: must be a list, not a mapping; write it as a list of "
                              "'- name: build'"),
    ("stages:\n  - name: build\n", "convoy.yaml:2: stages.build: missing required key 'command'; add it, e.g. "
                                   "command: test"),
    ("stages:\n  - {name: b, command: build, targets: []}\n",
     'convoy.yaml:2: stages.b.targets: must not be empty; write it like targets: ["//integration/..."]'),
    ("stages:\n  - {name: b, command: test, tag_filter: a b}\n",
     "convoy.yaml:2: stages.b.tag_filter: 'a b' has spaces (Bazel tag filters are comma-separated); write it "
     "like tag_filter: convoy-hardware,-manual"),
    ("stages:\n  - {name: b, command: test, flags: [--repo_env=CONVOY_CONFIGURATION=x]}\n",
     "convoy.yaml:2: stages.b.flags: '--repo_env=CONVOY_CONFIGURATION=x' is set by convoy for every invocation; "
     "remove it"),
    ("stages:\n  - {name: b, command: test, timeout: -5}\n",
     "convoy.yaml:2: stages.b.timeout: must be greater than 0, not -5; write it like timeout: 3600"),
    ("stages:\n  - {name: b, command: test, flags: [--a, 3]}\n",
     "convoy.yaml:2: stages.b.flags: items must be non-empty strings, not a number; put the item in quotes or "
     "remove it"),
    ("parallelism: 0\n", "convoy.yaml:1: parallelism: must be at least 1, not 0; write it like parallelism: 2"),
    ("parallelism: 1.5\n", "convoy.yaml:1: parallelism: must be a whole number, not a number; write it like "
                           "parallelism: 2"),
    ("parallelism: true\n", "convoy.yaml:1: parallelism: must be a whole number, not a boolean; write it like "
                            "parallelism: 2"),
    ("queue: serial\n", "convoy.yaml:1: queue: must be a mapping, not a string; write it as indented "
                        "'name: value' lines"),
    ("git:\n  remote:\n", "convoy.yaml:2: git.remote: has no value; give it one, e.g. remote: origin"),
    ("- a\n- b\n", "convoy.yaml:1: convoy.yaml must be a mapping, not a list; write it as 'key: value' lines "
                   "(see docs/driver.md)"),
    ("parallelism: 2\nparallelism: 3\n", "convoy.yaml:2: duplicate key 'parallelism' (first at line 1); remove "
                                         "one of them"),
    ("stages:\n  - {name: b, command: test, name: c}\n", "convoy.yaml:2: stages: duplicate key 'name' (first at "
                                                         "line 2); remove one of them"),
    ("plugins:\n  - {name: w, type: webhook, url: 'https://x', secret_env: my secret}\n",
     "convoy.yaml:2: plugins.w.secret_env: 'my secret' is not an environment variable name; write a name like "
     "CONVOY_WEBHOOK_SECRET (the variable, not the secret)"),
    ("plugins:\n  - {name: w, type: webhook, url: 'https://x', secret_env: S, retries: -1}\n",
     "convoy.yaml:2: plugins.w.retries: must be at least 0, not -1; write it like retries: 3"),
    ("plugins:\n  - {name: l, type: log, path: x, events: []}\n",
     "convoy.yaml:2: plugins.l.events: must not be empty; write it like events: [BUILD_FAIL, RELEASE_TAGGED] or "
     '["*"]'),
    ("plugins:\n  - {name: l, type: log, path: x, url: 'https://x'}\n",
     "convoy.yaml:2: plugins.l: unknown key 'url' (expected: name, type, events, path, timeout, replay); fix or remove it"),
    ("plugins:\n  - {name: c, type: command, command: []}\n",
     "convoy.yaml:2: plugins.c.command: must not be empty; write it like command: [scripts/notify, --channel, ci]"),
    ("plugins:\n  - {type: log, path: x}\n",
     "convoy.yaml:2: plugins: missing required key 'name'; add it, e.g. name: event-log"),
    ("plugins:\n  - {name: 1x, type: log, path: x}\n",
     "convoy.yaml:2: plugins.1x: '1x' is not a valid plugin name (a letter, then letters, digits, _ . -); rename it"),
    ("release:\n  tag_format: 'v{major}.{n}'\n",
     "convoy.yaml:2: release.tag_format: 'v{major}.{n}' uses unknown fields {major} (only {year}, {month}, {day}, "
     '{n} exist); fix it, e.g. tag_format: "v{year}.{month}.{n}"'),
    ("stages: [\n", "convoy.yaml:2: invalid YAML: expected the node content, but found '<stream end>' (while "
                    "parsing a flow node started at line 2); fix the YAML syntax"),
    ("<<<<<<< HEAD\nparallelism: 2\n", "convoy.yaml:1: unresolved merge conflict marker; resolve the merge "
                                       "conflict (keep the right lines, delete the <<<<<<< ======= >>>>>>> markers)"),
])
def test_one_mistake(tmp_path, text, problem):
    assert _problems(tmp_path, text) == [problem]


def test_not_utf8(tmp_path):
    path = tmp_path / "convoy.yaml"
    path.write_bytes(b"parallelism: 2\nbranch: caf\xe9\n")
    with pytest.raises(ConvoyError) as info:
        load_config(path)
    assert str(info.value) == "convoy.yaml:2: not UTF-8 text; save the file as UTF-8"


def test_shown_names_the_file_in_messages(tmp_path):
    path = _write(tmp_path, "parallelism: 0\n")
    with pytest.raises(ConvoyError) as info:
        load_config(path, shown="ci/convoy.yaml")
    assert str(info.value).startswith("ci/convoy.yaml:1: parallelism:")


def test_event_types_are_the_designs():
    assert EVENT_TYPES[:15] == (
        "REQUEST_QUEUED", "BUILD_START", "STAGE_START", "TASK_START", "TASK_COMPLETE", "TASK_SUCCESS", "TASK_FAIL",
        "STAGE_COMPLETE", "BUILD_COMPLETE", "BUILD_SUCCESS", "BUILD_FAIL", "MANIFEST_UPDATED", "RELEASE_TAGGED",
        "REQUEST_REJECTED", "PLUGIN_ERROR",
    )
    assert set(EVENT_TYPES[15:19]) == {"REQUEST_SUPERSEDED", "REQUEST_CANCELLED", "REQUEST_REQUEUED", "REQUEST_ERROR"}
    assert EVENT_TYPES[19:23] == ("TRY_QUEUED", "TRY_START", "TRY_PASSED", "TRY_FAILED")  # convoy try
    assert EVENT_TYPES[23:24] == ("RIG_HEALTH_CHANGED",)  # the lab's rig health (convoy.lab.health)
    assert EVENT_TYPES[24:] == ("QUEUE_PAUSED", "QUEUE_RESUMED", "QUEUE_DRAINING", "REQUEST_PROMOTED")  # steering
