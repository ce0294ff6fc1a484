"""What a task's Bazel run is given besides its targets: its flags
(convoy.yaml's `bazel_flags`, then the stage's) and the environment
variable that names its configuration.

    flags = task_flags(config, spec)      # ("--symlink_prefix=/", ...convoy.yaml's, ...the stage's)
    bazel.run_bazel(..., repo_env={CONFIGURATION_ENV: configuration})

convoy.tasks runs a task with them; the lab's pool check (convoy.lab.stage)
and the queue's rig gate (convoy.queue.rigs) ask Bazel with the same flags,
so that they see what the task will build.
"""

from __future__ import annotations

from convoy.config import Config, StageSpec

CONFIGURATION_ENV = "CONVOY_CONFIGURATION"  # --repo_env: the configuration a task builds


def task_flags(config: Config, spec: StageSpec) -> tuple[str, ...]:
    """Bazel flags of a task: convoy.yaml's, then the stage's (tag filter, flags)."""
    flags = tuple(config.bazel_flags) + tuple(spec.bazel_flags())
    if not any(f.startswith("--symlink_prefix") for f in flags):
        flags = ("--symlink_prefix=/",) + flags  # no bazel-* symlinks in the worktree
    return flags
