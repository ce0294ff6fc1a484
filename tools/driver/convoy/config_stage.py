"""A stage of convoy.yaml's `stages:`, as convoy.config reads it: `StageSpec`,
and the stages a convoy.yaml without `stages:` gets (`DEFAULT_STAGES`).

convoy.config checks the keys and builds a StageSpec per stage; the
pipeline (convoy.pipeline, convoy.tasks) runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from convoy.config_release import ALL_CONFIGURATIONS

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
