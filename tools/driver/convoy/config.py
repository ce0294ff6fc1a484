"""Loading and validating convoy.yaml, the driver's settings.

convoy.yaml sits at the root of the integration repository. Every key is
optional (an empty file means all defaults); `load_config` checks all of it
and either returns a Config or raises one ConvoyError listing every problem,
one line each, as `convoy.yaml:<line>: <where>: <what is wrong>; <how to fix it>`
(the same form and the same checker as convoy.manifest):

    queue: {mode: serial, poll_interval: 10}     # serial, speculative or batch (convoy.queue)
    queue: {window: 4, window_floor: 1, batch_size: 4, max_bisect: 3}   # speculative and batch
    pools: {rover-rigs: 2, drone-rigs: 2}        # rigs per pool (default: the lab's healthy workers)
    parallelism: 2                               # task slots
    retries: {infrastructure: 2}                 # re-queue an infrastructure error this often
    git: {remote: origin, branch: main}          # where the candidate is pushed and tagged
    release: {tag_format: "v{year}.{month}.{n}"} # overrides the manifest's
    release: {artifacts: [//product:distribution], store: .convoy/releases, changelog: CHANGELOG.md,
              signing: {key: ..., allowed_signers: ...}}   # releases (convoy.config_release)
    bazel: {startup_flags: [...], flags: [...]}  # added to every Bazel invocation
    bazel: {pass_env: [NPM_TOKEN]}               # secret-named variables Bazel may still get
    bazel: {disk_cache: .convoy/cache/bazel-disk, disk_cache_max_gb: 10}   # shared by every slot; false: none
    stages:                                      # in order; default: DEFAULT_STAGES
      - {name: build, command: build, targets: ["//integration/..."], tag_filter: ..., flags: [...],
         per_configuration: true, timeout: 3600, check_pools: false, affected_only: false,
         flaky_test_attempts: 1, retry_failed: 1}   # a test stage's retries (convoy.config_flaky)
    quarantine: [{target: //integration:t, reason: ..., until: 2026-12-31, configurations: [rover]}]
    plugins:
      - {name: log, type: log, events: ["*"], path: .convoy/events.jsonl}
      - {name: notify, type: command, events: [BUILD_FAIL], command: [scripts/notify, --to, ci]}
      - {name: hook, type: webhook, url: https://ci.example.com/hook, secret_env: CONVOY_HOOK_SECRET,
         timeout: 10, retries: 3}
      - {name: status, type: forge-status, forge: github, token_env: CONVOY_FORGE_TOKEN,
         link_base: https://convoy.example.com}    # commit statuses (convoy.config_forge)
    serve: {reads: open, tokens: [...], github: {secret_env: ...}}   # convoy serve (convoy.config_serve)

`default_config_text()` is a commented convoy.yaml with the defaults (what
`convoy demo` writes; it is convoy.config_text's). The checker walks the
document section by section; the value types it checks (numbers, booleans,
lists, flags, ...) are convoy.config_values'.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from convoy.config_flaky import QuarantineEntry, check_quarantine, check_stage_retries
from convoy.config_forge import FORGE_STATUS_KEYS, STATUS_EVENTS, check_forge_status
from convoy.config_release import ALL_CONFIGURATIONS, RELEASE_STAGE, ReleaseSpec, SigningSpec, check_release
from convoy.config_serve import ServeSpec, TokenSpec, check_serve
from convoy.config_stage import DEFAULT_STAGES, DEFAULT_TARGETS, StageSpec
from convoy.config_text import default_config_text
from convoy.config_values import ENV_NAME, MAX_NUMBER, ValueChecker, line_of_item
from convoy.models import EVENT_TYPES
from convoy.untrusted import WEBHOOK_SCHEMES, printable, redact_userinfo, url_problem
from convoy.yamlcheck import key_line, kind_of, parse_checked, read_text

__all__ = [
    "ALL_EVENTS", "COMMANDS", "CONFIG_NAME", "DEFAULT_STAGES", "DEFAULT_TARGETS", "EVENT_TYPES", "MAX_NUMBER",
    "PLUGIN_KINDS", "QUEUE_MODES", "Config", "PluginSpec", "ReleaseSpec", "ServeSpec", "SigningSpec", "StageSpec",
    "TokenSpec",
    "default_config_text", "load_config", "parse_config",
]

CONFIG_NAME = "convoy.yaml"
QUEUE_MODES = ("serial", "speculative", "batch")
COMMANDS = ("build", "test")
PLUGIN_KINDS = ("log", "command", "webhook", "forge-status")

ALL_EVENTS = "*"

_TOP_KEYS = ("queue", "pools", "parallelism", "retries", "git", "release", "bazel", "stages", "plugins", "serve",
             "quarantine")
_QUEUE_KEYS = ("mode", "poll_interval", "window", "window_floor", "batch_size", "max_bisect")
_RETRIES_KEYS = ("infrastructure",)
_GIT_KEYS = ("remote", "branch")
_BAZEL_KEYS = ("startup_flags", "flags", "pass_env", "disk_cache", "disk_cache_max_gb")
_STAGE_KEYS = ("name", "command", "targets", "tag_filter", "flags", "per_configuration", "timeout", "check_pools",
               "affected_only", "flaky_test_attempts", "retry_failed", "rig_retries", "rig_bad_after", "lab_dir")
DEFAULT_DISK_CACHE = ".convoy/cache/bazel-disk"
_PLUGIN_KEYS = {  # name, type and events first
    "log": ("name", "type", "events", "path", "timeout", "replay"),
    "command": ("name", "type", "events", "command", "timeout", "replay"),
    "webhook": ("name", "type", "events", "url", "secret_env", "timeout", "retries", "replay"),
    "forge-status": FORGE_STATUS_KEYS,
}
_ALL_PLUGIN_KEYS = tuple(dict.fromkeys(k for keys in _PLUGIN_KEYS.values() for k in keys))

_STAGE_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_PLUGIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_REMOTE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class PluginSpec:
    """A subscriber to events (see convoy.plugins): a JSON-lines `log` at
    `path` (relative to the repo root), a `command` (argv, the event as JSON
    on stdin), or a `webhook` (JSON POST to `url`, signed with the secret in
    the environment variable `secret_env`), or a `forge-status` (commit
    statuses on `forge`'s API at `url`, for remotes on `host`, with the
    token in `secret_env` and links to `link_base`; convoy.config_forge).
    `timeout` is the budget for one delivery, all retries included;
    `retries` (webhook, forge-status) counts attempts after the first. A
    plugin seen for the first time starts at the newest event; `replay`
    makes it get the whole event history first."""

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
    forge: Optional[str] = None
    host: Optional[str] = None
    link_base: Optional[str] = None
    context: Optional[str] = None


@dataclass(frozen=True)
class Config:
    """A valid convoy.yaml. `path` is as given to load_config.

    `tag_format` is None unless convoy.yaml sets release.tag_format (then it
    overrides the manifest's). `bazel_disk_cache` is the Bazel disk cache
    every slot shares (relative to the checkout, or absolute; None: no disk
    cache), kept under `bazel_disk_cache_max_gb` by convoy.diskcache.
    """

    path: str
    queue_mode: str = "serial"
    poll_interval: float = 10.0
    queue_window: int = 4
    queue_window_floor: int = 1
    queue_batch_size: int = 4
    queue_max_bisect: int = 3
    pools: Optional[Mapping[str, int]] = None  # rigs per pool; None: ask the lab
    stages: tuple[StageSpec, ...] = DEFAULT_STAGES
    parallelism: int = 2
    infra_retries: int = 2
    remote: str = "origin"
    branch: str = "main"
    tag_format: Optional[str] = None
    bazel_startup_flags: tuple[str, ...] = ()
    bazel_flags: tuple[str, ...] = ()
    bazel_pass_env: tuple[str, ...] = ()
    bazel_disk_cache: Optional[str] = DEFAULT_DISK_CACHE
    bazel_disk_cache_max_gb: float = 10.0
    plugins: tuple[PluginSpec, ...] = ()
    serve: ServeSpec = ServeSpec()
    release: ReleaseSpec = ReleaseSpec()
    quarantine: tuple[QuarantineEntry, ...] = ()

    @property
    def secret_env(self) -> tuple[str, ...]:
        """The variables holding the plugins' and `convoy serve`'s secrets (never given to Bazel)."""
        return tuple(dict.fromkeys([*(p.secret_env for p in self.plugins if p.secret_env), *self.serve.secret_env]))

    @property
    def plan_stages(self) -> tuple[StageSpec, ...]:
        """The stages of a request's build: `stages`, then the release stage
        when release.artifacts names targets (a try has no release stage)."""
        if not self.release.has_artifacts:
            return self.stages
        release = StageSpec(name=RELEASE_STAGE, command="build", targets=(),
                            artifacts=tuple(sorted(self.release.artifacts.items())))
        return self.stages + (release,)

    def stage(self, name: str) -> StageSpec:
        """The stage called `name` (KeyError if there is none)."""
        for stage in self.plan_stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


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


class _ConfigChecker(ValueChecker):
    """Walks convoy.yaml section by section with the value checks of
    convoy.config_values, collecting (line, message) problems and building
    the Config from what is valid."""

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
                         f"'{mode}' is not a queue mode (known: {', '.join(QUEUE_MODES)})", "write mode: serial")
        poll_interval = self.number(queue, "poll_interval", "queue", 10.0)
        window = self.number(queue, "window", "queue", 4, minimum=1, integer=True, above=False)
        window_floor = self.number(queue, "window_floor", "queue", 1, minimum=1, integer=True, above=False)
        if window is not None and window_floor is not None and window_floor > window:
            self.problem(key_line(queue, "window_floor"), "queue.window_floor",
                         f"{window_floor} is more than queue.window ({window})", "make it at most the window")
        batch_size = self.number(queue, "batch_size", "queue", 4, minimum=1, integer=True, above=False)
        max_bisect = self.number(queue, "max_bisect", "queue", 3, integer=True, above=False)
        pools = self.pools(document)

        parallelism = self.number(document, "parallelism", "", 2, minimum=1, integer=True, above=False)
        retries = self.section(document, "retries", _RETRIES_KEYS)
        infra_retries = self.number(retries, "infrastructure", "retries", 2, integer=True, above=False)

        git = self.section(document, "git", _GIT_KEYS)
        remote = self.name_string(git, "remote", "git", "origin", _REMOTE, "a git remote name like origin")
        branch = self.name_string(git, "branch", "git", "main", _BRANCH, "a branch name like main")
        if branch.endswith((".lock", "/")) or ".." in branch:
            self.problem(key_line(git, "branch"), "git.branch", f"'{branch}' is not a valid branch name",
                         "write a branch name like main")

        release = check_release(self, document)
        tag_format = release.tag_format

        bazel = self.section(document, "bazel", _BAZEL_KEYS)
        startup_flags = self.flag_list(bazel, "startup_flags", "bazel", "[--output_user_root=/var/cache/bazel]")
        bazel_flags = self.flag_list(bazel, "flags", "bazel", "[--keep_going]")
        pass_env = self.env_names(bazel, "pass_env", "bazel", "[NPM_TOKEN]")
        disk_cache: Optional[str] = DEFAULT_DISK_CACHE
        if bazel.get("disk_cache", True) is False:
            disk_cache = None
        elif "disk_cache" in bazel:
            disk_cache = self.string(bazel, "disk_cache", "bazel", example=DEFAULT_DISK_CACHE)
            if disk_cache is not None and (disk_cache != disk_cache.strip() or not disk_cache.isprintable()):
                self.problem(key_line(bazel, "disk_cache"), "bazel.disk_cache",
                             "must be a path without surrounding spaces or control characters",
                             f"write it like disk_cache: {DEFAULT_DISK_CACHE}, or disk_cache: false")
        disk_cache_max_gb = self.number(bazel, "disk_cache_max_gb", "bazel", 10.0)

        stages = self.stages(document)
        plugins = self.plugins(document)
        serve = check_serve(self, document)
        quarantine = check_quarantine(self, document)
        if release.has_artifacts and any(stage.name == RELEASE_STAGE for stage in stages):
            self.problem(key_line(document, "stages"), "stages", f"a stage is named '{RELEASE_STAGE}', the name of the "
                         "stage that builds release.artifacts", "rename that stage")
        if self.problems:
            return None
        return Config(
            path=path, queue_mode=mode, poll_interval=poll_interval, queue_window=int(window),
            queue_window_floor=int(window_floor), queue_batch_size=int(batch_size), queue_max_bisect=int(max_bisect),
            pools=pools, stages=stages, parallelism=parallelism,
            infra_retries=infra_retries, remote=remote, branch=branch, tag_format=tag_format,
            bazel_startup_flags=startup_flags, bazel_flags=bazel_flags, bazel_pass_env=pass_env,
            bazel_disk_cache=disk_cache, bazel_disk_cache_max_gb=disk_cache_max_gb, plugins=plugins,
            serve=serve, release=release, quarantine=quarantine,
        )

    def pools(self, document: Mapping) -> Optional[dict[str, int]]:
        """`pools: {name: rigs}`: the rigs of each hardware pool (None: not set)."""
        if "pools" not in document:
            return None
        pools = document["pools"]
        if not isinstance(pools, Mapping):
            self.problem(key_line(document, "pools"), "pools", f"must be a mapping, not {kind_of(pools)}",
                         "write it like pools: {rover-rigs: 2}")
            return None
        result = {}
        for name in pools:
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                self.problem(key_line(pools, name), "pools", f"'{name}' is not a pool name",
                             "write a name like rover-rigs")
                continue
            rigs = self.number(pools, name, "pools", 1, minimum=1, integer=True, above=False)
            if rigs is not None:
                result[name] = int(rigs)
        return result

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
        affected_only = self.boolean(spec, "affected_only", where, False)
        if affected_only and command == "build":
            self.problem(key_line(spec, "affected_only"), f"{where}.affected_only",
                         "applies to test stages only (the build stage always builds everything)",
                         "remove it, or set it on a stage with command: test")
        flaky_flags, retry_failed = check_stage_retries(self, spec, where, command, flags)
        rig_retries = self.number(spec, "rig_retries", where, 1, integer=True, above=False) if "rig_retries" in spec \
            else None
        rig_bad_after = self.number(spec, "rig_bad_after", where, 3, minimum=1, integer=True, above=False)
        lab_dir = self.string(spec, "lab_dir", where, example=".convoy/lab")
        if len(self.problems) > errors or name is None or command is None:
            return None
        return StageSpec(
            name=name, command=command, targets=targets or DEFAULT_TARGETS, tag_filter=tag_filter,
            flags=flags + flaky_flags, per_configuration=per_configuration, timeout=timeout, check_pools=check_pools,
            affected_only=affected_only, retry_failed=retry_failed, rig_retries=rig_retries,
            rig_bad_after=rig_bad_after, lab_dir=lab_dir,
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
            elif kind == "forge-status":
                values.update(check_forge_status(self, spec, where, line))
                events = events if "events" in spec else STATUS_EVENTS
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
                elif values["secret_env"] is not None and not ENV_NAME.fullmatch(values["secret_env"]):
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
            item_line = line_of_item(items, index, line)
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
