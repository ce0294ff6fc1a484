"""Pure functions behind the stage test macros: tags, skipping, pool routing.

    load("//rules/private:stage.bzl", "stage")

    attrs = stage.test_attrs("hardware", kwargs, active = "rover",
                             configurations = None, pool = "rover-rigs",
                             hardware_remote = False)
"""

STAGES = {
    "configuration": "convoy-configuration",
    "hardware": "convoy-hardware",
    "integration": "convoy-integration",
}

# A target that no platform satisfies: Bazel reports the test as SKIPPED.
INCOMPATIBLE = "@platforms//:incompatible"

# The platform property that selects a hardware pool. On Bazel 4.2.3 (checked
# with --execution_log_json_file) both "Pool" and "test.Pool" reach the
# TestRunner spawn of a native py_test as Pool=<pool>; "test.Pool" is used
# because it names the test action alone, not the target's build actions.
POOL_PROPERTY = "test.Pool"

# The tags of a hardware test on a local rig: one at a time, never sent to a
# remote executor, and its result still cacheable. Measured on Bazel 4.2.3:
# `exclusive` makes the test spawn neither remotable nor cacheable, so no
# disk or remote cache ever serves it and any other candidate run in between
# evicts it from the output base's action cache (a 20 s rig test ran again for
# nothing). A `cpu:` request larger than any machine runs a test only when
# nothing else runs in that Bazel, as `exclusive` did; three such tests took
# 3 x 2 s one after the other, and a second output base took the hardware
# test from the disk cache.
LOCAL_RIG_TAGS = ["no-remote-exec", "cpu:1024"]

def _pool_for(pool, active, _fail = fail):
    """The pool of the active configuration.

    Args:
      pool: a pool name, or a dict configuration -> pool name.
      active: the active configuration.
      _fail: called with the message for a malformed pool.

    Returns:
      The pool name; "" when the dict has no pool for `active`; None after a failure.
    """
    if type(pool) == "string":
        if not pool:
            _fail("hardware_test: pool must not be empty; name the rig pool, e.g. pool = \"rover-rigs\"")
            return None
        return pool
    if type(pool) == "dict":
        for configuration, name in pool.items():
            if type(name) != "string" or not name:
                _fail("hardware_test: pool for configuration '%s' is %r; expected a pool name" % (configuration, name))
                return None
        return pool.get(active, "")
    _fail("hardware_test: pool is a %s; expected a pool name or a dict configuration -> pool name" % type(pool))
    return None

def _test_attrs(kind, kwargs, active, configurations = None, pool = None, hardware_remote = False, _fail = fail):
    """Attributes of one stage test for the active configuration.

    Args:
      kind: "integration", "configuration" or "hardware".
      kwargs: the attributes the user gave the test (not modified).
      active: the active configuration (CONFIGURATION of @convoy_manifest).
      configurations: the configurations the test is for (None: all).
      pool: for hardware tests, a pool or a dict configuration -> pool.
      hardware_remote: whether hardware tests go to remote rig pools.
      _fail: called with the message for a misuse.

    Returns:
      A new dict of attributes for the test rule, or None after a failure.
    """
    if kind not in STAGES:
        _fail("unknown stage %r; expected one of %s" % (kind, ", ".join(sorted(STAGES))))
        return None
    if configurations != None and type(configurations) != "list":
        _fail("configurations must be a list of configuration names, got %r" % (configurations,))
        return None
    attrs = dict(kwargs)
    tags = list(attrs.get("tags", []))
    tags.append(STAGES[kind])
    env = dict(attrs.get("env", {}))
    env["CONVOY_CONFIGURATION"] = active
    attrs["env"] = env

    skip = configurations != None and active not in configurations
    if kind == "hardware":
        if pool == None:
            _fail("hardware_test needs pool = <rig pool> (or a dict configuration -> pool)")
            return None
        name = _pool_for(pool, active, _fail)
        if name == None:
            return None
        if name:
            tags.append("convoy-pool=" + name)
            properties = dict(attrs.get("exec_properties", {}))
            properties[POOL_PROPERTY] = name
            attrs["exec_properties"] = properties
            if not hardware_remote:
                # A local rig runs one hardware test at a time (LOCAL_RIG_TAGS).
                tags.extend(LOCAL_RIG_TAGS)
        else:
            skip = True
    elif pool != None:
        _fail("pool is for hardware_test only")
        return None

    if skip:
        # SKIPPED, not failed: and it must not reach the repositories of
        # components that the active configuration leaves out.
        attrs["target_compatible_with"] = [INCOMPATIBLE]
        attrs["deps"] = []
        attrs["data"] = []
        attrs.pop("exec_properties", None)
    attrs["tags"] = tags
    return attrs

stage = struct(
    pool_for = _pool_for,
    test_attrs = _test_attrs,
)
