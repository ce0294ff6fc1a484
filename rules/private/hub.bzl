"""The name of the hub repository, which the test macros load by that name.

    load("//rules/private:hub.bzl", "hub")

    hub.check_name(name)   # WORKSPACE: convoy_manifest(name = ...) must keep it

The macros in //rules:defs.bzl `load("@convoy_manifest//:defs.bzl", ...)`.
A load names a repository as the loading repository sees it, so the name is
fixed: under bzlmod the extension always makes `convoy_manifest` and convoy's
own MODULE.bazel maps it (a user may still `use_repo(manifest, my_name =
"convoy_manifest")`), and under WORKSPACE the one global name must be it.
"""

HUB = "convoy_manifest"

def _check_name(name, _fail = fail):
    """Fails unless `name` is the hub's fixed name.

    Args:
      name: the name given to convoy_manifest(...) in WORKSPACE.
      _fail: called with the message when it is another name.

    Returns:
      True when the name is the hub's, else False after a failure.
    """
    if name != HUB:
        _fail(("WORKSPACE: convoy_manifest(name = %r): the hub must be named %r, because convoy's test " +
               "macros load @%s//:defs.bzl. Remove the name argument (or write name = %r).") % (
            name,
            HUB,
            HUB,
            HUB,
        ))
        return False
    return True

hub = struct(
    HUB = HUB,
    check_name = _check_name,
)
