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
         link_base: https://convoy.example.com}    # commit statuses (convoy.plugins.forge)
    serve: {reads: open, tokens: [...], github: {secret_env: ...}}   # convoy serve (convoy.config_serve)
    store: postgresql://convoy@db.example.com/convoy   # the state's store (default: .convoy/state.db);
                                                 # no password here: PGPASSFILE; CONVOY_STORE_URL wins
    logs_url: /srv/convoy/logs                   # a copy of each task's log every worker reads (convoy.task_logs):
                                                 # a directory (absolute, or in the checkout) or file:///abs/path

`default_config_text()` is a commented convoy.yaml with the defaults (what
`convoy demo` writes; it is convoy.config_text's). The checker walks the
document section by section, each with the one ValueChecker of the file
(convoy.config_values: numbers, booleans, lists, flags, ...): the queue,
pools, git and bazel sections here, the others in their own modules
(stages: convoy.config_stage, plugins: convoy.config_plugins, which asks
the registry of plugin kinds, convoy.plugins.registry; release, serve,
quarantine: convoy.config_release, config_serve, config_flaky).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from convoy import modes
from convoy.config_flaky import QuarantineEntry, check_quarantine
from convoy.config_plugins import check_plugins
from convoy.config_release import ALL_CONFIGURATIONS, RELEASE_STAGE, ReleaseSpec, SigningSpec, check_release
from convoy.config_serve import ServeSpec, TokenSpec, check_serve
from convoy.config_stage import COMMANDS, DEFAULT_STAGES, DEFAULT_TARGETS, StageSpec, check_stages
from convoy.config_text import default_config_text
from convoy.config_values import MAX_NUMBER, ValueChecker
from convoy.models import EVENT_TYPES
from convoy.plugins.registry import ALL_EVENTS, PluginSpec
from convoy.untrusted import printable, redact_userinfo
from convoy.yamlcheck import key_line, kind_of, parse_checked, read_text

__all__ = [
    "ALL_EVENTS", "COMMANDS", "CONFIG_NAME", "DEFAULT_STAGES", "DEFAULT_TARGETS", "EVENT_TYPES", "MAX_NUMBER",
    "QUEUE_MODES", "Config", "PluginSpec", "ReleaseSpec", "ServeSpec", "SigningSpec", "StageSpec",
    "TokenSpec",
    "default_config_text", "load_config", "parse_config",
]

CONFIG_NAME = "convoy.yaml"
QUEUE_MODES = modes.MODES  # name -> mode: the one registry (convoy.modes)
_TOP_KEYS = ("queue", "pools", "parallelism", "retries", "git", "release", "bazel", "stages", "plugins", "serve",
             "quarantine", "store", "logs_url")
_QUEUE_KEYS = ("mode", "poll_interval", "window", "window_floor", "batch_size", "max_bisect", "lease_ttl",
               "spare_workers")
_RETRIES_KEYS = ("infrastructure",)
_GIT_KEYS = ("remote", "branch")
_BAZEL_KEYS = ("startup_flags", "flags", "pass_env", "disk_cache", "disk_cache_max_gb")
DEFAULT_DISK_CACHE = ".convoy/cache/bazel-disk"
_BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_REMOTE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# store: a URL convoy.store opens (its BACKENDS' schemes); checked here, below the store's layer.
_STORE_URL = re.compile(r"(postgres(ql)?://[^\s/]*/[^\s]+|sqlite:///[^\s?#]+)", re.IGNORECASE)
_STORE_EXAMPLE = "postgresql://convoy@db.example.com/convoy"
_LOGS_EXAMPLE = "/srv/convoy/logs"


@dataclass(frozen=True)
class Config:
    """A valid convoy.yaml. `path` is as given to load_config.

    `tag_format` is None unless convoy.yaml sets release.tag_format (then it
    overrides the manifest's). `bazel_disk_cache` is the Bazel disk cache
    every slot shares (relative to the checkout, or absolute; None: no disk
    cache), kept under `bazel_disk_cache_max_gb` by convoy.diskcache.
    """

    path: str
    queue_mode: str = modes.DEFAULT
    poll_interval: float = 10.0
    queue_window: int = 4
    queue_window_floor: int = 1
    queue_batch_size: int = 4
    queue_max_bisect: int = 3
    lease_ttl: float = 30.0  # seconds a dead worker holds the queue before another takes it (convoy.queue.lock)
    spare_workers: bool = False  # offer stage tasks to the workers on standby (convoy.spares)
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
    store: Optional[str] = None  # the store's URL; None: the checkout's .convoy/state.db
    logs_url: Optional[str] = None  # where each task's log is copied (convoy.task_logs); None: .convoy/logs only

    @property
    def secret_env(self) -> tuple[str, ...]:
        """The variables holding the plugins' and `convoy serve`'s secrets (never given to Bazel)."""
        return tuple(dict.fromkeys([*(s for p in self.plugins for s in p.secrets), *self.serve.secret_env]))

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
    values = ValueChecker(shown)
    return parse_checked(text, values, lambda document: _ConfigChecker(values).config(document, path))


class _ConfigChecker:
    """Walks convoy.yaml section by section, each checked with `values`
    (the file's convoy.config_values.ValueChecker, which collects the
    (line, message) problems) by this class or by its section's module,
    and builds the Config from what is valid."""

    def __init__(self, values: ValueChecker) -> None:
        self.values = values

    # -- the document --------------------------------------------------------

    def config(self, document: Any, path: str) -> Optional[Config]:
        v = self.values
        if document is None:  # empty, or only comments: every default
            document = {}
        if not isinstance(document, Mapping):
            v.problem(1, "", f"convoy.yaml must be a mapping, not {kind_of(document)}",
                      "write it as 'key: value' lines (see docs/driver.md)")
            return None
        v.unknown_keys(document, "", _TOP_KEYS)

        queue = v.section(document, "queue", _QUEUE_KEYS)
        mode = v.optional_string(queue, "mode", "queue", modes.DEFAULT) or modes.DEFAULT
        if mode not in QUEUE_MODES:
            v.problem(key_line(queue, "mode"), "queue.mode",
                      f"'{mode}' is not a queue mode (known: {', '.join(QUEUE_MODES)})",
                      f"write mode: {modes.DEFAULT}")
        poll_interval = v.number(queue, "poll_interval", "queue", 10.0)
        window = v.number(queue, "window", "queue", 4, minimum=1, integer=True, above=False)
        window_floor = v.number(queue, "window_floor", "queue", 1, minimum=1, integer=True, above=False)
        if window is not None and window_floor is not None and window_floor > window:
            v.problem(key_line(queue, "window_floor"), "queue.window_floor",
                      f"{window_floor} is more than queue.window ({window})", "make it at most the window")
        batch_size = v.number(queue, "batch_size", "queue", 4, minimum=1, integer=True, above=False)
        max_bisect = v.number(queue, "max_bisect", "queue", 3, integer=True, above=False)
        lease_ttl = v.number(queue, "lease_ttl", "queue", 30.0, minimum=1, above=False, maximum=3600)
        spare_workers = v.boolean(queue, "spare_workers", "queue", False)
        pools = self._pools(document)

        parallelism = v.number(document, "parallelism", "", 2, minimum=1, integer=True, above=False)
        retries = v.section(document, "retries", _RETRIES_KEYS)
        infra_retries = v.number(retries, "infrastructure", "retries", 2, integer=True, above=False)

        git = v.section(document, "git", _GIT_KEYS)
        remote = v.name_string(git, "remote", "git", "origin", _REMOTE, "a git remote name like origin")
        branch = v.name_string(git, "branch", "git", "main", _BRANCH, "a branch name like main")
        if branch.endswith((".lock", "/")) or ".." in branch:
            v.problem(key_line(git, "branch"), "git.branch", f"'{branch}' is not a valid branch name",
                      "write a branch name like main")

        release = check_release(v, document)
        tag_format = release.tag_format

        bazel = v.section(document, "bazel", _BAZEL_KEYS)
        startup_flags = v.flag_list(bazel, "startup_flags", "bazel", "[--output_user_root=/var/cache/bazel]")
        bazel_flags = v.flag_list(bazel, "flags", "bazel", "[--keep_going]")
        pass_env = v.env_names(bazel, "pass_env", "bazel", "[NPM_TOKEN]")
        disk_cache: Optional[str] = DEFAULT_DISK_CACHE
        if bazel.get("disk_cache", True) is False:
            disk_cache = None
        elif "disk_cache" in bazel:
            disk_cache = v.string(bazel, "disk_cache", "bazel", example=DEFAULT_DISK_CACHE)
            if disk_cache is not None and (disk_cache != disk_cache.strip() or not disk_cache.isprintable()):
                v.problem(key_line(bazel, "disk_cache"), "bazel.disk_cache",
                          "must be a path without surrounding spaces or control characters",
                          f"write it like disk_cache: {DEFAULT_DISK_CACHE}, or disk_cache: false")
        disk_cache_max_gb = v.number(bazel, "disk_cache_max_gb", "bazel", 10.0)

        stages = check_stages(v, document)
        plugins = check_plugins(v, document)
        serve = check_serve(v, document)
        quarantine = check_quarantine(v, document)
        store = self._store(document)
        logs_url = self._logs_url(document)
        if release.has_artifacts and any(stage.name == RELEASE_STAGE for stage in stages):
            v.problem(key_line(document, "stages"), "stages", f"a stage is named '{RELEASE_STAGE}', the name of the "
                      "stage that builds release.artifacts", "rename that stage")
        if v.problems:
            return None
        return Config(
            path=path, queue_mode=mode, poll_interval=poll_interval, queue_window=int(window),
            queue_window_floor=int(window_floor), queue_batch_size=int(batch_size), queue_max_bisect=int(max_bisect),
            lease_ttl=float(lease_ttl), spare_workers=spare_workers,
            pools=pools, stages=stages, parallelism=parallelism,
            infra_retries=infra_retries, remote=remote, branch=branch, tag_format=tag_format,
            bazel_startup_flags=startup_flags, bazel_flags=bazel_flags, bazel_pass_env=pass_env,
            bazel_disk_cache=disk_cache, bazel_disk_cache_max_gb=disk_cache_max_gb, plugins=plugins,
            serve=serve, release=release, quarantine=quarantine, store=store, logs_url=logs_url,
        )

    def _store(self, document: Mapping) -> Optional[str]:
        """`store: <URL>`: where the state lives (None: not set). A URL with a
        password is refused: convoy.yaml is committed, the password belongs in
        PGPASSFILE (or the whole URL in CONVOY_STORE_URL)."""
        v = self.values
        url = v.string(document, "store", "", example=_STORE_EXAMPLE)
        if url is None:
            return None
        line = key_line(document, "store")
        if not _STORE_URL.fullmatch(url) or not url.isprintable():
            v.problem(line, "store", f"'{printable(redact_userinfo(url))}' is not a store URL",
                      f"write it like store: {_STORE_EXAMPLE}, or store: sqlite:///<absolute path of the file>")
            return None
        authority = url.split("://", 1)[1].split("/", 1)[0]
        if ":" in authority.rpartition("@")[0] or re.search(r"[?&]password=", url, re.IGNORECASE):
            v.problem(line, "store", "the URL holds a password, and convoy.yaml is committed",
                      "remove it from the URL and put it in PGPASSFILE (~/.pgpass), or give the whole URL in "
                      "CONVOY_STORE_URL")
            return None
        return url

    def _logs_url(self, document: Mapping) -> Optional[str]:
        """`logs_url:` where every worker finds each task's log: a directory
        (absolute, or relative to the checkout) or `file:///<absolute path>`
        (None: not set, the logs stay in .convoy/logs)."""
        v = self.values
        url = v.string(document, "logs_url", "", example=_LOGS_EXAMPLE)
        if url is None:
            return None
        as_file = url.lower().startswith("file://")
        path = url[len("file://"):] if as_file else url
        if (not path or url != url.strip() or not url.isprintable() or re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", path)
                or (as_file and not path.startswith("/"))):
            v.problem(key_line(document, "logs_url"), "logs_url", f"'{printable(url)}' is not a directory",
                      f"write it like logs_url: {_LOGS_EXAMPLE} (a shared directory), or logs_url: "
                      "file:///<absolute path>")
            return None
        return url

    def _pools(self, document: Mapping) -> Optional[dict[str, int]]:
        """`pools: {name: rigs}`: the rigs of each hardware pool (None: not set)."""
        v = self.values
        if "pools" not in document:
            return None
        pools = document["pools"]
        if not isinstance(pools, Mapping):
            v.problem(key_line(document, "pools"), "pools", f"must be a mapping, not {kind_of(pools)}",
                      "write it like pools: {rover-rigs: 2}")
            return None
        result = {}
        for name in pools:
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                v.problem(key_line(pools, name), "pools", f"'{name}' is not a pool name",
                          "write a name like rover-rigs")
                continue
            rigs = v.number(pools, name, "pools", 1, minimum=1, integer=True, above=False)
            if rigs is not None:
                result[name] = int(rigs)
        return result
