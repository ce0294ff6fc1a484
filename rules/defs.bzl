"""convoy's test macros: integration, configuration and hardware tests.

Each macro declares a test (py_test unless `test_rule` says otherwise) for
the active configuration of the manifest (--repo_env=CONVOY_CONFIGURATION,
default: the manifest's default_configuration) and tags it with its stage,
so that a stage runs with --test_tag_filters=convoy-<stage>:

    load("//rules:defs.bzl", "configuration_test", "hardware_test", "integration_test")

    integration_test(
        name = "plan_to_motion_test",
        srcs = ["plan_to_motion_test.py"],
        configurations = ["rover"],      # skipped (not failed) in other configurations
        deps = ["@planner//:planner", "@controller//:controller"],
    )

    hardware_test(
        name = "flash_and_drive_test",
        srcs = ["flash_and_drive_test.py"],
        pool = {"rover": "rover-rigs", "drone": "drone-rigs"},
        deps = ["//examples/rig:rig_client"],
    )

Every test gets CONVOY_CONFIGURATION=<active configuration> in its
environment. A test outside the active configuration is SKIPPED and its
deps and data are dropped, so it never reaches a component that the
configuration leaves out.

A hardware test gets exec_properties {"test.Pool": <pool>} (remote
execution sends it to a rig of that pool) and the tag convoy-pool=<pool>.
Without a remote executor (CONVOY_HARDWARE_REMOTE unset) it is also tagged
`no-remote-exec` and `cpu:1024`: a local rig runs one test at a time, and
its result can still come from a cache (`exclusive` would forbid that on
Bazel 4.2).
"""

load("//rules/private:macros.bzl", "stage_test")

def integration_test(name, configurations = None, test_rule = None, **kwargs):
    """A test of behaviour across components (tag convoy-integration).

    Args:
      name: the test's name.
      configurations: the configurations it is for (None: all of them).
      test_rule: the test rule to call (default: py_test from rules_python).
      **kwargs: passed to the test rule.
    """
    stage_test("integration", name, configurations = configurations, test_rule = test_rule, **kwargs)

def configuration_test(name, configurations = None, test_rule = None, **kwargs):
    """A test that a configuration is coherent (tag convoy-configuration).

    Args:
      name: the test's name.
      configurations: the configurations it is for (None: all of them).
      test_rule: the test rule to call (default: py_test from rules_python).
      **kwargs: passed to the test rule.
    """
    stage_test("configuration", name, configurations = configurations, test_rule = test_rule, **kwargs)

def hardware_test(name, pool, configurations = None, test_rule = None, **kwargs):
    """A hardware-in-the-loop test on a rig of `pool` (tag convoy-hardware).

    Args:
      name: the test's name.
      pool: the rig pool, or a dict configuration -> pool (a configuration
        missing from the dict skips the test).
      configurations: the configurations it is for (None: all of them).
      test_rule: the test rule to call (default: py_test from rules_python).
      **kwargs: passed to the test rule.
    """
    stage_test("hardware", name, configurations = configurations, pool = pool, test_rule = test_rule, **kwargs)
