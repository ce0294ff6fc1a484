"""Bazel >= 7 entry point: the `manifest` module extension.

    manifest = use_extension("//rules:extensions.bzl", "manifest")
    manifest.lock(
        lock = "//manifests:manifest.lock.json",
        manifest = "//manifests:manifest.yaml",
    )
    use_repo(manifest, "convoy_manifest", "controller", "firmware", "messages", "planner")

The same repositories as the WORKSPACE rule in repositories.bzl, made by the
same functions (rules/private/); only the glue below differs.
"""

load("//rules/private:lock.bzl", "lock")
load("//rules/private:repositories.bzl", "convoy_component", "convoy_hub", "read_manifest")

def _getenv(module_ctx, name):
    # module_ctx.getenv (Bazel >= 7.1) makes the extension re-run when it changes.
    if hasattr(module_ctx, "getenv"):
        return module_ctx.getenv(name)
    return module_ctx.os.environ.get(name)

def _manifest_impl(module_ctx):
    tags = [tag for mod in module_ctx.modules if mod.is_root for tag in mod.tags.lock]
    if len(tags) != 1:
        fail("MODULE.bazel: the root module must call manifest.lock(...) exactly once, found %d" % len(tags))
    tag = tags[0]
    state = read_manifest(
        module_ctx,
        tag.manifest,
        tag.lock,
        _getenv(module_ctx, "CONVOY_CONFIGURATION"),
        _getenv(module_ctx, "CONVOY_HARDWARE_REMOTE"),
    )
    for name, attrs in lock.component_repositories(state.data, state.configuration, state.root).items():
        convoy_component(name = name, **attrs)
    convoy_hub(name = "convoy_manifest", lock = tag.lock, manifest = tag.manifest)

manifest = module_extension(
    implementation = _manifest_impl,
    tag_classes = {
        "lock": tag_class(
            attrs = {
                "lock": attr.label(mandatory = True, doc = "The lock written by `convoy lock`."),
                "manifest": attr.label(mandatory = True, doc = "The manifest the lock was made from."),
            },
            doc = "The manifest and lock of this integration repository.",
        ),
    },
    doc = "The components of the manifest as repositories, at the pins of the active configuration.",
)
