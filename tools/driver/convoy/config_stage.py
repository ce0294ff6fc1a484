"""A stage of convoy.yaml's `stages:`, as convoy.config reads it: `StageSpec`,
the stages a convoy.yaml without `stages:` gets (`DEFAULT_STAGES`), and
their check:

    stages = check_stages(values, document)   # values: the file's convoy.config_values.ValueChecker

`check_stages` checks each stage's keys (a test stage's retries are
convoy.config_flaky's) and builds a StageSpec per valid stage; the
pipeline (convoy.pipeline, convoy.tasks) runs them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from convoy.config_flaky import check_stage_retries
from convoy.config_release import ALL_CONFIGURATIONS
from convoy.config_values import ValueChecker
from convoy.yamlcheck import key_line, kind_of

COMMANDS = ("build", "test")
_STAGE_KEYS = ("name", "command", "targets", "tag_filter", "flags", "per_configuration", "timeout", "check_pools",
               "affected_only", "flaky_test_attempts", "retry_failed", "rig_retries", "rig_bad_after", "lab_dir")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9_-]*")

DEFAULT_TARGETS = ("//integration/...",)


@dataclass(frozen=True)
class StageSpec:
    """One stage of the construction plan: one Bazel command per task.

    `tag_filter` becomes --test_tag_filters (and, for `build`,
    --build_tag_filters); `per_configuration` runs one task per affected
    configuration (False: one task, in the default configuration);
    `timeout` bounds one Bazel invocation, in seconds; `check_pools` asks
    that the hardware pools be checked before the stage runs;
    `affected_only` (a test stage) runs only the test targets that depend on
    a component whose pin moved in the task's configuration (convoy.affected);
    `retry_failed` runs a failing test that passed on main again (convoy.flaky).
    """

    name: str
    command: str
    targets: tuple[str, ...] = DEFAULT_TARGETS
    tag_filter: Optional[str] = None
    flags: tuple[str, ...] = ()
    per_configuration: bool = True
    timeout: float = 3600.0
    check_pools: bool = False
    affected_only: bool = False
    retry_failed: int = 1
    # A lab stage's rig health (convoy.lab.health): reruns on other rigs (None: the pool's rigs - 1),
    # failures in a row that make a rig bad, and the lab's directory (None: .convoy/lab of the checkout).
    rig_retries: Optional[int] = None
    rig_bad_after: int = 3
    lab_dir: Optional[str] = None
    # The release stage's (config_release.RELEASE_STAGE): (configuration or "*", its targets) pairs.
    artifacts: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def is_release(self) -> bool:
        """The stage that builds the release artifacts (last; its failure re-queues, never rejects)."""
        return bool(self.artifacts)

    def targets_for(self, configuration: str) -> tuple[str, ...]:
        """The targets of the stage's task in `configuration` (the release stage's are per configuration)."""
        if not self.artifacts:
            return self.targets
        named = dict(self.artifacts)
        return named.get(configuration, named.get(ALL_CONFIGURATIONS, ()))

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


def check_stages(values: ValueChecker, document: Mapping) -> tuple[StageSpec, ...]:
    """The stages of `document`'s `stages:` (DEFAULT_STAGES if absent), their problems reported to `values`."""
    items = values.items(document, "stages", "name: build")
    if items is None:
        return DEFAULT_STAGES
    if not items:
        values.problem(key_line(document, "stages"), "stages", "must list at least one stage",
                       "add one, e.g. - {name: build, command: build}, or remove stages: for the defaults")
    stages = []
    for line, spec, duplicate in values.named(items, "stages", "stage"):
        stage = _stage(values, spec, line)
        if stage is not None and not duplicate:
            stages.append(stage)
    return tuple(stages)

def _stage(values: ValueChecker, spec: Any, line: int) -> Optional[StageSpec]:
    if not isinstance(spec, Mapping):
        values.problem(line, "stages", f"each stage must be a mapping, not {kind_of(spec)}",
                       "write it like - {name: build, command: build}")
        return None
    errors = len(values.problems)
    name = values.string(spec, "name", "stages", missing_at=line, example="integration")
    where = f"stages.{name}" if name else "stages"
    values.unknown_keys(spec, where, _STAGE_KEYS)
    if name is not None and not _STAGE_NAME.fullmatch(name):
        values.problem(key_line(spec, "name"), where,
                       f"'{name}' is not a valid stage name (a lowercase letter, then a-z 0-9 _ -)", "rename it")
    command = values.string(spec, "command", where, missing_at=line, example="test")
    if command is not None and command not in COMMANDS:
        values.problem(key_line(spec, "command"), f"{where}.command",
                       f"unknown Bazel command '{command}' (expected: {', '.join(COMMANDS)})", "fix it")
    targets = values.strings(spec, "targets", where, '["//integration/..."]', allow_empty=False)
    for target in targets or ():
        if target.startswith("--") or any(c.isspace() for c in target):
            values.problem(key_line(spec, "targets"), f"{where}.targets", f"'{target}' is not a target pattern",
                           "write patterns like //integration/...; flags go under flags:")
    tag_filter = values.string(spec, "tag_filter", where, example="convoy-integration")
    if tag_filter is not None and any(c.isspace() for c in tag_filter):
        values.problem(key_line(spec, "tag_filter"), f"{where}.tag_filter",
                       f"'{tag_filter}' has spaces (Bazel tag filters are comma-separated)",
                       "write it like tag_filter: convoy-hardware,-manual")
    flags = values.flag_list(spec, "flags", where, "[--config=hil]")
    per_configuration = values.boolean(spec, "per_configuration", where, True)
    timeout = values.number(spec, "timeout", where, 3600.0)
    check_pools = values.boolean(spec, "check_pools", where, False)
    affected_only = values.boolean(spec, "affected_only", where, False)
    if affected_only and command == "build":
        values.problem(key_line(spec, "affected_only"), f"{where}.affected_only",
                       "applies to test stages only (the build stage always builds everything)",
                       "remove it, or set it on a stage with command: test")
    flaky_flags, retry_failed = check_stage_retries(values, spec, where, command, flags)
    rig_retries = values.number(spec, "rig_retries", where, 1, integer=True, above=False) if "rig_retries" in spec \
        else None
    rig_bad_after = values.number(spec, "rig_bad_after", where, 3, minimum=1, integer=True, above=False)
    lab_dir = values.string(spec, "lab_dir", where, example=".convoy/lab")
    if len(values.problems) > errors or name is None or command is None:
        return None
    return StageSpec(
        name=name, command=command, targets=targets or DEFAULT_TARGETS, tag_filter=tag_filter,
        flags=flags + flaky_flags, per_configuration=per_configuration, timeout=timeout, check_pools=check_pools,
        affected_only=affected_only, retry_failed=retry_failed, rig_retries=rig_retries,
        rig_bad_after=rig_bad_after, lab_dir=lab_dir,
    )
