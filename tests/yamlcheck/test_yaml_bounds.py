"""YAML that would exhaust the host (convoy.yamlcheck), in a manifest and in
convoy.yaml: deep nesting, aliases that expand, huge files and a FIFO are
refused in one line by the real `convoy`, with nothing changed; parsing is
linear in the size of a file.

The checkout is the `state_checkout` fixture (tests/conftest.py,
tests/support/state.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from convoy.config import parse_config

from tests.support.state import MANIFEST, cli, tree


BIG = ("# " + "x" * 77 + "\n") * (9 * 1024 * 1024 // 80)  # 9 MiB of comments
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(9)
)  # nine lines: 10**10 x's once expanded


@pytest.mark.parametrize("name", ("manifests/manifest.yaml", "convoy.yaml"))
@pytest.mark.parametrize("text, problem", [
    ("[" * 100_000, ":1: nested more than 64 levels deep"),
    ("a: " + "{b: " * 100_000 + "c" + "}" * 100_000 + "\n", ":1: nested more than 64 levels deep"),
    ("- " * 100_000 + "x\n", ":1: nested more than 64 levels deep"),
    (LAUGHS, ":4: YAML aliases repeat more than 10000 values"),
    ("a: &a [1, *a]\n", ":1: YAML alias '*a' is inside what it names"),
    (BIG, f": {len(BIG)} bytes, more than the 8 MiB convoy reads"),
])
def test_yaml_that_would_exhaust_the_host_is_one_line(state_checkout, name, text, problem):
    (state_checkout / name).write_text(text)
    command = ("submit", "--component=widget", "--version=v1.1.0") if name.startswith("manifests") else ("tag",)
    before = tree(state_checkout)
    started = time.monotonic()
    run = cli(state_checkout, *command)
    assert time.monotonic() - started < 30
    assert run.returncode == 2, run
    assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) == 1, run.stderr
    assert f"{name}{problem}" in run.stderr, run.stderr
    assert (state_checkout / name).read_text() == text and tree(state_checkout) == before


def test_a_fifo_for_convoy_yaml_is_one_line_not_a_hang(state_checkout):
    (state_checkout / "convoy.yaml").unlink()
    os.mkfifo(state_checkout / "convoy.yaml")
    run = cli(state_checkout, "tag", timeout=30)
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1, run
    assert "convoy.yaml: not a regular file" in run.stderr


def test_a_few_aliases_are_still_fine():
    config = parse_config("stages:\n  - {name: a, command: test, flags: &f [--config=ci]}\n"
                          "  - {name: b, command: test, flags: *f}\n", "convoy.yaml")
    assert [s.flags for s in config.stages] == [("--config=ci",), ("--config=ci",)]


def test_a_comment_heavy_manifest_parses_in_linear_time():
    # 4 MB of comments after a value: ruamel's round-trip parser joins them
    # into one string, one by one (quadratic: 9 s here, 35 MB took minutes;
    # now 0.06 s). benchmarks/yaml_size.py measures the growth.
    # In a process of its own: its time is the parse's alone, whatever the
    # suite's heap holds. (The ~20 s "teardown" that --durations shows after
    # this test in a whole run is the session's fixtures stopping: it is last.)
    script = textwrap.dedent("""
        import json, sys, time
        from convoy.manifest import parse_manifest
        comments = ("    # " + "x" * 73 + "\\n") * (4_000_000 // 80)
        text = sys.stdin.read().replace("configurations:\\n", comments + "configurations:\\n", 1)
        started = time.monotonic()
        manifest = parse_manifest(text)
        print(json.dumps([time.monotonic() - started, manifest.components["widget"].version, len(text)]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], input=MANIFEST, capture_output=True, text=True,
                          timeout=120, check=True)
    seconds, version, size = json.loads(proc.stdout)
    assert seconds < 2 and version == "v1.0.0" and size > 4_000_000, proc.stdout
