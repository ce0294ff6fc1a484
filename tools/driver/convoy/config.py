"""Loading and validating convoy.yaml, the driver's settings.

convoy.yaml sits at the root of the integration repository. Every key is
optional (an empty file means all defaults); `load_config` checks all of it
and either returns a Config or raises one ConvoyError listing every problem,
one line each, as `convoy.yaml:<line>: <where>: <what is wrong>; <how to fix it>`
(the same form and the same checker as convoy.manifest):

    queue: {mode: serial, poll_interval: 10}     # serial is the only mode so far
    parallelism: 2                               # task slots
    retries: {infrastructure: 2}                 # re-queue an infrastructure error this often
    git: {remote: origin, branch: main}          # where the candidate is pushed and tagged
    release: {tag_format: "v{year}.{month}.{n}"} # overrides the manifest's
    bazel: {startup_flags: [...], flags: [...]}  # added to every Bazel invocation
    bazel: {pass_env: [NPM_TOKEN]}               # secret-named variables Bazel may still get
    stages:                                      # in order; default: DEFAULT_STAGES
      - {name: build, command: build, targets: ["//integration/..."], tag_filter: ..., flags: [...],
         per_configuration: true, timeout: 3600, check_pools: false}
    plugins:
      - {name: log, type: log, events: ["*"], path: .convoy/events.jsonl}
      - {name: notify, type: command, events: [BUILD_FAIL], command: [scripts/notify, --to, ci]}
      - {name: hook, type: webhook, url: https://ci.example.com/hook, secret_env: CONVOY_HOOK_SECRET,
         timeout: 10, retries: 3}

`default_config_text()` is a commented convoy.yaml with the defaults (what
`convoy demo` writes).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from convoy.manifest import tag_format_problem
from convoy.models import EVENT_TYPES
from convoy.untrusted import WEBHOOK_SCHEMES, printable, redact_userinfo, url_problem
from convoy.yamlcheck import Checker, dotted, key_line, kind_of, parse_checked, read_text

CONFIG_NAME = "convoy.yaml"
QUEUE_MODES = ("serial",)
COMMANDS = ("build", "test")
PLUGIN_KINDS = ("log", "command", "webhook")
DEFAULT_TARGETS = ("//integration/...",)
MAX_NUMBER = 1e9  # seconds (31 years) or a count; more overflows timers (threading.TIMEOUT_MAX)

ALL_EVENTS = "*"

_TOP_KEYS = ("queue", "parallelism", "retries", "git", "release", "bazel", "stages", "plugins")
_QUEUE_KEYS = ("mode", "poll_interval")
_RETRIES_KEYS = ("infrastructure",)
_GIT_KEYS = ("remote", "branch")
_RELEASE_KEYS = ("tag_format",)
_BAZEL_KEYS = ("startup_flags", "flags", "pass_env")
_STAGE_KEYS = ("name", "command", "targets", "tag_filter", "flags", "per_configuration", "timeout", "check_pools")
_PLUGIN_KEYS = {  # name, type and events first
    "log": ("name", "type", "events", "path", "timeout", "replay"),
    "command": ("name", "type", "events", "command", "timeout", "replay"),
    "webhook": ("name", "type", "events", "url", "secret_env", "timeout", "retries", "replay"),
}
_ALL_PLUGIN_KEYS = tuple(dict.fromkeys(k for keys in _PLUGIN_KEYS.values() for k in keys))
# Flags convoy sets on every invocation itself; a stage or bazel.flags must not.
_DRIVER_FLAGS = ("--build_event_json_file", "--output_base", "--repo_env=CONVOY_CONFIGURATION=")

_STAGE_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_PLUGIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_REMOTE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class StageSpec:
    """One stage of the construction plan: one Bazel command per task.

    `tag_filter` becomes --test_tag_filters (and, for `build`,
    --build_tag_filters); `per_configuration` runs one task per affected
    configuration (False: one task, in the default configuration);
    `timeout` bounds one Bazel invocation, in seconds; `check_pools` asks
    that the hardware pools be checked before the stage runs.
    """

    name: str
    command: str
    targets: tuple[str, ...] = DEFAULT_TARGETS
    tag_filter: Optional[str] = None
    flags: tuple[str, ...] = ()
    per_configuration: bool = True
    timeout: float = 3600.0
    check_pools: bool = False

    def bazel_flags(self) -> tuple[str, ...]:
        """The stage's own flags for its Bazel command: the tag filter, then `flags`."""
        filters: tuple[str, ...] = ()
        if self.tag_filter is not None:
            filters = (f"--test_tag_filters={self.tag_filter}",)
            if self.command == "build":
                filters += (f"--build_tag_filters={self.tag_filter}",)
        return filters + self.flags


DEFAULT_STAGES: tuple[StageSpec, ...] = (
    StageSpec(name="build", command="build"),
    StageSpec(name="integration", command="test", tag_filter="convoy-integration"),
    StageSpec(name="configuration", command="test", tag_filter="convoy-configuration"),
    StageSpec(name="hardware", command="test", tag_filter="convoy-hardware"),
)


@dataclass(frozen=True)
class PluginSpec:
    """A subscriber to events (see convoy.plugins): a JSON-lines `log` at
    `path` (relative to the repo root), a `command` (argv, the event as JSON
    on stdin), or a `webhook` (JSON POST to `url`, signed with the secret in
    the environment variable `secret_env`). `timeout` is the budget for one
    delivery, all retries included; `retries` (webhook) counts attempts
    after the first. A plugin seen for the first time starts at the newest
    event; `replay` makes it get the whole event history first."""

    name: str
    kind: str
    events: tuple[str, ...] = (ALL_EVENTS,)
    path: Optional[str] = None
    command: tuple[str, ...] = ()
    url: Optional[str] = None
    secret_env: Optional[str] = None
    timeout: float = 10.0
    retries: int = 3
    replay: bool = False


@dataclass(frozen=True)
class Config:
    """A valid convoy.yaml. `path` is as given to load_config.

    `tag_format` is None unless convoy.yaml sets release.tag_format (then it
    overrides the manifest's).
    """

    path: str
    queue_mode: str = "serial"
    poll_interval: float = 10.0
    stages: tuple[StageSpec, ...] = DEFAULT_STAGES
    parallelism: int = 2
    infra_retries: int = 2
    remote: str = "origin"
    branch: str = "main"
    tag_format: Optional[str] = None
    bazel_startup_flags: tuple[str, ...] = ()
    bazel_flags: tuple[str, ...] = ()
    bazel_pass_env: tuple[str, ...] = ()
    plugins: tuple[PluginSpec, ...] = ()

    @property
    def secret_env(self) -> tuple[str, ...]:
        """The variables holding the plugins' secrets (never given to Bazel)."""
        return tuple(dict.fromkeys(p.secret_env for p in self.plugins if p.secret_env))

    def stage(self, name: str) -> StageSpec:
        """The stage called `name` (KeyError if there is none)."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


_DEFAULT_CONFIG_TEXT = """\
# convoy.yaml: how `convoy process` tests a candidate and where it merges it.
# Every key is optional; the values below are the defaults. Reference:
# docs/driver.md. `convoy process` and `convoy tag` load it and name every
# mistake in it at once; the other commands do not read it.

queue:
  mode: serial          # one candidate at a time, oldest request first (the only mode so far)
  poll_interval: 10     # seconds between looks at the queue (convoy process --forever)

parallelism: 2          # task slots: Bazel invocations of one stage run side by side

retries:
  infrastructure: 2     # an infrastructure error (Bazel crashed or timed out, git
                        # unreachable) re-queues the request this often, then: error

git:
  remote: origin        # the integration repository's remote to fetch, push and tag
  branch: main

# release:
#   tag_format: "v{year}.{month}.{n}"   # default: release.tag_format of the manifest

bazel:
  startup_flags: []     # e.g. [--output_user_root=/var/cache/convoy/bazel]
  flags: []             # added to every invocation, e.g. [--keep_going]

# The construction plan: stages run in order and a failed stage ends the
# build; a stage's tasks (one per affected configuration) run in parallel.
stages:
  - name: build
    command: build
    targets: ["//integration/..."]
  - name: integration
    command: test
    tag_filter: convoy-integration
  - name: configuration
    command: test
    tag_filter: convoy-configuration
  - name: hardware
    command: test
    tag_filter: convoy-hardware
    # flags: [--config=hil]   # run on the remote hardware lab's pools
    # check_pools: true       # check the pools before the stage starts
    timeout: 3600             # seconds for one Bazel invocation

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
"""


def default_config_text() -> str:
    """A commented convoy.yaml with the default stages and an event log
    plugin (.convoy/events.jsonl); load_config accepts it."""
    return _DEFAULT_CONFIG_TEXT


def load_config(path: str | os.PathLike[str], *, shown: Optional[str] = None) -> Config:
    """Reads, parses and validates the convoy.yaml at `path`.

    Problems are located as `<shown>:<line>:` (default: the file's name,
    convoy.yaml) and sorted by line; all of them are raised in one
    ConvoyError. A missing file is an error too: convoy never guesses the
    stages a repository wants.
    """
    shown = shown if shown is not None else Path(path).name
    text = read_text(path, shown, f"{CONFIG_NAME} not found at {os.fspath(path)}; "
                     "create it (see docs/driver.md) or run: convoy demo")
    return parse_config(text, os.fspath(path), shown=shown)


def parse_config(text: str, path: str, *, shown: str = CONFIG_NAME) -> Config:
    """Validates convoy.yaml's `text`; `path` is recorded in the Config."""
    checker = _ConfigChecker(shown)
    return parse_checked(text, checker, lambda document: checker.config(document, path))


class _ConfigChecker(Checker):
    """The generic checker of convoy.yamlcheck (duplicate and unknown keys,
    mappings, strings) plus the value types convoy.yaml has: numbers, booleans, lists."""

    # -- value checks ------------------------------------------------------

    def number(self, parent: Mapping, key: str, where: str, default: float, *, minimum: float = 0.0,
               integer: bool = False, above: bool = True, maximum: float = MAX_NUMBER) -> Any:
        """parent[key] if it is a finite number > minimum (>= with
        above=False) and <= maximum; an int if `integer`. The default when
        absent or wrong (nan and inf are wrong: a poll interval of nan polls
        without pause, a timeout of nan never ends)."""
        if key not in parent:
            return default
        value = parent[key]
        kind = "a whole number" if integer else "a number"
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            self.problem(
                key_line(parent, key), dotted(where, key), f"must be {kind}, not {kind_of(value)}",
                f"write it like {key}: {_number_example(default)}",
            )
            return default
        if isinstance(value, float) and not math.isfinite(value):  # (an int is; isfinite(10**400) overflows)
            self.problem(
                key_line(parent, key), dotted(where, key), f"must be a finite number, not {value}",
                f"write it like {key}: {_number_example(default)}",
            )
            return default
        if value < minimum or (above and value == minimum) or value > maximum:
            bound = f"greater than {minimum:g}" if above else f"at least {minimum:g}"
            if value > maximum:
                bound = f"at most {maximum:g}"
            self.problem(
                key_line(parent, key), dotted(where, key), f"must be {bound}, not {_number_text(value)}",
                f"write it like {key}: {_number_example(default)}",
            )
            return default
        return int(value) if integer else float(value)

    def boolean(self, parent: Mapping, key: str, where: str, default: bool) -> bool:
        if key not in parent:
            return default
        value = parent[key]
        if not isinstance(value, bool):
            self.problem(
                key_line(parent, key), dotted(where, key), f"must be true or false, not {kind_of(value)}",
                f"write {key}: true or {key}: false",
            )
            return default
        return value

    def strings(self, parent: Mapping, key: str, where: str, example: str, *, allow_empty: bool = True,
                missing_at: Optional[int] = None) -> Optional[tuple[str, ...]]:
        """parent[key] if it is a list of non-empty strings; reports items
        that are not, each at its own line. None if absent or not a list."""
        if key not in parent:
            if missing_at is not None:
                self.problem(missing_at, where, f"missing required key '{key}'", f"add it, e.g. {key}: {example}")
            return None
        items = parent[key]
        line = key_line(parent, key)
        if not isinstance(items, list):
            self.problem(line, dotted(where, key), f"must be a list, not {kind_of(items)}",
                         f"write it like {key}: {example}")
            return None
        if not items and not allow_empty:
            self.problem(line, dotted(where, key), "must not be empty", f"write it like {key}: {example}")
            return None
        result = []
        for index, item in enumerate(items):
            if isinstance(item, str) and item.strip():
                result.append(item)
            else:
                what = "empty strings" if isinstance(item, str) or item is None else kind_of(item)
                self.problem(_item_line(items, index, line), dotted(where, key),
                             f"items must be non-empty strings, not {what}",
                             "put the item in quotes or remove it")
        return tuple(result)

    def flag_list(self, parent: Mapping, key: str, where: str, example: str) -> tuple[str, ...]:
        """A list of Bazel flags: each starts with '-'; none that convoy sets itself."""
        flags = self.strings(parent, key, where, example)
        if flags is None:
            return ()
        items, line = parent[key], key_line(parent, key)
        for index, flag in enumerate(items):
            if not isinstance(flag, str) or not flag.strip():
                continue
            item_line = _item_line(items, index, line)
            if not flag.startswith("-"):
                self.problem(item_line, dotted(where, key), f"'{flag}' is not a flag (flags start with -)",
                             "write it as --name=value; targets go under a stage's targets:")
            elif flag.startswith(_DRIVER_FLAGS):
                self.problem(item_line, dotted(where, key), f"'{flag}' is set by convoy for every invocation",
                             "remove it")
        return flags

    def optional_string(self, parent: Mapping, key: str, where: str, example: str) -> Optional[str]:
        return self.string(parent, key, where, example=example)

    def section(self, document: Mapping, key: str, allowed: tuple[str, ...]) -> Mapping:
        """document[key] if it is a mapping (its unknown keys reported); {} otherwise."""
        section = self.mapping(document, key, "")
        if section is None:
            return {}
        self.unknown_keys(section, key, allowed)
        return section

    # -- the document --------------------------------------------------------

    def config(self, document: Any, path: str) -> Optional[Config]:
        if document is None:  # empty, or only comments: every default
            document = {}
        if not isinstance(document, Mapping):
            self.problem(1, "", f"convoy.yaml must be a mapping, not {kind_of(document)}",
                         "write it as 'key: value' lines (see docs/driver.md)")
            return None
        self.unknown_keys(document, "", _TOP_KEYS)

        queue = self.section(document, "queue", _QUEUE_KEYS)
        mode = self.optional_string(queue, "mode", "queue", "serial") or "serial"
        if mode not in QUEUE_MODES:
            self.problem(key_line(queue, "mode"), "queue.mode",
                         f"'{mode}' is not supported yet (only {', '.join(QUEUE_MODES)} is)", "write mode: serial")
        poll_interval = self.number(queue, "poll_interval", "queue", 10.0)

        parallelism = self.number(document, "parallelism", "", 2, minimum=1, integer=True, above=False)
        retries = self.section(document, "retries", _RETRIES_KEYS)
        infra_retries = self.number(retries, "infrastructure", "retries", 2, integer=True, above=False)

        git = self.section(document, "git", _GIT_KEYS)
        remote = self.name_string(git, "remote", "git", "origin", _REMOTE, "a git remote name like origin")
        branch = self.name_string(git, "branch", "git", "main", _BRANCH, "a branch name like main")
        if branch.endswith((".lock", "/")) or ".." in branch:
            self.problem(key_line(git, "branch"), "git.branch", f"'{branch}' is not a valid branch name",
                         "write a branch name like main")

        release = self.section(document, "release", _RELEASE_KEYS)
        tag_format = self.optional_string(release, "tag_format", "release", '"v{year}.{month}.{n}"')
        if tag_format is not None:
            problem = tag_format_problem(tag_format)
            if problem:
                self.problem(key_line(release, "tag_format"), "release.tag_format", problem,
                             'fix it, e.g. tag_format: "v{year}.{month}.{n}"')

        bazel = self.section(document, "bazel", _BAZEL_KEYS)
        startup_flags = self.flag_list(bazel, "startup_flags", "bazel", "[--output_user_root=/var/cache/bazel]")
        bazel_flags = self.flag_list(bazel, "flags", "bazel", "[--keep_going]")
        pass_env = self.env_names(bazel, "pass_env", "bazel", "[NPM_TOKEN]")

        stages = self.stages(document)
        plugins = self.plugins(document)
        if self.problems:
            return None
        return Config(
            path=path, queue_mode=mode, poll_interval=poll_interval, stages=stages, parallelism=parallelism,
            infra_retries=infra_retries, remote=remote, branch=branch, tag_format=tag_format,
            bazel_startup_flags=startup_flags, bazel_flags=bazel_flags, bazel_pass_env=pass_env, plugins=plugins,
        )

    def env_names(self, parent: Mapping, key: str, where: str, example: str) -> tuple[str, ...]:
        """A list of environment variable names (not values)."""
        names = self.strings(parent, key, where, example)
        if names is None:
            return ()
        for name in names:
            if not _ENV_NAME.fullmatch(name):
                self.problem(key_line(parent, key), dotted(where, key),
                             f"'{printable(name)}' is not an environment variable name",
                             f"write it like {key}: {example} (the variable's name, not its value)")
        return names

    def name_string(self, parent: Mapping, key: str, where: str, default: str, pattern: re.Pattern,
                    rule: str) -> str:
        value = self.optional_string(parent, key, where, default)
        if value is None:
            return default
        if not pattern.fullmatch(value):
            self.problem(key_line(parent, key), dotted(where, key), f"'{value}' is not {rule}",
                         f"write it like {key}: {default}")
        return value

    def items(self, document: Mapping, key: str, example: str) -> Optional[list[tuple[int, Any]]]:
        """(line, item) of the list document[key]; None if absent or mistyped."""
        if key not in document:
            return None
        items = document[key]
        line = key_line(document, key)
        if not isinstance(items, list):
            self.problem(line, key, f"must be a list, not {kind_of(items)}", f"write it as a list of '- {example}'")
            return None
        return [(_item_line(items, index, line), item) for index, item in enumerate(items)]

    def stages(self, document: Mapping) -> tuple[StageSpec, ...]:
        items = self.items(document, "stages", "name: build")
        if items is None:
            return DEFAULT_STAGES
        if not items:
            self.problem(key_line(document, "stages"), "stages", "must list at least one stage",
                         "add one, e.g. - {name: build, command: build}, or remove stages: for the defaults")
        stages = []
        for line, spec, duplicate in self.named(items, "stages", "stage"):
            stage = self.stage(spec, line)
            if stage is not None and not duplicate:
                stages.append(stage)
        return tuple(stages)

    def named(self, items: list[tuple[int, Any]], where: str, kind: str) -> list[tuple[int, Any, bool]]:
        """(line, item, whether its `name` repeats an earlier item's: reported)."""
        first_lines: dict[str, int] = {}
        result = []
        for line, spec in items:
            name = spec.get("name") if isinstance(spec, Mapping) else None
            duplicate = isinstance(name, str) and name in first_lines
            if duplicate:
                self.problem(key_line(spec, "name"), where, f"duplicate {kind} name '{name}' (first at line "
                             f"{first_lines[name]})", "rename one of them")
            elif isinstance(name, str):
                first_lines[name] = key_line(spec, "name")
            result.append((line, spec, duplicate))
        return result

    def stage(self, spec: Any, line: int) -> Optional[StageSpec]:
        if not isinstance(spec, Mapping):
            self.problem(line, "stages", f"each stage must be a mapping, not {kind_of(spec)}",
                         "write it like - {name: build, command: build}")
            return None
        errors = len(self.problems)
        name = self.string(spec, "name", "stages", missing_at=line, example="integration")
        where = f"stages.{name}" if name else "stages"
        self.unknown_keys(spec, where, _STAGE_KEYS)
        if name is not None and not _STAGE_NAME.fullmatch(name):
            self.problem(key_line(spec, "name"), where,
                         f"'{name}' is not a valid stage name (a lowercase letter, then a-z 0-9 _ -)", "rename it")
        command = self.string(spec, "command", where, missing_at=line, example="test")
        if command is not None and command not in COMMANDS:
            self.problem(key_line(spec, "command"), f"{where}.command",
                         f"unknown Bazel command '{command}' (expected: {', '.join(COMMANDS)})", "fix it")
        targets = self.strings(spec, "targets", where, '["//integration/..."]', allow_empty=False)
        for target in targets or ():
            if target.startswith("--") or any(c.isspace() for c in target):
                self.problem(key_line(spec, "targets"), f"{where}.targets", f"'{target}' is not a target pattern",
                             "write patterns like //integration/...; flags go under flags:")
        tag_filter = self.string(spec, "tag_filter", where, example="convoy-integration")
        if tag_filter is not None and any(c.isspace() for c in tag_filter):
            self.problem(key_line(spec, "tag_filter"), f"{where}.tag_filter",
                         f"'{tag_filter}' has spaces (Bazel tag filters are comma-separated)",
                         "write it like tag_filter: convoy-hardware,-manual")
        flags = self.flag_list(spec, "flags", where, "[--config=hil]")
        per_configuration = self.boolean(spec, "per_configuration", where, True)
        timeout = self.number(spec, "timeout", where, 3600.0)
        check_pools = self.boolean(spec, "check_pools", where, False)
        if len(self.problems) > errors or name is None or command is None:
            return None
        return StageSpec(
            name=name, command=command, targets=targets or DEFAULT_TARGETS, tag_filter=tag_filter, flags=flags,
            per_configuration=per_configuration, timeout=timeout, check_pools=check_pools,
        )

    def plugins(self, document: Mapping) -> tuple[PluginSpec, ...]:
        items = self.items(document, "plugins", "name: event-log")
        plugins = []
        for line, spec, duplicate in self.named(items or [], "plugins", "plugin"):
            plugin = self.plugin(spec, line)
            if plugin is not None and not duplicate:
                plugins.append(plugin)
        return tuple(plugins)

    def plugin(self, spec: Any, line: int) -> Optional[PluginSpec]:
        if not isinstance(spec, Mapping):
            self.problem(line, "plugins", f"each plugin must be a mapping, not {kind_of(spec)}",
                         "write it like - {name: event-log, type: log, path: .convoy/events.jsonl}")
            return None
        errors = len(self.problems)
        name = self.string(spec, "name", "plugins", missing_at=line, example="event-log")
        where = f"plugins.{name}" if name else "plugins"
        if name is not None and not _PLUGIN_NAME.fullmatch(name):
            self.problem(key_line(spec, "name"), where,
                         f"'{name}' is not a valid plugin name (a letter, then letters, digits, _ . -)", "rename it")
        kind = self.string(spec, "type", where, missing_at=line, example="log")
        if kind is not None and kind not in PLUGIN_KINDS:
            self.problem(key_line(spec, "type"), f"{where}.type",
                         f"unknown plugin type '{kind}' (expected: {', '.join(PLUGIN_KINDS)})", "fix it")
            kind = None
        self.unknown_keys(spec, where, _PLUGIN_KEYS[kind] if kind else _ALL_PLUGIN_KEYS)
        events = self.events(spec, where)
        values: dict[str, Any] = {}
        if kind is not None:
            if kind == "log":
                values["path"] = self.string(spec, "path", where, missing_at=line, example=".convoy/events.jsonl")
            elif kind == "command":
                argv = self.strings(spec, "command", where, "[scripts/notify, --channel, ci]", allow_empty=False,
                                    missing_at=line)
                values["command"] = argv or ()
            else:
                values["url"] = self.string(spec, "url", where, missing_at=line,
                                            example="https://ci.example.com/convoy-hook")
                problem = url_problem(values["url"], WEBHOOK_SCHEMES) if values["url"] is not None else None
                if problem:
                    self.problem(key_line(spec, "url"), f"{where}.url",
                                 f"'{printable(redact_userinfo(values['url']))}' {problem}",
                                 "write it like url: https://ci.example.com/convoy-hook")
                values["secret_env"] = self.string(
                    spec, "secret_env", where, missing_at=None, example="CONVOY_WEBHOOK_SECRET")
                if "secret_env" not in spec:
                    self.problem(line, where, "a webhook needs secret_env (the environment variable holding its "
                                 "HMAC secret)", "add it, e.g. secret_env: CONVOY_WEBHOOK_SECRET")
                elif values["secret_env"] is not None and not _ENV_NAME.fullmatch(values["secret_env"]):
                    self.problem(key_line(spec, "secret_env"), f"{where}.secret_env",
                                 f"'{values['secret_env']}' is not an environment variable name",
                                 "write a name like CONVOY_WEBHOOK_SECRET (the variable, not the secret)")
                values["retries"] = self.number(spec, "retries", where, 3, integer=True, above=False)
        timeout = self.number(spec, "timeout", where, 10.0)
        replay = self.boolean(spec, "replay", where, False)
        if len(self.problems) > errors or name is None or kind is None:
            return None
        return PluginSpec(name=name, kind=kind, events=events, timeout=timeout, replay=replay, **values)

    def events(self, spec: Mapping, where: str) -> tuple[str, ...]:
        names = self.strings(spec, "events", where, '[BUILD_FAIL, RELEASE_TAGGED] or ["*"]', allow_empty=False)
        if names is None:
            return (ALL_EVENTS,)
        items, line = spec["events"], key_line(spec, "events")
        seen: set[str] = set()
        for index, name in enumerate(items):
            if not isinstance(name, str) or not name.strip():
                continue
            item_line = _item_line(items, index, line)
            if name != ALL_EVENTS and name not in EVENT_TYPES:
                close = [e for e in EVENT_TYPES if e == name.upper().replace("-", "_")]
                hint = f"did you mean {close[0]}?" if close else f"expected one of: {', '.join(EVENT_TYPES)}, or \"*\""
                self.problem(item_line, f"{where}.events", f"unknown event '{name}' ({hint})", "fix or remove it")
            elif name in seen:
                self.problem(item_line, f"{where}.events", f"'{name}' is listed twice", "remove one")
            seen.add(name)
        if ALL_EVENTS in seen and len(names) > 1:
            self.problem(line, f"{where}.events", '"*" already means every event',
                         'write events: ["*"] alone, or list the events you want')
        return names


def _item_line(items: Any, index: int, default: int) -> int:
    """The 1-based line of items[index] in a round-trip list."""
    try:
        return items.lc.item(index)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return default


def _number_example(default: float) -> str:
    return f"{default:g}"


def _number_text(value: float) -> str:
    """`value` for a message; a huge int (10**400 is no float) by its size."""
    if isinstance(value, float) or abs(value) < 10**15:
        return f"{value:g}"
    return f"a number of {len(str(abs(value)))} digits"
