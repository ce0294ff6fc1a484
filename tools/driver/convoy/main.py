"""convoy's entry point: parse flags, dispatch to one command module.

Usage: convoy <command> [--flag=value ...]

Each command is a module in convoy.commands exposing
`run(args: list[str]) -> int`; flags are absl flags defined at the top of
that module. A ConvoyError becomes one line per problem on stderr and exit
status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys

from absl import app
from absl import flags

import convoy
from convoy.errors import ConvoyError

# command name -> module under convoy.commands. Commands are added here as
# they are built; `convoy help` lists them.
COMMANDS = {
    "bazel4": "bazel4",
    "bump": "bump",
    "cancel": "cancel",
    "demo": "demo",
    "events": "events",
    "init": "init",
    "lab": "lab",
    "lock": "lock",
    "process": "process",
    "retry": "retry",
    "show": "show",
    "status": "status",
    "submit": "submit",
    "tag": "tag",
}

USAGE = "usage: convoy <command> [flags]   (commands: {})".format(", ".join(sorted(COMMANDS)))


def _error(message: str) -> None:
    for line in message.splitlines():
        print(f"convoy: error: {line}", file=sys.stderr)


def main(argv: list[str]) -> int:
    """Runs `convoy <command> [flags]` given its full argv; returns the exit code.

    Flags are parsed here, from their defaults, so that calling main() twice
    in one process (as the tests do) behaves like two runs of `convoy`.
    """
    if len(argv) < 2 or argv[1] in ("help", "-h", "--help"):
        print(USAGE)
        return 0 if len(argv) >= 2 else 2
    if argv[1] in ("--version", "version"):
        print(f"convoy {convoy.__version__}")
        return 0
    name = argv[1]
    if name not in COMMANDS:
        _error(f"unknown command '{name}'; run: convoy help")
        return 2
    module = importlib.import_module(f"convoy.commands.{COMMANDS[name]}")
    try:
        # A command may take arguments absl cannot (init: --component repeated).
        args = _parse_flags(getattr(module, "preparse", list)(argv))
        return module.run(args[2:])
    except ConvoyError as e:
        _error(str(e))
        return 2


def _parse_flags(argv: list[str]) -> list[str]:
    """Parses every command's flags from their defaults; returns the rest of argv."""
    for module in COMMANDS.values():
        importlib.import_module(f"convoy.commands.{module}")
    flags.FLAGS.unparse_flags()
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        raise ConvoyError(f"{e}; run: convoy help") from None


def _check_flags(argv: list[str]) -> list[str]:
    # absl's app.run wants the flags parsed before main; main parses them
    # again from argv, so it gets the whole command line either way.
    try:
        _parse_flags(argv)
    except ConvoyError as e:
        _error(str(e))
        sys.exit(2)
    return argv


def run() -> None:
    """Console-script entry point (`convoy`)."""
    if sys.argv[1:2] == ["--version"]:  # before absl, which defines --version for convoy submit
        sys.exit(main(sys.argv[:2]))
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=_check_flags)


if __name__ == "__main__":
    run()
