"""What the commands share: their flag parser (`Parser`), the flags several
of them take, and (from convoy.actions.checkout) finding the integration
checkout and reading a request id.

Each command module declares its own flags in `add_flags(parser)` and gets
them, parsed, in `run(opts, args)` (convoy.main does the parsing); a flag
no command of that name declares is refused. The flags several commands
take are added by the helpers here, so they mean the same thing
everywhere: `add_repo` and `add_json` (the queue commands); `add_by` and
`add_reason` (the commands that steer the queue: pause, resume, drain,
promote, cancel, retry; and `convoy lab rig`); `add_bump_flags`
(`--component --version --commit --configuration --archive_url
--strip_prefix`, `convoy submit` and `convoy bump`, where they mean the
same thing). Only a command's `run` reads the parsed flags; the functions
it calls (convoy.actions) take plain arguments.

absl's spellings, which users and scripts have, still work: `--flag=value`
and `--flag value`; a boolean as `--json`, `--nojson`, `--json=true` or
`--json=false`; `--` ends the flags. A renamed flag keeps its old name for
one release (`Parser.deprecated`): each use prints one warning line. Any
mistake (an unknown flag, a value of the wrong type) is one line, the
command's usage included, and exit status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Optional, Sequence

# Finding the checkout and reading a request id, for the commands (convoy.actions.checkout holds them).
from convoy.actions.checkout import (MANIFEST, MAX_ID, NOT_FOUND, VERSION, age, checkout, config,  # noqa: F401
                                     has_store, manifest_path, no_arguments, not_found, request_id,
                                     shown_manifest, shown_store, store, store_url, version_problem)
from convoy.errors import ConvoyError
from convoy.untrusted import printable

TRUE, FALSE = ("true", "t", "1", "yes"), ("false", "f", "0", "no")


class Parser(argparse.ArgumentParser):
    """One command's flags. `parse(argv)` returns (the flags, the positional
    arguments); every mistake is a ConvoyError of one line ending in the
    command's usage, never argparse's own two lines and exit."""

    def __init__(self, command: str) -> None:
        super().__init__(prog=f"convoy {command}", add_help=False, allow_abbrev=False)
        self.bools: set[str] = set()

    def error(self, message: str) -> None:  # argparse's hook for every mistake
        message = message.replace("argument ", "", 1) if message.startswith("argument ") else message
        wrong = re.fullmatch(r"(--\w+): invalid (int|float) value: '(.*)'", message, re.S)
        if wrong:  # `--window=x`: say it as the user wrote it
            flag, kind, value = wrong.groups()
            message = f"{flag}={value} is not {'a whole number' if kind == 'int' else 'a number'}"
        raise ConvoyError(f"{self.prog}: {printable(message)}; {self.usage_line()}")

    def usage_line(self) -> str:
        shown = []
        for action in self._actions:
            if action.help == argparse.SUPPRESS or not action.option_strings:
                continue
            flag = action.option_strings[0]
            shown.append(f"[{flag}]" if action.nargs == 0 else f"[{flag}={action.metavar or action.dest.upper()}]")
        return "usage: " + " ".join([self.prog, *shown])

    def string(self, name: str, default: Optional[str] = None, help: str = "", *,
               metavar: Optional[str] = None) -> None:
        """A flag that takes a value: `--name=value` or `--name value`."""
        self.add_argument(f"--{name}", dest=name, default=default, help=help, metavar=metavar or name.upper())

    def integer(self, name: str, default: Optional[int] = None, help: str = "", *,
                metavar: Optional[str] = None) -> None:
        self.add_argument(f"--{name}", dest=name, default=default, type=int, help=help, metavar=metavar or "N")

    def number(self, name: str, default: Optional[float] = None, help: str = "", *,
               metavar: Optional[str] = None) -> None:
        self.add_argument(f"--{name}", dest=name, default=default, type=float, help=help,
                          metavar=metavar or "NUMBER")

    def enum(self, name: str, default: Optional[str], values: Sequence[str], help: str = "") -> None:
        self.add_argument(f"--{name}", dest=name, default=default, choices=list(values), help=help,
                          metavar="|".join(values))

    def multi_string(self, name: str, default: Optional[list] = None, help: str = "", *,
                     metavar: Optional[str] = None) -> None:
        """A flag that may repeat (`--name=a --name=b`): a list, in the order given."""
        self.add_argument(f"--{name}", dest=name, default=default, action="append", help=help,
                          metavar=metavar or name.upper())

    def boolean(self, name: str, default: bool = False, help: str = "") -> None:
        """A boolean flag, in absl's spellings: `--name`, `--noname`, `--name=true|false`."""
        self.bools.add(name)
        self.add_argument(f"--{name}", dest=name, action="store_true", default=default, help=help)
        self.add_argument(f"--no{name}", dest=name, action="store_false", help=argparse.SUPPRESS)

    def deprecated(self, old: str, new: str) -> None:
        """`--old` as an alias of `--new` for one release; each use warns on stderr in one line."""
        target = next(a for a in self._actions if a.dest == new)
        self.add_argument(f"--{old}", dest=new, action=_Deprecated, type=target.type, new=new,
                          help=argparse.SUPPRESS)

    def parse(self, argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
        argv = list(argv)
        rest: list[str] = []
        if "--" in argv:  # everything after it is an argument
            argv, rest = argv[:argv.index("--")], argv[argv.index("--") + 1:]
        opts, extra = self.parse_known_args([self._absl_bool(arg) for arg in argv])
        for arg in extra:
            if arg.startswith("-") and arg != "-":
                self.error(f"unknown flag {arg}")
        return opts, [*extra, *rest]

    def _absl_bool(self, arg: str) -> str:
        """`--json=true` as `--json`, `--json=false` as `--nojson` (absl's spellings)."""
        name, equals, value = arg[2:].partition("=")
        if not (arg.startswith("--") and equals and name in self.bools):
            return arg
        if value.lower() in TRUE:
            return f"--{name}"
        if value.lower() in FALSE:
            return f"--no{name}"
        self.error(f"--{name}={value} is not a boolean; give --{name}, --no{name} or --{name}=true|false")
        return arg


class _Deprecated(argparse.Action):
    def __init__(self, option_strings, dest, *, new: str, **kwargs) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"convoy: warning: {option_string} is deprecated; use --{self.new} (the old name goes in the next "
              "release)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_repo(parser: Parser) -> None:
    parser.string("repo", metavar="DIR", help="The integration checkout (default: the nearest directory at or above "
                "the current one that has manifests/manifest.yaml).")


def add_json(parser: Parser) -> None:
    parser.boolean("json", help="Print JSON for scripts instead of text.")


def add_by(parser: Parser,
           help: str = "Who does it, recorded in its event (default: the user running convoy).") -> None:
    parser.string("by", metavar="WHO", help=help)


def add_reason(parser: Parser, help: str = "Why, recorded in its event (convoy pause, convoy drain).") -> None:
    parser.string("reason", metavar="TEXT", help=help)


def add_bump_flags(parser: Parser) -> None:
    """`--component --version --commit --configuration --archive_url --strip_prefix`: convoy submit, convoy bump."""
    parser.string("component", metavar="NAME", help="The component to bump (a name from manifests/manifest.yaml).")
    parser.string("version", help="The component's new version, e.g. v1.5.0 (a tag of its remote).")
    parser.string("commit", help="The component's commit (40 hex); default: the commit the version's tag names.")
    parser.string("configuration", metavar="NAME",
                help="Limit the bump to this configuration (default: every configuration that has the component).")
    parser.string("archive_url", metavar="URL",
                help="Fetch the component from this archive (a prebuilt package) instead.")
    parser.string("strip_prefix", metavar="DIR",
                  help="The directory inside --archive_url to use as the component's root.")


def print_table(table: Sequence[Sequence[str]]) -> None:
    """Rows of cells (the first the header), columns padded to their widest; the last cell unpadded."""
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1])
