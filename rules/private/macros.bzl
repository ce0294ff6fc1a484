"""The stage test macros; see //rules:defs.bzl for their documentation."""

load("@convoy_manifest//:defs.bzl", "CONFIGURATION", "HARDWARE_REMOTE")
load("@rules_python//python:defs.bzl", "py_test")
load(":stage.bzl", "stage")

def stage_test(kind, name, configurations = None, pool = None, test_rule = None, **kwargs):
    """Declares one test of a stage for the active configuration.

    Args:
      kind: "integration", "configuration" or "hardware".
      name: the test's name.
      configurations: the configurations the test is for (None: all).
      pool: for hardware tests, the rig pool or a dict configuration -> pool.
      test_rule: the test rule to call (default: py_test).
      **kwargs: passed to the test rule.
    """
    attrs = stage.test_attrs(
        kind,
        kwargs,
        active = CONFIGURATION,
        configurations = configurations,
        pool = pool,
        hardware_remote = HARDWARE_REMOTE,
    )
    (test_rule or py_test)(name = name, **attrs)
