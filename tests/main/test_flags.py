"""Each command parses its own flags (argparse, in absl's spellings): an
unknown flag, or another command's, is refused in one line with the
command's usage; renamed flags keep their old names for one release."""

from __future__ import annotations

import json

import pytest

from convoy import main


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("argv, usage", [
    (["status", "--listen=x"], "usage: convoy status [--repo=DIR] [--json]"),
    (["status", "--keep=3"], "usage: convoy status [--repo=DIR] [--json]"),
    (["show", "--sim_rigs=9", "3"], "usage: convoy show [--repo=DIR] [--json]"),
    (["pause", "--follow"], "usage: convoy pause [--repo=DIR] [--by=WHO] [--reason=TEXT]"),
    (["simulate", "--repo=x"], "usage: convoy simulate [--json] [--modes=MODES]"),
])
def test_unknown_flag_is_one_line_with_usage(capsys, argv, usage):
    assert main.main(["convoy", *argv]) == 2
    line = _one_line(capsys)
    flag = argv[1]
    assert line.startswith(f"convoy: error: convoy {argv[0]}: unknown flag {flag}; {usage}"), line


def test_wrong_type_is_one_line(capsys):
    assert main.main(["convoy", "simulate", "--window=x"]) == 2
    assert "--window" in _one_line(capsys)


def test_bad_boolean_is_one_line(capsys):
    assert main.main(["convoy", "status", "--json=maybe"]) == 2
    assert "--json=maybe is not a boolean" in _one_line(capsys)


def test_simulate_new_names(capsys):
    assert main.main(["convoy", "simulate", "--modes=serial,speculative", "--rigs=4", "--requests=5", "--json"]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert [m["mode"] for m in data["modes"]] == ["serial", "speculative"]
    assert data["settings"]["rigs"] == 4
    assert out.err == ""


def test_simulate_old_name_warns_once(capsys):
    assert main.main(["convoy", "simulate", "--sim_rigs=3", "--requests=5", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["settings"]["rigs"] == 3
    assert out.err == ("convoy: warning: --sim_rigs is deprecated; use --rigs (the old name goes in the next "
                       "release)\n")


@pytest.mark.parametrize("spelling, expected", [
    (["--json"], True), (["--nojson"], False), (["--json=true"], True), (["--json=false"], False),
    (["--json=True"], True), ([], False), (["--json", "--nojson"], False),
])
def test_booleans_in_absl_spellings(capsys, spelling, expected):
    assert main.main(["convoy", "simulate", "--requests=3", *spelling]) == 0
    out = capsys.readouterr().out
    assert out.lstrip().startswith("{") == expected


def test_value_as_next_argument(capsys):
    assert main.main(["convoy", "simulate", "--requests", "3", "--modes", "serial", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["settings"]["requests"] == 3 and data["settings"]["modes"] == ["serial"]


def test_init_takes_component_repeated():
    # argparse's append, in both spellings (tests/adoption/test_init.py runs a whole init with them)
    from convoy.commands import init
    from convoy.commands.common import Parser

    parser = Parser("init")
    init.add_flags(parser)
    opts, args = parser.parse(["--component", "a=x@v1", "DIR", "--component=b=y@v2", "--rules=r"])
    assert (opts.component, opts.rules, args) == (["a=x@v1", "b=y@v2"], "r", ["DIR"])
    assert parser.parse(["DIR"])[0].component == []
    assert parser.parse(["DIR"])[0].component == []  # a new list each parse


def test_init_with_a_bad_second_component_names_it(tmp_path, capsys):
    code = main.main(["convoy", "init", "--component", "a=https://example.invalid/a.git@v1.0.0",
                      "--component=nothing-here", str(tmp_path / "new")])
    assert code == 2
    assert "nothing-here" in _one_line(capsys)


def test_flags_after_double_dash_are_arguments(capsys):
    assert main.main(["convoy", "simulate", "--", "--json"]) == 2
    assert "convoy simulate takes no arguments, got: --json" in _one_line(capsys)


def test_lab_cancel_pool_is_renamed_pool(capsys, tmp_path):
    assert main.main(["convoy", "lab", "cancel", "--cancel_pool=p", "--invocation_id=i", f"--lab_dir={tmp_path}"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "convoy: warning: --cancel_pool is deprecated; use --pool (the old name goes in the next release)",
        "convoy: error: lab cancel takes --invocation_id or --pool, not both"]


@pytest.mark.parametrize("command, old, new, value", [("flakes", "flakes_last", "last", 7),
                                                      ("lab", "lab_port", "port", 0)])
def test_other_renamed_flags_keep_their_old_names(capsys, command, old, new, value):
    import importlib

    from convoy.commands.common import Parser

    parser = Parser(command)
    importlib.import_module(f"convoy.commands.{command}").add_flags(parser)
    assert getattr(parser.parse([f"--{new}={value}"])[0], new) == value
    assert capsys.readouterr().err == ""
    assert getattr(parser.parse([f"--{old}={value}"])[0], new) == value
    assert capsys.readouterr().err == (f"convoy: warning: --{old} is deprecated; use --{new} (the old name goes in "
                                       "the next release)\n")


def test_help_prints_the_docstring(capsys):
    from convoy.commands import status
    assert main.main(["convoy", "status", "--help"]) == 0
    assert capsys.readouterr().out.strip() == status.__doc__.strip()
