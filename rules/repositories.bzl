"""WORKSPACE entry point (Bazel 4-6): convoy's dependencies and the manifest's components.

In the integration repository's WORKSPACE.bazel:

    load("@bazel_tools//tools/build_defs/repo:http.bzl", "http_archive")

    http_archive(
        name = "convoy",
        sha256 = "...",
        strip_prefix = "convoy-0.2.0",
        urls = ["https://example.com/convoy-0.2.0.tar.gz"],
    )

    load("@convoy//rules:repositories.bzl", "convoy_dependencies", "convoy_manifest")

    convoy_dependencies()

    convoy_manifest(
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

load("@bazel_tools//tools/build_defs/repo:http.bzl", "http_archive")
load("@bazel_tools//tools/build_defs/repo:utils.bzl", "maybe")
load("//rules/private:hub.bzl", "hub")
load("//rules/private:repositories.bzl", _convoy_manifest = "convoy_manifest")

# The repositories convoy's Starlark loads: @rules_python (py_test, the
# default test rule of the macros) and @platforms (@platforms//:incompatible
# skips a test outside its configurations); @bazel_skylib for convoy's own
# unit tests. The same versions as MODULE.bazel; checksums from the Bazel
# Central Registry.
_DEPENDENCIES = {
    "bazel_skylib": struct(
        sha256 = "bc283cdfcd526a52c3201279cda4bc298652efa898b10b4db0837dc51652756f",
        strip_prefix = None,
        url = "https://github.com/bazelbuild/bazel-skylib/releases/download/1.7.1/bazel-skylib-1.7.1.tar.gz",
    ),
    "platforms": struct(
        sha256 = "218efe8ee736d26a3572663b374a253c012b716d8af0c07e842e82f238a0a7ee",
        strip_prefix = None,
        url = "https://github.com/bazelbuild/platforms/releases/download/0.0.10/platforms-0.0.10.tar.gz",
    ),
    "rules_python": struct(
        sha256 = "690e0141724abb568267e003c7b6d9a54925df40c275a870a4d934161dc9dd53",
        strip_prefix = "rules_python-0.40.0",
        url = "https://github.com/bazelbuild/rules_python/releases/download/0.40.0/rules_python-0.40.0.tar.gz",
    ),
}

def convoy_dependencies():
    """Declares the repositories convoy needs, unless the WORKSPACE already has them.

    Call it after loading this file and before convoy_manifest(). A
    repository you declare earlier wins (so you choose the versions). With
    rules_python from here, Bazel 5/6 also need its own setup afterwards:

        load("@rules_python//python:repositories.bzl", "py_repositories")

        py_repositories()

    On Debian's offline Bazel 4.2 every one of these comes from an
    --override_repository of the `bazel4` config (`convoy bazel4`), so
    nothing is downloaded.
    """
    for name, dep in _DEPENDENCIES.items():
        maybe(
            http_archive,
            name = name,
            sha256 = dep.sha256,
            strip_prefix = dep.strip_prefix,
            urls = [dep.url],
        )

def convoy_manifest(name = hub.HUB, **kwargs):
    """The hub @convoy_manifest, plus repositories.bzl declaring every component.

    Args:
      name: must be "convoy_manifest" (the macros of defs.bzl load it by that
        name); may be left out.
      **kwargs: lock (the lock's label) and manifest (the manifest's label),
        and the common repository rule attributes.
    """
    hub.check_name(name)
    _convoy_manifest(name = name, **kwargs)
