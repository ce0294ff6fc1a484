"""rules_python stand-in for Debian's Bazel 4.2.3: its WORKSPACE setup, which the native rules need none of.

A WORKSPACE written for Bazel 5/6 calls py_repositories() after
convoy_dependencies(); with this stand-in the same WORKSPACE works offline.
"""

def py_repositories():
    """Nothing to declare: the native Python rules need no repositories."""
    pass
