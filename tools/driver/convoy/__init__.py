"""convoy: the release pipeline driver for Bazel distributed monoliths."""

__version__ = "0.1.0"
