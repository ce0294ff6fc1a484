"""`convoy simulate` on the command line (convoy.main.main, in-process): the
table, --json, --plot, exit status 1 on a green violation, and one line with
exit status 2 for each bad value. It needs no integration checkout: every
test runs in an empty temporary directory.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest

from convoy import main
from convoy.commands import simulate as command
from convoy.queue import chain
from convoy.queue.chain import Merge

SVG = "{http://www.w3.org/2000/svg}"
FAST = ("--requests=20", "--arrival_per_hour=120")


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no manifests/manifest.yaml here or above


def simulate(capsys, *args):
    code = main.main(["convoy", "simulate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_table_has_a_row_per_mode_and_the_settings(capsys):
    code, out, err = simulate(capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["MODE", "MERGES/H", "MEAN", "MIN", "P95", "MIN", "RUNS/MERGE", "HW", "RUNS/MERGE",
                                "RIG", "USE", "%", "GREEN", "VIOLATIONS", "MERGED", "REJECTED", "WRONGLY",
                                "REJECTED", "RETRIES", "RIG", "RETRIES", "RIGS", "DRAINED"]
    rows = [line.split() for line in lines[1:4]]
    assert [row[0] for row in rows] == ["serial", "speculative", "batch"]
    for row in rows:
        assert len(row) == 14
        assert row[7] == "0"  # green violations
        assert int(row[8]) + int(row[9]) == 60  # merged + rejected: every request
        assert row[10:] == ["0", "0", "0", "0"]  # no flake, no sick rig: nothing wrongly rejected, retried, drained
        float(row[1]), float(row[6])
    assert float(rows[1][1]) > float(rows[0][1])  # speculative merges more per hour than serial
    assert lines[4] == (
        "settings: 60 requests at 60/h, failure_rate 0.1, flake_rate 0, stages build=120s integration=300s "
        "configuration=120s hardware=1800s, 4 rigs for stage hardware, window 4 (floor 1), batch_size 4, "
        "max_bisect 3, seed 1")
    assert lines[5] == ("health: flaky_attempts 1, retry_failed 0, quarantine_rate 0, rig_failure_rate 0, bad_rigs 0 "
                        "(failure rate 0.8), drain_after 3")
    assert len(lines) == 6


def test_the_modes_and_numbers_given_are_used(capsys):
    code, out, _ = simulate(capsys, "--modes=batch,serial", "--rigs=2", "--window=6", "--window_floor=2",
                            "--batch_size=3", "--max_bisect=1", "--failure_rate=0.2", "--flake_rate=0.05",
                            "--seed=7", "--stage_seconds=build=60,soak=600", *FAST)
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[1:3]] == ["batch", "serial"]
    assert lines[3] == ("settings: 20 requests at 120/h, failure_rate 0.2, flake_rate 0.05, stages build=60s "
                        "soak=600s, 2 rigs for stage soak, window 6 (floor 2), batch_size 3, max_bisect 1, seed 7")


def test_json(capsys):
    code, out, _ = simulate(capsys, "--json", "--modes=serial,speculative", "--stage_seconds=build=60,test=120",
                            "--hardware_stage=build", *FAST)
    assert code == 0
    data = json.loads(out)
    assert data["settings"] == {
        "modes": ["serial", "speculative"], "requests": 20, "arrival_per_hour": 120.0, "failure_rate": 0.1,
        "flake_rate": 0.0, "stage_seconds": {"build": 60.0, "test": 120.0}, "hardware_stage": "build", "rigs": 4,
        "window": 4, "window_floor": 1, "batch_size": 4, "max_bisect": 3, "seed": 1, "flaky_attempts": 1,
        "retry_failed": 0, "quarantine_rate": 0.0, "rig_failure_rate": 0.0, "bad_rigs": 0,
        "bad_rig_failure_rate": 0.8, "drain_after": 3}
    assert [m["mode"] for m in data["modes"]] == ["serial", "speculative"]
    serial = data["modes"][0]
    assert "timeline" not in serial
    assert serial["hardware_runs"] == serial["merged"] + serial["rejected"]  # the build stage holds the rig
    assert serial["green_violations"] == 0 and serial["merged"] + serial["rejected"] == 20
    assert (serial["retries"], serial["rig_retries"], serial["quarantined"], serial["rigs_drained"]) == (0, 0, 0, 0)


HEALTH = ("--modes=serial", "--requests=40", "--arrival_per_hour=1000", "--failure_rate=0",
          "--flake_rate=0.1", "--rig_failure_rate=0.02", "--bad_rigs=1", "--bad_rig_failure_rate=0.9")


def test_the_health_flags_reach_the_table_and_the_json(capsys):
    """With flakes and a sick rig, and nothing that breaks: without retries
    some good requests are rejected; with them none, at the cost of
    retries; the sick rig is drained only with --drain_after."""
    code, out, _ = simulate(capsys, *HEALTH, "--drain_after=0")
    row = out.splitlines()[1].split()
    assert code == 0 and row[0] == "serial"
    wrongly, retries, rig_retries, drained = map(int, row[10:])
    assert wrongly > 0 and int(row[9]) == wrongly  # every rejection is a false one (nothing breaks)
    assert (retries, drained) == (0, 0) and rig_retries > 0
    code, out, _ = simulate(capsys, "--json", *HEALTH, "--flaky_attempts=2", "--retry_failed=1",
                            "--drain_after=3")
    data = json.loads(out)
    assert code == 0
    assert {k: data["settings"][k] for k in ("flaky_attempts", "retry_failed", "rig_failure_rate", "bad_rigs",
                                              "bad_rig_failure_rate", "drain_after")} == {
        "flaky_attempts": 2, "retry_failed": 1, "rig_failure_rate": 0.02, "bad_rigs": 1, "bad_rig_failure_rate": 0.9,
        "drain_after": 3}
    serial = data["modes"][0]
    assert (serial["merged"], serial["rejected"], serial["wrongly_rejected"]) == (40, 0, 0)
    assert serial["retries"] > 0 and serial["rigs_drained"] == 1 and serial["rig_retries"] < rig_retries


def test_json_timeline(capsys):
    code, out, _ = simulate(capsys, "--json", "--json_timeline", "--modes=batch", *FAST)
    timeline = json.loads(out)["modes"][0]["timeline"]
    assert code == 0 and timeline[0][0] == 0 and all(len(point) == 3 for point in timeline)
    assert [p[0] for p in timeline] == sorted(p[0] for p in timeline)
    assert timeline[-1][1:] == [0, 0]  # at the end: nothing waits, no rig is held


def test_the_plot_is_an_svg_with_a_line_per_mode_in_each_panel(capsys, tmp_path):
    code, out, _ = simulate(capsys, "--plot=modes.svg", *FAST)
    assert code == 0 and "plot: modes.svg" in out
    root = ET.parse(tmp_path / "modes.svg").getroot()
    assert root.tag == f"{SVG}svg"
    panels = root.findall(f"{SVG}g[@class='panel']")
    assert [p.get("id") for p in panels] == ["queue-length", "rigs-in-use"]
    for panel in panels:
        lines = panel.findall(f"{SVG}polyline")
        assert [line.get("data-mode") for line in lines] == ["serial", "speculative", "batch"]
        for line in lines:
            points = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
            assert len(points) > 2
            assert all(a[0] <= b[0] for a, b in zip(points, points[1:]))  # time goes right
            assert all(a[0] == b[0] or a[1] == b[1] for a, b in zip(points, points[1:]))  # steps
        numbers = [t.text for t in panel.findall(f"{SVG}text")]
        assert "0" in numbers and len([n for n in numbers if n.replace(".", "").isdigit()]) >= 4  # tick labels
    assert len(root.findall(f".//{SVG}polyline")) == 6
    legend = root.find(f"{SVG}g[@class='legend']")
    assert [t.text for t in legend.findall(f"{SVG}text")] == ["serial", "speculative", "batch"]
    assert "hours" in [t.text for t in root.iter(f"{SVG}text")]


def test_the_plot_with_json_keeps_stdout_json(capsys, tmp_path):
    code, out, _ = simulate(capsys, "--json", "--modes=speculative", f"--plot={tmp_path}/a.svg", *FAST)
    assert code == 0 and json.loads(out)["modes"][0]["mode"] == "speculative"
    root = ET.parse(tmp_path / "a.svg").getroot()
    assert len(root.findall(f".//{SVG}polyline")) == 2


def test_a_green_violation_is_printed_and_exits_1(capsys, monkeypatch):
    plan = chain.Scheduler.plan

    def merges_the_second(self, tip, free):  # a scheduler bug: merges a candidate built on another
        if len(self.chain) > 1 and self.chain[1].candidate is not None:
            return [Merge(self.chain[1])]
        return plan(self, tip, free)

    monkeypatch.setattr(chain.Scheduler, "plan", merges_the_second)
    code, out, err = simulate(capsys, "--modes=speculative", "--failure_rate=0", *FAST)
    assert code == 1
    assert out.splitlines()[1].split()[0] == "speculative" and out.splitlines()[1].split()[7] != "0"
    assert err.startswith("convoy simulate: GREEN VIOLATION: mode speculative merged ")
    assert "a bug in the scheduler" in err and len(err.splitlines()) == 1


def test_help_is_the_docstring(capsys):
    code, out, _ = simulate(capsys, "--help")
    assert code == 0 and out.strip() == command.__doc__.strip()


BAD = [
    (["--modes=fast"], "unknown mode 'fast'"),
    (["--modes=serial,,batch"], "--modes=serial,,batch names an empty mode"),
    (["--modes="], "names an empty mode"),
    (["--window=0"], "--window=0 must be from 1"),
    (["--window=2", "--window_floor=3"], "--window_floor=3 is more than --window=2"),
    (["--window_floor=0"], "--window_floor=0 must be from 1"),
    (["--batch_size=-1"], "--batch_size=-1 must be from 1"),
    (["--max_bisect=-1"], "--max_bisect=-1 must be from 0"),
    (["--rigs=0"], "--rigs=0 must be from 1"),
    (["--rigs=abc"], "--rigs=abc"),
    (["--requests=-5"], "--requests=-5 must be from 1 to 2000"),
    (["--requests=2001"], "--requests=2001 must be from 1 to 2000"),
    (["--arrival_per_hour=0"], "--arrival_per_hour=0 must be more than 0"),
    (["--arrival_per_hour=-3"], "--arrival_per_hour=-3 must be more than 0"),
    (["--arrival_per_hour=nan"], "--arrival_per_hour=nan must be more than 0"),
    (["--failure_rate=1.5"], "--failure_rate=1.5 is not a rate between 0 and 1"),
    (["--failure_rate=-0.1"], "--failure_rate=-0.1 is not a rate between 0 and 1"),
    (["--flake_rate=2"], "--flake_rate=2 is not a rate between 0 and 1"),
    (["--flake_rate=nan"], "--flake_rate=nan is not a rate between 0 and 1"),
    (["--quarantine_rate=1.1"], "--quarantine_rate=1.1 is not a rate between 0 and 1"),
    (["--rig_failure_rate=-0.5"], "--rig_failure_rate=-0.5 is not a rate between 0 and 1"),
    (["--rig_failure_rate=1"], "--rig_failure_rate=1 fails every hardware run on every rig"),
    (["--bad_rig_failure_rate=nan"], "--bad_rig_failure_rate=nan is not a rate between 0 and 1"),
    (["--flaky_attempts=0"], "--flaky_attempts=0 must be from 1 to 10"),
    (["--flaky_attempts=11"], "--flaky_attempts=11 must be from 1 to 10"),
    (["--retry_failed=-1"], "--retry_failed=-1 must be from 0 to 5"),
    (["--drain_after=-1"], "--drain_after=-1 must be from 0"),
    (["--bad_rigs=4"], "--bad_rigs=4 must be from 0 to 3 (all but one of --rigs=4)"),
    (["--rigs=2", "--bad_rigs=-1"], "--bad_rigs=-1 must be from 0 to 1"),
    (["--stage_seconds=build=abc"], "'build=abc' is not NAME=SECONDS"),
    (["--stage_seconds=build"], "'build' has no seconds; write NAME=SECONDS"),
    (["--stage_seconds=build=60,hardware"], "'hardware' has no seconds"),
    (["--stage_seconds==60"], "'=60' needs a stage name"),
    (["--stage_seconds=build=0"], "stage 'build' takes 0 seconds"),
    (["--stage_seconds=build=-60"], "stage 'build' takes -60 seconds"),
    (["--stage_seconds=build=inf"], "stage 'build' takes inf seconds"),
    (["--stage_seconds=a=1,a=2"], "stage 'a' is named twice"),
    (["--stage_seconds="], "--stage_seconds is empty"),
    (["--hardware_stage=rig"], "--hardware_stage=rig is not a stage of --stage_seconds"),
    (["--seed=-1"], "--seed=-1 must be at least 0"),
    (["--plot=modes.png"], "--plot=modes.png is not a file name ending in .svg"),
    (["--plot=.svg"], "--plot=.svg is not a file name ending in .svg"),
    (["--plot=missing/modes.svg"], "--plot=missing/modes.svg: missing does not exist"),
    (["--plot=file.txt/modes.svg"], "--plot=file.txt/modes.svg: file.txt is not a directory"),
    (["--plot=dir.svg"], "--plot=dir.svg is a directory"),
    (["--plot=/proc/convoy-simulate.svg"], "--plot=/proc/convoy-simulate.svg "),
    (["anything"], "convoy simulate takes no arguments"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(args) for args, _ in BAD])
def test_a_bad_value_is_one_line_and_exit_2(capsys, tmp_path, args, message):
    (tmp_path / "file.txt").write_text("")
    (tmp_path / "dir.svg").mkdir()
    code, out, err = simulate(capsys, *FAST, *args)  # the bad value last: it wins
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("convoy: error: ") and message in err
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["dir.svg", "file.txt"]  # nothing written


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_plot_where_one_may_not_write(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        code, out, err = simulate(capsys, f"--plot={locked}/modes.svg", *FAST)
    finally:
        locked.chmod(0o700)
    assert (code, out) == (2, "") and "cannot be written" in err and len(err.splitlines()) == 1
