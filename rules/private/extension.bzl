"""The logic of the `manifest` module extension, as functions of a module_ctx.

rules/extensions.bzl is a few lines over these; the Starlark unit tests call
them with a fake module_ctx (a struct with `modules`, `os`, optional
`getenv`, `is_dev_dependency` and `extension_metadata`), so the bzlmod path
runs on every Bazel, not only on Bazel >= 7:

    load("//rules/private:extension.bzl", "extension")

    plan = extension.plan(module_ctx)          # None after a failure
    for name, attrs in plan.components.items():
        convoy_component(name = name, **attrs)
    convoy_hub(name = extension.HUB, **plan.hub)
    return extension.metadata(module_ctx, plan)

Only the root module's `manifest.lock(...)` counts: the integration
repository is the root module, and a module that depends on convoy (convoy
itself, or a library of test helpers) cannot bring a manifest of its own.
"""

load(":hub.bzl", "HUB")
load(":lock.bzl", "lock")
load(":repositories.bzl", "read_manifest")

_USAGE = """manifest = use_extension("@convoy//rules:extensions.bzl", "manifest")
manifest.lock(manifest = "//manifests:manifest.yaml", lock = "//manifests:manifest.lock.json")
use_repo(manifest, "convoy_manifest", <every component of the manifest>)"""

def _getenv(module_ctx, name):
    """An environment variable; module_ctx.getenv (Bazel >= 7.1) makes the extension re-run when it changes."""
    if hasattr(module_ctx, "getenv"):
        return module_ctx.getenv(name)
    return module_ctx.os.environ.get(name)

def _root_tag(module_ctx, _fail = fail):
    """The root module's one `manifest.lock` tag; other modules' tags are ignored.

    Args:
      module_ctx: the module_ctx (or a fake with `modules`).
      _fail: called with the message when the root has no tag or several.

    Returns:
      The tag (with `lock` and `manifest` labels), or None after a failure.
    """
    tags = [tag for mod in module_ctx.modules if mod.is_root for tag in mod.tags.lock]
    if not tags:
        _fail("MODULE.bazel: the root module calls no manifest.lock(...), so there is no manifest to make " +
              "repositories from (a lock tag of another module is ignored). Add to the root MODULE.bazel:\n" + _USAGE)
        return None
    if len(tags) > 1:
        _fail(("MODULE.bazel: the root module calls manifest.lock(...) %d times (manifests: %s); an integration " +
               "repository has one manifest. Keep one call.") % (
            len(tags),
            ", ".join([str(tag.manifest) for tag in tags]),
        ))
        return None
    return tags[0]

def _is_dev(module_ctx, tag):
    # module_ctx.is_dev_dependency exists from Bazel 6.2.
    if hasattr(module_ctx, "is_dev_dependency"):
        return module_ctx.is_dev_dependency(tag)
    return False

def _plan(module_ctx, read = read_manifest, _fail = fail):
    """The repositories the extension declares, from the root module's tag.

    Args:
      module_ctx: the module_ctx (or a fake: modules, os.environ, ...).
      read: reads and checks the lock: read_manifest of repositories.bzl (a
        test passes a fake with the same arguments and result).
      _fail: called with the message for a misuse of the tags.

    Returns:
      A struct, or None after a failure:
        components: repository name -> convoy_component attributes, for
          every component of the manifest at the active configuration's pin;
        hub: the attributes of the hub repository (lock, manifest);
        direct_deps, direct_dev_deps: what the root module must use_repo,
          for extension_metadata (`bazel mod tidy`). The hub is always a
          regular dependency (convoy's own non-dev usage needs it for the
          macros); the components follow the tag (dev or not).
    """
    tag = _root_tag(module_ctx, _fail)
    if tag == None:
        return None
    state = read(
        module_ctx,
        tag.manifest,
        tag.lock,
        _getenv(module_ctx, "CONVOY_CONFIGURATION"),
        _getenv(module_ctx, "CONVOY_HARDWARE_REMOTE"),
    )
    components = lock.component_repositories(state.data, state.configuration, state.root)
    names = sorted(components)
    dev = _is_dev(module_ctx, tag)
    return struct(
        components = components,
        hub = {"lock": tag.lock, "manifest": tag.manifest},
        direct_deps = [HUB] + ([] if dev else names),
        direct_dev_deps = names if dev else [],
    )

def _metadata(module_ctx, plan):
    """The extension's return value: its metadata where this Bazel has it.

    Args:
      module_ctx: the module_ctx.
      plan: as returned by plan().

    Returns:
      module_ctx.extension_metadata(...) naming the root module's direct
      dependencies (so `bazel mod tidy` fixes use_repo), or None on a Bazel
      without it.
    """
    if not hasattr(module_ctx, "extension_metadata"):
        return None
    return module_ctx.extension_metadata(
        root_module_direct_deps = plan.direct_deps,
        root_module_direct_dev_deps = plan.direct_dev_deps,
    )

extension = struct(
    HUB = HUB,
    metadata = _metadata,
    plan = _plan,
    root_tag = _root_tag,
)
