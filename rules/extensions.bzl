"""Bazel >= 7 entry point: the `manifest` module extension.

In the integration repository's MODULE.bazel:

    bazel_dep(name = "convoy", version = "0.2.0")
    archive_override(
        module_name = "convoy",
        urls = ["https://example.com/convoy-0.2.0.tar.gz"],
        integrity = "sha256-...",
        strip_prefix = "convoy-0.2.0",
    )

    manifest = use_extension("@convoy//rules:extensions.bzl", "manifest")
    manifest.lock(
        lock = "//manifests:manifest.lock.json",
        manifest = "//manifests:manifest.yaml",
    )
    use_repo(manifest, "convoy_manifest", "codec", "telemetry", "bootloader")

The extension makes the hub @convoy_manifest and @<component> for every
component of the root module's manifest, at the pins of the active
configuration (--repo_env=CONVOY_CONFIGURATION=<name>). Only the root
module's tag counts. It reports the root module's direct dependencies, so
`bazel mod tidy` keeps use_repo(...) in step with the manifest. A component
that needs a repository of your module (say rules_cc) gets it with
`inject_repo(manifest, "rules_cc")` (Bazel >= 7.4).

The same repositories as the WORKSPACE rule in repositories.bzl, made by the
same functions (rules/private/); the logic is extension.plan, unit-tested
with a fake module_ctx.
"""

load("//rules/private:extension.bzl", "extension")
load("//rules/private:repositories.bzl", "convoy_component", "convoy_hub")

def _manifest_impl(module_ctx):
    plan = extension.plan(module_ctx)
    for name, attrs in plan.components.items():
        convoy_component(name = name, **attrs)
    convoy_hub(name = extension.HUB, **plan.hub)
    return extension.metadata(module_ctx, plan)

manifest = module_extension(
    implementation = _manifest_impl,
    tag_classes = {
        "lock": tag_class(
            attrs = {
                "lock": attr.label(mandatory = True, doc = "The lock written by `convoy lock`."),
                "manifest": attr.label(mandatory = True, doc = "The manifest the lock was made from."),
            },
            doc = "The manifest and lock of this integration repository (the root module's tag only counts).",
        ),
    },
    environ = ["CONVOY_CONFIGURATION", "CONVOY_HARDWARE_REMOTE"],
    doc = "The components of the manifest as repositories, at the pins of the active configuration.",
)
