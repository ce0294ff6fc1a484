"""`convoy flakes`: which tests flake or fail, per configuration and per rig, worst first.

    convoy flakes                   # each test that flaked or failed in its last 50 runs, worst first
    convoy flakes --last=20         # count each test's last 20 runs instead
    convoy flakes --json            # every test, those that only passed too, in the same order

    TARGET                                CONFIG  RUNS  FLAKY  FAILED  FLAKE  FAIL  LAST
    //integration:plan_to_motion_test     rover   12    3      1       25%    8%    flaky (request 41)
        rig rover-rigs-2: 4 runs, 3 flaky, 0 failed
        quarantined until 2026-12-31: times out on a loaded host (#123)

Worst first: by the share of a test's runs that did not simply pass (flaky,
failed, timed out, quarantined), then by how many, then the newest: the top
line is the test to fix or quarantine next. A test's runs are its results
in the tasks of `convoy process` (table test_results; a result a cache gave
is no run), newest first, at most `--last` per test and
configuration, and per rig for a hardware test (the rigs it ran on). A test
that `quarantine:` in convoy.yaml holds is marked, also one that passed
every run since (its entry can go) or never ran. Read-only: it works while
`convoy process` runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from convoy import flaky
from convoy.commands import common
from convoy.config import CONFIG_NAME
from convoy.errors import ConvoyError
from convoy.untrusted import printable as p


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    common.add_json(parser)
    parser.integer("last", flaky.DEFAULT_LAST, "How many of each test's newest runs count.")
    parser.deprecated("flakes_last", "last")  # its name while flags were global (absl), for one release


MAX_LAST = 10_000
MAX_RESULTS = 200_000  # the newest results read: the last runs of a few thousand tests


def run(opts: argparse.Namespace, args: list[str]) -> int:
    as_json, repo, last = opts.json, opts.repo, opts.last
    common.no_arguments("flakes", args)
    rows = flakes(common.checkout(repo), last=last)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows, last)
    return 0


def flakes(root: Path, *, last: int = flaky.DEFAULT_LAST) -> list[dict[str, Any]]:
    """Each test of the checkout `root` per configuration over its `last`
    runs (flaky.FlakeRow.to_dict), worst first; the quarantine entries of its
    convoy.yaml marked. Read-only; [] before anything ran."""
    if not 1 <= last <= MAX_LAST:
        raise ConvoyError(f"--last={last} is not a number of runs (1 to {MAX_LAST}); "
                          f"for example: convoy flakes --last=20")
    quarantine = common.config(root).quarantine if (root / CONFIG_NAME).is_file() else ()
    results = []
    if common.has_store(root):
        with common.store(root, readonly=True) as store, store.read() as tx:
            results = tx.test_results(limit=MAX_RESULTS)
    return [row.to_dict() for row in flaky.rates(results, quarantine=quarantine, last=last)]


def print_table(rows: list[dict[str, Any]], last: int) -> None:
    """The rows of `flakes` that flaked, failed or are quarantined, as text; the others counted."""
    shown = [r for r in rows if r["flaky"] or r["failed"] or r["quarantine"]]
    if not rows:
        print("no test results yet; convoy process records each test's result")
        return
    table = [("TARGET", "CONFIG", "RUNS", "FLAKY", "FAILED", "FLAKE", "FAIL", "LAST")]
    details: dict[int, list[str]] = {}
    for r in shown:  # every value from the state is escaped: a label cannot forge a line
        ran = f"{p(r['last_status'])} (request {r['last_request_id']})" if r["last_request_id"] else p(r["last_status"])
        table.append((p(r["target"]), p(r["configuration"]), str(r["runs"]), str(r["flaky"]), str(r["failed"]),
                      f"{r['flake_rate']:.0%}", f"{r['failure_rate']:.0%}", ran or "-"))
        lines = [f"rig {p(rig)}: {c['runs']} runs, {c['flaky']} flaky, {c['failed']} failed"
                 for rig, c in r["rigs"].items()]
        entry = r["quarantine"]
        if entry is not None:
            clean = " (no flake or failure in its last runs: the entry can go)" if r["runs"] and not (
                r["flaky"] or r["failed"]) else " (no run yet)" if not r["runs"] else ""
            lines.append(f"quarantined until {entry['until']}: {p(entry['reason'])}{clean}")
        details[len(table) - 1] = lines
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for index, line in enumerate(table):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1])
        for detail in details.get(index, ()):
            print(f"    {detail}")
    clean = len(rows) - len(shown)
    if clean:
        print(f"{clean} other test{'s' if clean != 1 else ''} passed every run counted (at most {last} each; "
              "convoy flakes --json lists them)")
