"""Unit tests of rules/private/stage.bzl: stage tags, skipping and pool routing."""

load("@bazel_skylib//lib:unittest.bzl", "asserts", "unittest")
load("//rules/private:stage.bzl", "stage")  # buildifier: disable=bzl-visibility

def _attrs(kind, active, configurations = None, pool = None, hardware_remote = False, **kwargs):
    errors = []
    attrs = stage.test_attrs(
        kind,
        kwargs,
        active = active,
        configurations = configurations,
        pool = pool,
        hardware_remote = hardware_remote,
        _fail = errors.append,
    )
    return attrs, errors

def _integration_test(ctx):
    env = unittest.begin(ctx)
    attrs, errors = _attrs("integration", "rover", srcs = ["t.py"], deps = ["@planner//:planner"], tags = ["slow"], env = {"A": "1"})
    asserts.equals(env, [], errors)
    asserts.equals(env, {
        "deps": ["@planner//:planner"],
        "env": {"A": "1", "CONVOY_CONFIGURATION": "rover"},
        "srcs": ["t.py"],
        "tags": ["slow", "convoy-integration"],
    }, attrs)
    return unittest.end(env)

def _skip_outside_configuration_test(ctx):
    env = unittest.begin(ctx)
    attrs, errors = _attrs("configuration", "drone", configurations = ["rover"], srcs = ["t.py"], deps = ["@planner//:planner"], data = ["x"])
    asserts.equals(env, [], errors)
    asserts.equals(env, ["@platforms//:incompatible"], attrs["target_compatible_with"])
    asserts.equals(env, [], attrs["deps"])
    asserts.equals(env, [], attrs["data"])
    asserts.equals(env, ["convoy-configuration"], attrs["tags"])
    kept, _ = _attrs("configuration", "rover", configurations = ["rover"], deps = ["@planner//:planner"])
    asserts.false(env, "target_compatible_with" in kept)
    asserts.equals(env, ["@planner//:planner"], kept["deps"])
    return unittest.end(env)

def _hardware_local_test(ctx):
    env = unittest.begin(ctx)
    attrs, errors = _attrs("hardware", "rover", pool = "rover-rigs", exec_properties = {"OSFamily": "Linux"})
    asserts.equals(env, [], errors)
    asserts.equals(env, {"OSFamily": "Linux", "test.Pool": "rover-rigs"}, attrs["exec_properties"])
    asserts.equals(env, ["convoy-hardware", "convoy-pool=rover-rigs", "no-remote-exec", "cpu:1024"], attrs["tags"])
    return unittest.end(env)

def _hardware_remote_test(ctx):
    env = unittest.begin(ctx)
    pools = {"drone": "drone-rigs", "rover": "rover-rigs"}
    attrs, errors = _attrs("hardware", "drone", pool = pools, hardware_remote = True, deps = ["//rig"])
    asserts.equals(env, [], errors)
    asserts.equals(env, {"test.Pool": "drone-rigs"}, attrs["exec_properties"])
    asserts.equals(env, ["convoy-hardware", "convoy-pool=drone-rigs"], attrs["tags"])
    asserts.equals(env, ["//rig"], attrs["deps"])

    # A configuration with no pool in the dict skips the test.
    skipped, errors = _attrs("hardware", "boat", pool = pools, deps = ["//rig"])
    asserts.equals(env, [], errors)
    asserts.equals(env, ["@platforms//:incompatible"], skipped["target_compatible_with"])
    asserts.false(env, "exec_properties" in skipped)
    asserts.equals(env, [], skipped["deps"])
    return unittest.end(env)

def _misuse_test(ctx):
    env = unittest.begin(ctx)
    cases = [
        (dict(kind = "smoke", active = "rover"), "unknown stage \"smoke\"; expected one of configuration, hardware, integration"),
        (dict(kind = "integration", active = "rover", configurations = "rover"), "configurations must be a list of configuration names, got \"rover\""),
        (dict(kind = "hardware", active = "rover"), "hardware_test needs pool = <rig pool> (or a dict configuration -> pool)"),
        (dict(kind = "hardware", active = "rover", pool = ""), "hardware_test: pool must not be empty; name the rig pool, e.g. pool = \"rover-rigs\""),
        (dict(kind = "hardware", active = "rover", pool = {"rover": ""}), "hardware_test: pool for configuration 'rover' is \"\"; expected a pool name"),
        (dict(kind = "hardware", active = "rover", pool = ["a"]), "hardware_test: pool is a list; expected a pool name or a dict configuration -> pool name"),
        (dict(kind = "integration", active = "rover", pool = "rigs"), "pool is for hardware_test only"),
    ]
    for args, expected in cases:
        attrs, errors = _attrs(**args)
        asserts.equals(env, None, attrs)
        asserts.equals(env, [expected], errors)
    return unittest.end(env)

integration_test = unittest.make(_integration_test)
skip_outside_configuration_test = unittest.make(_skip_outside_configuration_test)
hardware_local_test = unittest.make(_hardware_local_test)
hardware_remote_test = unittest.make(_hardware_remote_test)
misuse_test = unittest.make(_misuse_test)

def stage_test_suite(name):
    """The tests of stage.bzl.

    Args:
      name: the name of the test_suite.
    """
    unittest.suite(
        name,
        integration_test,
        skip_outside_configuration_test,
        hardware_local_test,
        hardware_remote_test,
        misuse_test,
    )
