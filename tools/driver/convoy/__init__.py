"""convoy: the release pipeline driver for Bazel distributed monoliths."""

from importlib.metadata import PackageNotFoundError, version as _installed_version

try:
    # The installed package's metadata (pyproject.toml's version), so that
    # `convoy --version` says what pip installed.
    __version__ = _installed_version("convoy")
except PackageNotFoundError:  # run from a checkout without installing it
    __version__ = "0+unknown"
