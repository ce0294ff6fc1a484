"""How the time to load a manifest grows with its size: it must be linear.

    .venv/bin/python benchmarks/yaml_size.py [--sizes=1,2,4,8] [--bump]

Each manifest is the checked-in manifests/manifest.yaml with N MB of comment
lines between two components (a run of comments after a value is what made
ruamel's round-trip parser quadratic: 35 MB took minutes). For each size it
prints the median of three `parse_manifest` times and the ratio to the
smallest size's time per MB: a ratio near 1 is linear, near N quadratic.
`--bump` also times `bump_manifest` (convoy bump, and convoy process's
candidate), whose text edit composes the file once more. Only figures are
printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "driver"))

from convoy import manifest as manifest_module  # noqa: E402
from convoy.manifest import parse_manifest  # noqa: E402
from convoy.manifest_edit import Bump, bump_manifest  # noqa: E402
from convoy.yamlcheck import MAX_BYTES  # noqa: E402

MB = 1_000_000
COMMENT = "    # " + "x" * 73 + "\n"  # 80 bytes, indented like the component keys around it
REPEAT = 3


def manifest(megabytes: float) -> str:
    base = (REPO / "manifests" / "manifest.yaml").read_text(encoding="utf-8")
    comments = COMMENT * int(megabytes * MB / len(COMMENT))
    anchor = "  planner:"
    assert anchor in base, f"{anchor!r} is no longer in manifests/manifest.yaml; pick another component"
    return base.replace(anchor, comments + anchor, 1)


def median_seconds(function, *args) -> float:
    times = []
    for _ in range(REPEAT):
        manifest_module.clear_cache()  # the parse itself, not the process's cache of parsed manifests
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2,4,8", help="manifest sizes in MB (at most the 8 MiB limit)")
    parser.add_argument("--bump", action="store_true", help="also time bump_manifest")
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    bump = Bump(component="messages", version="v1.5.0")
    print(f"{'MB':>5}  {'parse s':>8}  {'ratio':>6}" + (f"  {'bump s':>8}  {'ratio':>6}" if args.bump else ""))
    first = None
    for size in sizes:
        text = manifest(size)
        if len(text.encode("utf-8")) > MAX_BYTES:
            sys.exit(f"{size} MB is over the {MAX_BYTES} byte limit of convoy's YAML files; pass smaller --sizes")
        row = [median_seconds(parse_manifest, text)]
        if args.bump:
            row.append(median_seconds(bump_manifest, text, bump))
        per_mb = [seconds / size for seconds in row]
        first = first or per_mb
        cells = "".join(f"  {seconds:8.3f}  {mine / base:6.2f}" for seconds, mine, base in zip(row, per_mb, first))
        print(f"{size:5g}{cells}", flush=True)


if __name__ == "__main__":
    main()
