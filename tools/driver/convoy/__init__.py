"""convoy: the release pipeline driver for Bazel distributed monoliths."""

from importlib.metadata import PackageNotFoundError, version as _installed_version
from pathlib import Path
from typing import Optional

try:
    # The installed package's metadata (pyproject.toml's version), so that
    # `convoy --version` says what pip installed.
    __version__ = _installed_version("convoy")
except PackageNotFoundError:  # run from a checkout without installing it
    __version__ = "0+unknown"


def source_checkout() -> Optional[Path]:
    """The convoy checkout this package runs from (it has rules/defs.bzl,
    MODULE.bazel and examples/), or None when convoy is installed from a wheel."""
    root = Path(__file__).resolve().parents[3]  # <checkout>/tools/driver/convoy/__init__.py
    if (root / "rules" / "defs.bzl").is_file() and (root / "MODULE.bazel").is_file():
        return root
    return None
