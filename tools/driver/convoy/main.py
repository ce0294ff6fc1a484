"""convoy's entry point: parse flags, dispatch to one command module.

Usage: convoy <command> [--flag=value ...]
       convoy <command> --help      # the command's own help: its module's docstring

Each command is a module in convoy.commands exposing
`add_flags(parser)`, which declares the flags that command takes (on a
convoy.commands.common.Parser, argparse underneath), and
`run(opts, args) -> int`, which gets them parsed (`opts`, an
argparse.Namespace) and the positional arguments. A flag the command does
not declare is refused in one line with the command's usage (exit status
2); absl's spellings still work (`--flag=value`, `--flag value`, `--json`,
`--nojson`, `--json=true`). The work itself is in convoy.actions, which
`convoy serve` calls too. A ConvoyError (the user's mistake,
or the world's refusal) becomes one line per problem on stderr and exit
status 2; so is a git command that fails (a remote that refuses or cannot
be reached). A closed standard output (`convoy status | head`) ends the
command quietly with status 141, as SIGPIPE would.

Any other exception is a bug in convoy. Its traceback, convoy's version,
Python's version and the command line go into a crash log
(convoy.crashlog), and stderr gets one line that names it, in the words of
the queue's own crash logs (convoy.queue):

    convoy: internal error (RuntimeError: ...); a bug in convoy, details in <log>

and the exit status is 3. The log is written in the first of these
directories where that works:

1. `.convoy/logs` of the integration checkout (--repo, else the nearest
   directory at or above the current one with manifests/manifest.yaml),
   if there is one;
2. `$XDG_STATE_HOME/convoy` (an absolute XDG_STATE_HOME), else
   `~/.local/state/convoy`;
3. a new private directory (`convoy-crash-*`) in the system's temporary
   directory.

If none can be written, the line says "no crash log could be written" and
the traceback follows it. Ctrl-C (KeyboardInterrupt) and SystemExit are not
bugs and go on as they would.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Iterator, Optional

import convoy
from convoy import crashlog
from convoy import gitutil
from convoy.errors import ConvoyError
from convoy.untrusted import printable

# command name -> module under convoy.commands. Commands are added here as
# they are built; `convoy help` lists them.
COMMANDS = {
    "bazel4": "bazel4",
    "bump": "bump",
    "cancel": "cancel",
    "db": "db",
    "demo": "demo",
    "drain": "drain",
    "events": "events",
    "flakes": "flakes",
    "init": "init",
    "lab": "lab",
    "lock": "lock",
    "pause": "pause",
    "process": "process",
    "promote": "promote",
    "release": "release",
    "resume": "resume",
    "retry": "retry",
    "serve": "serve",
    "show": "show",
    "simulate": "simulate",
    "status": "status",
    "submit": "submit",
    "tag": "tag",
    "try": "try_",
    "verify": "verify",
    "workers": "workers",
}

USAGE = "usage: convoy <command> [flags]   (commands: {})".format(", ".join(sorted(COMMANDS)))


def _error(message: str) -> None:
    for line in message.splitlines():
        print(f"convoy: error: {line}", file=sys.stderr)


# --repo of the command being run, once parsed: where a crash log goes first.
_repo: Optional[str] = None


def main(argv: list[str]) -> int:
    """Runs `convoy <command> [flags]` given its full argv; returns the exit code.

    Flags are parsed here, by a new parser of the command's own flags each
    time, so that calling main() twice in one process (as the tests do)
    behaves like two runs of `convoy`.
    """
    global _repo
    _repo = None
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
    try:
        module = importlib.import_module(f"convoy.commands.{COMMANDS[name]}")
        if _asks_help(argv):
            print((module.__doc__ or USAGE).strip())
            return 0
        from convoy.commands.common import Parser

        parser = Parser(name)
        module.add_flags(parser)
        opts, args = parser.parse(argv[2:])
        _repo = getattr(opts, "repo", None)
        return module.run(opts, args)
    except ConvoyError as e:
        _error(str(e))
        return 2
    except gitutil.GitError as e:  # a remote that refuses or cannot be reached: the world, not a bug
        verb = e.command[1] if len(e.command) > 1 else "git"
        _error(f"git {printable(verb)} failed: {printable(e.detail)}; check the remote, the network and the "
               "checkout, then run the command again")
        return 2
    except BrokenPipeError:  # `convoy status | head`: the reader went away; nothing more to say
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a command ended by SIGPIPE
    except Exception as e:  # a bug in convoy: one line, the rest in a crash log
        return _crashed(e, name, argv)


def _asks_help(argv: list[str]) -> bool:
    """`convoy <command> --help` (or -h), before any `--`."""
    args = argv[2:]
    return any(a in ("--help", "-h") for a in args[:args.index("--") if "--" in args else len(args)])


def _crashed(error: Exception, command: str, argv: list[str]) -> int:
    """Writes the crash log of `error` and names it on stderr in one line; returns 3."""
    log = None
    for directory in _crash_log_directories():
        log = crashlog.write(directory, error, context=f"convoy {command}", argv=argv)
        if log is not None:
            break
    where = f"details in {log}" if log else "no crash log could be written"
    print(f"convoy: internal error ({crashlog.summary(error)}); a bug in convoy, {where}", file=sys.stderr)
    if log is None:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    return 3


def _crash_log_directories() -> Iterator[Path]:
    """Where a crash log may go, best first (see the module's docstring)."""
    logs = _checkout_logs()
    if logs is not None:
        yield logs
    state_home = os.environ.get("XDG_STATE_HOME", "")
    try:
        state = Path(state_home) if os.path.isabs(state_home) else Path.home() / ".local" / "state"
    except (RuntimeError, KeyError):  # no home directory
        state = None
    if state is not None:
        yield state / "convoy"
    try:
        temporary = Path(tempfile.mkdtemp(prefix="convoy-crash-"))  # made only if it comes to this
    except OSError:
        return
    yield temporary


def _checkout_logs() -> Optional[Path]:
    """`.convoy/logs` of the integration checkout, or None where there is
    none. Anything that goes wrong here is not the error to report."""
    try:
        from convoy.actions import checkout as common
        from convoy.store import state_dir

        return state_dir(common.checkout(_repo)) / "logs"
    except Exception:
        return None


def run() -> None:
    """Console-script entry point (`convoy`)."""
    sys.exit(main(sys.argv))


if __name__ == "__main__":
    run()
