"""rules_python stand-in for Debian's Bazel 4.2.3: the native Python rules under rules_python's names.

BUILD files load `@rules_python//python:defs.bzl` so that they also work with
Bazel 9, where the native Python rules are gone.
"""

py_binary = native.py_binary
py_library = native.py_library
py_runtime = native.py_runtime
py_test = native.py_test
