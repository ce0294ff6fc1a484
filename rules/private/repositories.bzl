"""Repository rules behind both entry points: the hub and one repository per component.

`read_manifest(ctx, manifest, lock_file)` works on a repository_ctx and on a
module_ctx alike (both have path, read, download, execute), so the WORKSPACE
rule `convoy_manifest` and the bzlmod extension share it; what they then do
with its result is the pure code of lock.bzl.
"""

load(":lock.bzl", "REMOTE_SCHEMES", "lock")

ENVIRON = ["CONVOY_CONFIGURATION", "CONVOY_HARDWARE_REMOTE"]

# Every git call may use only these transports: never ext:: or fd::, which run commands.
_GIT_ENV = {"GIT_ALLOW_PROTOCOL": ":".join(REMOTE_SCHEMES)}

def _display(label):
    return "%s/%s" % (label.package, label.name) if label.package else label.name

def _root_of(ctx, label):
    """Absolute path of the repository that holds `label` (the integration repo)."""
    path = str(ctx.path(label))
    suffix = "/" + _display(label)
    return path[:-len(suffix)]

def read_manifest(ctx, manifest, lock_file, requested, hardware_remote):
    """Reads and checks the lock, and picks the active configuration.

    Args:
      ctx: a repository_ctx or a module_ctx.
      manifest: Label of manifests/manifest.yaml.
      lock_file: Label of manifests/manifest.lock.json.
      requested: the value of CONVOY_CONFIGURATION, or None.
      hardware_remote: the value of CONVOY_HARDWARE_REMOTE, or None.

    Returns:
      A struct(data, configuration, root, hardware_remote).
    """
    manifest_path = ctx.path(manifest)
    lock_display = _display(lock_file)

    # Reading the lock through its label makes Bazel re-run the rule when it
    # changes; a missing lock must be caught first, by a plain path.
    if not manifest_path.dirname.get_child(lock_file.name).exists:
        fail("%s not found: the manifest has not been locked. Run: convoy lock" % lock_display)
    data = lock.parse(ctx.read(ctx.path(lock_file)), lock_display)

    # Starlark has no sha256; a download of the file:// URL reports one, and
    # resolving the manifest's label makes Bazel watch it too.
    digest = ctx.download(url = "file://" + str(manifest_path), output = ".convoy/manifest.yaml").sha256
    lock.check_fresh(data, digest, lock_display)
    return struct(
        data = data,
        configuration = lock.choose_configuration(data, requested),
        root = _root_of(ctx, manifest),
        hardware_remote = hardware_remote in ("1", "true", "True", "yes"),
    )

def write_hub(ctx, state):
    """Writes the files of @convoy_manifest into the repository being made."""
    for name, content in lock.hub_files(state.data, state.configuration, state.hardware_remote).items():
        ctx.file(name, content, executable = False)

_HUB_ATTRS = {
    "lock": attr.label(
        mandatory = True,
        allow_single_file = True,
        doc = "The lock written by `convoy lock` (manifests/manifest.lock.json).",
    ),
    "manifest": attr.label(
        mandatory = True,
        allow_single_file = True,
        doc = "The manifest the lock was made from (manifests/manifest.yaml); its digest must match.",
    ),
}

def _hub_state(rctx):
    state = read_manifest(
        rctx,
        rctx.attr.manifest,
        rctx.attr.lock,
        rctx.os.environ.get("CONVOY_CONFIGURATION"),
        rctx.os.environ.get("CONVOY_HARDWARE_REMOTE"),
    )
    write_hub(rctx, state)
    return state

def _convoy_manifest_impl(rctx):
    state = _hub_state(rctx)
    rule_bzl = Label("//rules/private:repositories.bzl")
    rctx.file("repositories.bzl", lock.repositories_bzl(
        lock.component_repositories(state.data, state.configuration, state.root),
        "@%s//%s:%s" % (rule_bzl.workspace_name, rule_bzl.package, rule_bzl.name),
    ))

convoy_manifest = repository_rule(
    implementation = _convoy_manifest_impl,
    attrs = _HUB_ATTRS,
    environ = ENVIRON,
    doc = "The hub @convoy_manifest, plus repositories.bzl declaring every component (WORKSPACE).",
)

def _convoy_hub_impl(rctx):
    _hub_state(rctx)

convoy_hub = repository_rule(
    implementation = _convoy_hub_impl,
    attrs = _HUB_ATTRS,
    environ = ENVIRON,
    doc = "The hub @convoy_manifest alone (the module extension declares the components).",
)

def _run(rctx, args, what):
    result = rctx.execute(args, timeout = 600, quiet = True, environment = _GIT_ENV)
    if result.return_code != 0:
        first = (result.stderr.strip() or result.stdout.strip() or "exit %d" % result.return_code).splitlines()[0]
        fail("@%s: %s failed (%s). Check the component's source in the manifest, then run: convoy lock" % (
            rctx.attr.component,
            what,
            first,
        ))
    return result.stdout

def _fetch_git(rctx):
    remote, commit = rctx.attr.remote, rctx.attr.commit
    if lock.remote_problem(remote) or not lock.is_commit(commit):
        fail("@%s: refusing to fetch %r at %r: not a remote and commit the lock can hold. Run: convoy lock" % (
            rctx.attr.component,
            remote,
            commit,
        ))
    _run(rctx, ["git", "init", "-q", "."], "git init")

    # `--` before the remote and the commit: neither is ever read as an option.
    _run(rctx, ["git", "fetch", "-q", "--depth=1", "--", remote, commit], "fetching commit %s from %s" % (commit, remote))
    _run(rctx, ["git", "-c", "advice.detachedHead=false", "checkout", "-q", commit, "--"], "checking out %s" % commit)
    head = _run(rctx, ["git", "rev-parse", "HEAD"], "git rev-parse").strip()
    if head != commit:
        fail("@%s: checked out %s but the lock pins %s. Run: convoy lock" % (rctx.attr.component, head, commit))
    rctx.delete(".git")

def _link_local(rctx):
    # component_repositories() made the path absolute from one that parse()
    # kept inside the integration repository.
    source = rctx.path(rctx.attr.path)
    if not source.exists:
        fail("@%s: local path %s does not exist. Fix the component's path in the manifest, then run: convoy lock" % (
            rctx.attr.component,
            rctx.attr.path,
        ))
    for child in source.readdir():
        rctx.symlink(child, child.basename)

def _convoy_component_impl(rctx):
    source = rctx.attr.source
    if source == "git":
        _fetch_git(rctx)
    elif source == "archive":
        rctx.download_and_extract(
            url = rctx.attr.url,
            sha256 = rctx.attr.sha256,
            stripPrefix = rctx.attr.strip_prefix,
        )
    elif source == "local":
        _link_local(rctx)
    else:
        rctx.file("BUILD.bazel", "# %s is not part of configuration %s: this repository is empty.\n" % (
            rctx.attr.component,
            rctx.attr.configuration,
        ))
    rctx.file(".convoy/pin", "%s %s %s\n" % (rctx.attr.component, rctx.attr.version, source))

convoy_component = repository_rule(
    implementation = _convoy_component_impl,
    attrs = {
        "commit": attr.string(doc = "git: the 40-hex commit to check out."),
        "component": attr.string(mandatory = True, doc = "The component's name in the manifest."),
        "configuration": attr.string(mandatory = True, doc = "The active configuration it was pinned for."),
        "path": attr.string(doc = "local: absolute path of the component's directory."),
        "remote": attr.string(doc = "git: the remote to fetch from."),
        "sha256": attr.string(doc = "archive: sha256 of the archive."),
        "source": attr.string(
            mandatory = True,
            values = ["git", "archive", "local", "absent"],
            doc = "Where the pinned version comes from; absent for a component outside the configuration.",
        ),
        "strip_prefix": attr.string(doc = "archive: directory prefix to strip."),
        "url": attr.string(doc = "archive: the URL of the archive."),
        "version": attr.string(doc = "The pinned version, for messages and the hub."),
    },
    doc = "One component of the manifest at the pin of the active configuration.",
)
