"""Unit tests of the module extension's logic (rules/private/extension.bzl) with a fake module_ctx.

Bazel >= 7 cannot run here, so the extension is a few lines over
extension.plan and extension.metadata; these tests run those with a
module_ctx made of structs (after rules_python's tests/pypi/extension):
which tag counts, what a misuse says, what `bazel mod tidy` is told. Also
the hub's fixed name (hub.bzl), which the WORKSPACE macro checks.
"""

load("@bazel_skylib//lib:unittest.bzl", "asserts", "unittest")
load("//rules/private:extension.bzl", "extension")  # buildifier: disable=bzl-visibility
load("//rules/private:hub.bzl", "hub")  # buildifier: disable=bzl-visibility
load("//rules/private:lock.bzl", "lock")  # buildifier: disable=bzl-visibility

_COMMIT = "0123456789abcdef0123456789abcdef01234567"
_ROOT = "/work/integration"

def _pin(version):
    return {"commit": _COMMIT, "remote": "https://git.example.com/%s.git" % version, "source": "git", "version": version}

# A lock of three components; `lite` leaves bootloader out.
_LOCK = {
    "components": ["bootloader", "codec", "telemetry"],
    "configurations": {
        "lite": {"components": {"codec": _pin("v1.0.0"), "telemetry": _pin("v2.0.0")}},
        "product": {"components": {
            "bootloader": {"path": "components/bootloader", "source": "local", "version": "v0.1.0"},
            "codec": _pin("v1.1.0"),
            "telemetry": _pin("v2.0.0"),
        }},
    },
    "default_configuration": "product",
    "format_version": 1,
    "manifest_sha256": "a" * 64,
}

def _tag(package = "manifests", dev = False):
    return struct(
        lock = Label("//%s:manifest.lock.json" % package),
        manifest = Label("//%s:manifest.yaml" % package),
        dev = dev,
    )

def _module(name, is_root, tags):
    return struct(name = name, version = "1.0", is_root = is_root, tags = struct(lock = tags))

def _is_dev_dependency(tag):
    return tag.dev

def _extension_metadata(root_module_direct_deps = None, root_module_direct_dev_deps = None):
    return struct(deps = root_module_direct_deps, dev_deps = root_module_direct_dev_deps)

def _fake_ctx(modules, environ = {}, bzlmod_api = True):
    """A module_ctx: the modules, the environment, and (like Bazel >= 7.1) getenv/is_dev_dependency/extension_metadata."""
    if not bzlmod_api:
        return struct(modules = modules, os = struct(environ = environ), reads = [])
    return struct(
        modules = modules,
        os = struct(environ = {}),  # getenv wins over os.environ where it exists
        getenv = environ.get,
        is_dev_dependency = _is_dev_dependency,
        extension_metadata = _extension_metadata,
        reads = [],
    )

def _fake_read(ctx, manifest, lock_file, requested, hardware_remote):
    """read_manifest without files: the real lock.bzl checks on _LOCK; records its arguments."""
    ctx.reads.append(struct(manifest = manifest, lock = lock_file, requested = requested, hardware_remote = hardware_remote))
    data = lock.parse(json.encode(_LOCK), str(lock_file))
    return struct(
        data = data,
        configuration = lock.choose_configuration(data, requested),
        root = _ROOT,
        hardware_remote = hardware_remote == "1",
    )

def _plan(ctx):
    errors = []
    plan = extension.plan(ctx, read = _fake_read, _fail = errors.append)
    return plan, errors

def _root_tag_wins_test(ctx):
    env = unittest.begin(ctx)
    fake = _fake_ctx(
        [
            _module("integration", True, [_tag()]),
            _module("convoy", False, []),
            _module("helpers", False, [_tag("other")]),
        ],
        environ = {"CONVOY_CONFIGURATION": "lite", "CONVOY_HARDWARE_REMOTE": "1"},
    )
    plan, errors = _plan(fake)
    asserts.equals(env, [], errors)
    asserts.equals(env, 1, len(fake.reads))
    read = fake.reads[0]
    asserts.equals(env, Label("//manifests:manifest.yaml"), read.manifest)
    asserts.equals(env, Label("//manifests:manifest.lock.json"), read.lock)
    asserts.equals(env, "lite", read.requested)
    asserts.equals(env, "1", read.hardware_remote)
    asserts.equals(env, {"lock": Label("//manifests:manifest.lock.json"), "manifest": Label("//manifests:manifest.yaml")}, plan.hub)

    # Every component gets a repository; the one `lite` leaves out is absent.
    asserts.equals(env, ["bootloader", "codec", "telemetry"], sorted(plan.components))
    asserts.equals(env, "absent", plan.components["bootloader"]["source"])
    asserts.equals(env, "v1.0.0", plan.components["codec"]["version"])
    asserts.equals(env, _COMMIT, plan.components["codec"]["commit"])
    return unittest.end(env)

def _non_root_tags_ignored_test(ctx):
    env = unittest.begin(ctx)

    # A dependency with two tags of its own changes nothing and fails nothing.
    fake = _fake_ctx([
        _module("helpers", False, [_tag("a"), _tag("b")]),
        _module("integration", True, [_tag()]),
    ])
    plan, errors = _plan(fake)
    asserts.equals(env, [], errors)
    asserts.equals(env, [Label("//manifests:manifest.yaml")], [r.manifest for r in fake.reads])
    asserts.equals(env, "v1.1.0", plan.components["codec"]["version"])  # the default configuration
    asserts.equals(env, _ROOT + "/components/bootloader", plan.components["bootloader"]["path"])

    # Tags of other modules only: the root must lock a manifest itself.
    fake = _fake_ctx([_module("integration", True, []), _module("helpers", False, [_tag()])])
    plan, errors = _plan(fake)
    asserts.equals(env, None, plan)
    asserts.equals(env, [], fake.reads)
    asserts.equals(env, 1, len(errors))
    asserts.true(env, "the root module calls no manifest.lock(...)" in errors[0], errors[0])
    asserts.true(env, "a lock tag of another module is ignored" in errors[0], errors[0])
    asserts.true(env, 'manifest = use_extension("@convoy//rules:extensions.bzl", "manifest")' in errors[0], errors[0])
    return unittest.end(env)

def _two_lock_tags_fail_test(ctx):
    env = unittest.begin(ctx)
    fake = _fake_ctx([_module("integration", True, [_tag(), _tag("other")])])
    plan, errors = _plan(fake)
    asserts.equals(env, None, plan)
    asserts.equals(env, [], fake.reads)
    asserts.equals(env, [
        "MODULE.bazel: the root module calls manifest.lock(...) 2 times (manifests: " +
        "%s, %s); an integration repository has one manifest. Keep one call." % (
            Label("//manifests:manifest.yaml"),
            Label("//other:manifest.yaml"),
        ),
    ], errors)
    return unittest.end(env)

def _metadata_lists_components_and_hub_test(ctx):
    env = unittest.begin(ctx)

    # The usual integration repository: one regular usage with the tag.
    fake = _fake_ctx([_module("integration", True, [_tag()]), _module("convoy", False, [])])
    plan, _ = _plan(fake)
    metadata = extension.metadata(fake, plan)
    asserts.equals(env, ["convoy_manifest", "bootloader", "codec", "telemetry"], metadata.deps)
    asserts.equals(env, [], metadata.dev_deps)

    # convoy's own MODULE.bazel: the hub in its regular usage (the macros
    # need it), the sample's components in the dev usage that has the tag.
    fake = _fake_ctx([_module("convoy", True, [_tag(dev = True)])])
    plan, _ = _plan(fake)
    metadata = extension.metadata(fake, plan)
    asserts.equals(env, ["convoy_manifest"], metadata.deps)
    asserts.equals(env, ["bootloader", "codec", "telemetry"], metadata.dev_deps)
    return unittest.end(env)

def _older_bazel_test(ctx):
    env = unittest.begin(ctx)

    # Bazel 7.0: no getenv (os.environ instead), no extension_metadata.
    fake = _fake_ctx([_module("integration", True, [_tag()])], environ = {"CONVOY_CONFIGURATION": "lite"}, bzlmod_api = False)
    plan, errors = _plan(fake)
    asserts.equals(env, [], errors)
    asserts.equals(env, "lite", fake.reads[0].requested)
    asserts.equals(env, None, extension.metadata(fake, plan))
    asserts.equals(env, ["convoy_manifest", "bootloader", "codec", "telemetry"], plan.direct_deps)
    return unittest.end(env)

def _hub_name_test(ctx):
    env = unittest.begin(ctx)
    errors = []
    asserts.true(env, hub.check_name("convoy_manifest", _fail = errors.append))
    asserts.equals(env, [], errors)
    asserts.false(env, hub.check_name("my_manifest", _fail = errors.append))
    asserts.equals(env, [
        "WORKSPACE: convoy_manifest(name = \"my_manifest\"): the hub must be named \"convoy_manifest\", because " +
        "convoy's test macros load @convoy_manifest//:defs.bzl. Remove the name argument (or write " +
        "name = \"convoy_manifest\").",
    ], errors)
    return unittest.end(env)

root_tag_wins_test = unittest.make(_root_tag_wins_test)
non_root_tags_ignored_test = unittest.make(_non_root_tags_ignored_test)
two_lock_tags_fail_test = unittest.make(_two_lock_tags_fail_test)
metadata_lists_components_and_hub_test = unittest.make(_metadata_lists_components_and_hub_test)
older_bazel_test = unittest.make(_older_bazel_test)
hub_name_test = unittest.make(_hub_name_test)

def extension_test_suite(name):
    """The tests of extension.bzl and hub.bzl.

    Args:
      name: the name of the test_suite.
    """
    unittest.suite(
        name,
        root_tag_wins_test,
        non_root_tags_ignored_test,
        two_lock_tags_fail_test,
        metadata_lists_components_and_hub_test,
        older_bazel_test,
        hub_name_test,
    )
