"""WORKSPACE entry point (Bazel 4-6): the manifest's components as repositories.

    load("//rules:repositories.bzl", "convoy_manifest")

    convoy_manifest(
        name = "convoy_manifest",
        lock = "//manifests:manifest.lock.json",
        manifest = "//manifests:manifest.yaml",
    )

    load("@convoy_manifest//:repositories.bzl", "convoy_component_repositories")

    convoy_component_repositories()

This makes the hub @convoy_manifest (defs.bzl: CONFIGURATION, COMPONENTS,
...; configuration.json) and @<component> for every component, at the pins
of the active configuration (--repo_env=CONVOY_CONFIGURATION=<name>).
Bazel >= 7 uses the module extension in extensions.bzl instead.
"""

load("//rules/private:repositories.bzl", _convoy_manifest = "convoy_manifest")

convoy_manifest = _convoy_manifest
