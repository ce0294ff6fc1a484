"""convoy.culprits: which bumps of a failed candidate its failing targets depend on.

- the pure parts: the requests whose components' repositories are among the
  packages or labels (canonical names too), the query's expression, line();
- the query's failures and flags, with a stand-in `bazel` (it hangs, fails,
  prints something that is not a package, names the hub);
- the real Bazel on a copy of the sample (local components): a target that
  depends on messages but not the planner, one on both, a test of a
  component's own repository, a BUILD file that loads a component's macro,
  the hub, a flake, a label that does not exist.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from convoy import culprits
from convoy.culprits import QuerySettings, Suspicion, suspects, suspects_from_packages

from tests.support import REPO
from tests.support.bazel import OUTPUT_USER_ROOT, make_workspace

PLAN, TELEMETRY, COMPAT = (f"//integration:{name}" for name in (
    "plan_to_motion_test", "telemetry_roundtrip_test", "protocol_compat_test"))
BUMPED = {3: ["messages"], 4: ["planner"], 5: ["firmware"]}


# --- the pure parts ---------------------------------------------------------------


def test_the_requests_whose_components_are_in_the_packages():
    packages = ["integration", "rules/private", "@bazel_tools//tools/python", "@controller//", "@messages//",
                "@platforms//os"]
    assert suspects_from_packages(packages, BUMPED) == ((3,), (4, 5))
    assert suspects_from_packages(packages + ["@planner//sub"], BUMPED) == ((3, 4), (5,))
    assert suspects_from_packages([], BUMPED) == ((), (3, 4, 5))
    assert suspects_from_packages(packages, {}) == ((), ())
    # a request that bumps several components is a suspect if any of them is in the deps; queue order is kept
    assert suspects_from_packages(["@firmware//"], {9: ["planner", "firmware"], 2: ["messages"], 7: "firmware"}) \
        == ((9, 7), (2,))


def test_labels_and_canonical_repository_names():
    labels = ["//integration:telemetry_roundtrip_test", "@messages//:messages", "@@+convoy+planner//sub:x"]
    assert suspects_from_packages(labels, BUMPED) == ((3, 4), (5,))
    assert suspects_from_packages(["@@convoy~~convoy~firmware//"], BUMPED) == ((5,), (3, 4))
    # a name that only starts or ends like a component's is another repository
    assert suspects_from_packages(["@messages_v2//", "@old_planner//", "@pip~firmware_x//", "//messages:x",
                                   "messages"], BUMPED) == ((), (3, 4, 5))
    # the hub is no component
    assert suspects_from_packages(["@convoy_manifest//"], BUMPED) == ((), (3, 4, 5))


def test_the_query_expression():
    assert culprits._expression(["//integration:a", "@messages//:messages_test"]) == (
        'let t = set("//integration:a" "@messages//:messages_test") in deps($t) + '
        '(buildfiles(deps($t)) except set(@convoy_manifest//...:*))')
    for bad in ('//a:"x"', "-//a:b", "//a:\n"):
        with pytest.raises(culprits.affected._QueryFailed, match="cannot be quoted"):
            culprits._expression([bad])


def test_line():
    one = Suspicion((3,), (4, 5), "build graph", 0.3, ("//integration:drone_test",), ((3, ("messages",)),))
    assert one.line() == ("build graph: //integration:drone_test depends on messages (request 3) only; "
                          "2 cleared (requests 4, 5)")
    both = Suspicion((3, 4, 6), (), "build graph", 0.3, (PLAN, TELEMETRY),
                     ((3, ("messages",)), (4, ("planner", "messages")), (6, ("messages",))))
    assert both.line() == (f"build graph: {PLAN} and {TELEMETRY} depend on messages (requests 3, 4, 6), "
                           "planner (request 4); none cleared")
    many = Suspicion((3,), (4,), "build graph", 0.3, ("//a:1", "//a:2", "//a:3", "//a:4"), ((3, ("messages",)),))
    assert many.line() == "build graph: 4 failing targets depend on messages (request 3) only; 1 cleared (request 4)"
    assert Suspicion((3,), (4,), "build graph", 0.3).line() == "build graph: suspects request 3; 1 cleared (request 4)"
    assert Suspicion((3, 4), (), "no failing targets", 0.0).line() == "no failing targets; all suspects (requests 3, 4)"
    assert Suspicion((3,), (), "query failed: exit 7: boom", 1.0).line() == \
        "query failed: exit 7: boom; all suspects (request 3)"
    assert Suspicion((), (), culprits.NO_BUMPED, 0.1).line() == \
        "build graph: no bumped component in the failing targets' deps; no request to suspect"


def test_no_failing_targets_asks_no_bazel(tmp_path):
    settings = QuerySettings(None, bazel=str(tmp_path / "no-such-bazel"))
    for targets in ([], ["", "  "]):
        suspicion = suspects(tmp_path, "rover", targets, BUMPED, settings)
        assert suspicion == Suspicion((3, 4, 5), (), "no failing targets", 0.0)


# --- the query, with a stand-in bazel ------------------------------------------------------


def fake_bazel(tmp_path: Path, body: str) -> str:
    path = tmp_path / "bazel"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_one_query_with_the_task_flags(tmp_path):
    script = 'echo "$@" >> "$(dirname "$0")/args"; printf "integration\\n@messages//\\n\\n@controller//\\n"'
    flags = ("--config=hil", "--repo_env=CONVOY_HARDWARE_REMOTE=1", "--override_repository=x=/x",
             "--test_tag_filters=convoy-hardware")
    settings = QuerySettings(tmp_path / "ob", startup_flags=("--max_idle_secs=5",), flags=flags,
                             bazel=fake_bazel(tmp_path, script), log_path=tmp_path / "culprits.log")
    suspicion = suspects(tmp_path, "drone", [TELEMETRY, TELEMETRY], BUMPED, settings)
    assert (suspicion.suspects, suspicion.cleared, suspicion.method) == ((3,), (4, 5), "build graph")
    assert suspicion.targets == (TELEMETRY,) and suspicion.blamed == ((3, ("messages",)),)
    assert 0 < suspicion.seconds < 10
    (args,) = (tmp_path / "args").read_text().splitlines()
    assert args.startswith(f"--max_idle_secs=5 --output_base={tmp_path / 'ob'} query --noshow_progress "
                           "--repo_env=CONVOY_CONFIGURATION=drone --repo_env=CONVOY_HARDWARE_REMOTE=1 "
                           "--override_repository=x=/x --output=package let t = set(")
    assert "--config=hil" not in args and "--test_tag" not in args
    assert "# exit: 0" in (tmp_path / "culprits.log").read_text()


def test_query_failures_suspect_everyone(tmp_path):
    hangs = QuerySettings(None, timeout=0.5, bazel=fake_bazel(tmp_path, "exec sleep 30"))
    suspicion = suspects(tmp_path, "rover", [PLAN], BUMPED, hangs)
    assert (suspicion.suspects, suspicion.cleared) == ((3, 4, 5), ())
    assert suspicion.method == "query failed: timed out after 0.5 s" and 0.4 < suspicion.seconds < 10
    fails = QuerySettings(None, bazel=fake_bazel(tmp_path, "echo 'ERROR: no such target //x:y' >&2; exit 7"))
    assert suspects(tmp_path, "rover", [PLAN], BUMPED, fails).method == "query failed: exit 7: no such target //x:y"
    chatty = QuerySettings(None, bazel=fake_bazel(tmp_path, "echo 'Loading: 3 packages'"))
    assert suspects(tmp_path, "rover", [PLAN], BUMPED, chatty).method == \
        "query failed: it printed 'Loading: 3 packages', not a package"
    missing = QuerySettings(None, bazel=str(tmp_path / "no-such-bazel"))
    assert suspects(tmp_path, "rover", [PLAN], BUMPED, missing).method.startswith("query failed: ")
    quoted = suspects(tmp_path, "rover", ['//a:"b"'], BUMPED, missing)
    assert quoted.method == """query failed: target '//a:"b"' cannot be quoted in a query"""
    assert quoted.suspects == (3, 4, 5)


def test_the_hub_or_no_bumped_component_suspects_everyone(tmp_path):
    hub = QuerySettings(None, bazel=fake_bazel(tmp_path, "printf 'integration\\n@messages//\\n@convoy_manifest//\\n'"))
    suspicion = suspects(tmp_path, "rover", [COMPAT], BUMPED, hub)
    assert (suspicion.suspects, suspicion.cleared, suspicion.method) == ((3, 4, 5), (), culprits.ON_HUB)
    none = QuerySettings(None, bazel=fake_bazel(tmp_path, "printf 'integration\\n@controller//\\n'"))
    suspicion = suspects(tmp_path, "rover", [TELEMETRY], BUMPED, none)
    assert (suspicion.suspects, suspicion.cleared) == ((3, 4, 5), ())
    assert suspicion.method == "build graph: no bumped component in the failing targets' deps"


# --- the real Bazel on the sample ------------------------------------------------------


@pytest.fixture(scope="module")
def sample_ws(tmp_path_factory):
    """A copy of the sample (local components) and a query on its own output base."""
    base = tmp_path_factory.mktemp("culprits-sample")
    ws = make_workspace(base / "ws")
    for name in ("manifest.yaml", "manifest.lock.json", "configurations.bazelrc"):
        shutil.copy2(REPO / "manifests" / name, ws / "manifests" / name)
    shutil.copytree(REPO / "examples" / "components", ws / "examples" / "components",
                    ignore=shutil.ignore_patterns("__pycache__", "bazel-*"))
    # a package whose BUILD file loads a macro of the planner (rover's v2.1.0) and depends on messages only
    (ws / "examples" / "components" / "planner" / "v2.1.0" / "defs.bzl").write_text(
        'def planner_library(name, **kwargs):\n    native.filegroup(name = name, **kwargs)\n')
    (ws / "probe").mkdir()
    (ws / "probe" / "BUILD.bazel").write_text(
        'load("@planner//:defs.bzl", "planner_library")\n\n'
        'planner_library(name = "probe", srcs = ["@messages"])\n')
    startup = (f"--output_user_root={OUTPUT_USER_ROOT}", "--max_idle_secs=120")
    output_base = base / "output-base"
    yield ws, startup, output_base
    subprocess.run(["bazel", *startup, f"--output_base={output_base}", "shutdown"], cwd=ws, capture_output=True,
                   timeout=120, check=False)


def ask(sample_ws, targets, bumped=None, configuration="rover") -> Suspicion:
    ws, startup, output_base = sample_ws
    settings = QuerySettings(output_base, startup_flags=startup, flags=("--keep_going",), timeout=300,
                             log_path=output_base.parent / "culprits.log")
    return suspects(ws, configuration, targets, {3: ["messages"], 4: ["planner"]} if bumped is None else bumped,
                    settings)


@pytest.mark.bazel
def test_a_target_on_messages_but_not_the_planner(sample_ws):
    suspicion = ask(sample_ws, [TELEMETRY])
    assert suspicion.method == "build graph", (sample_ws[2].parent / "culprits.log").read_text()
    assert (suspicion.suspects, suspicion.cleared) == ((3,), (4,))
    assert suspicion.line() == f"build graph: {TELEMETRY} depends on messages (request 3) only; 1 cleared (request 4)"
    assert 0 < suspicion.seconds < 120


@pytest.mark.bazel
def test_a_target_on_both(sample_ws):
    suspicion = ask(sample_ws, [PLAN], {3: ["messages"], 4: ["planner"], 5: ["firmware"], 6: ["nosuch"]})
    assert (suspicion.suspects, suspicion.cleared, suspicion.method) == ((3, 4), (5, 6), "build graph")
    assert suspicion.line() == (f"build graph: {PLAN} depends on messages (request 3), planner (request 4) only; "
                                "2 cleared (requests 5, 6)")
    # two failing targets are one query: the union of their deps
    assert ask(sample_ws, [TELEMETRY, "@planner//:planner_test"]).suspects == (3, 4)


@pytest.mark.bazel
def test_a_test_of_a_components_own_repository(sample_ws):
    suspicion = ask(sample_ws, ["@messages//:messages_test"], {3: ["planner"], 4: ["controller", "messages"]})
    assert (suspicion.suspects, suspicion.cleared, suspicion.method) == ((4,), (3,), "build graph")
    assert suspicion.blamed == ((4, ("messages",)),)


@pytest.mark.bazel
def test_a_build_file_that_loads_a_components_macro(sample_ws):
    # the load is no edge of deps(); buildfiles() sees it
    suspicion = ask(sample_ws, ["//probe:probe"], {3: ["messages"], 4: ["planner"], 5: ["controller"]})
    assert (suspicion.suspects, suspicion.cleared, suspicion.method) == ((3, 4), (5,), "build graph")


@pytest.mark.bazel
def test_the_hub_and_a_flake_suspect_everyone(sample_ws):
    # protocol_compat_test reads @convoy_manifest//:configuration.json, which records every pin
    assert ask(sample_ws, [COMPAT]).method == culprits.ON_HUB
    flake = ask(sample_ws, [TELEMETRY], {5: ["firmware"], 4: ["planner"]})
    assert (flake.suspects, flake.cleared) == ((5, 4), ())
    assert flake.line() == ("build graph: no bumped component in the failing targets' deps; "
                            "all suspects (requests 5, 4)")


@pytest.mark.bazel
def test_a_label_that_does_not_exist(sample_ws):
    suspicion = ask(sample_ws, [TELEMETRY, "//integration:bogus"])
    assert (suspicion.suspects, suspicion.cleared) == ((3, 4), ())
    assert suspicion.method.startswith("query failed: exit 7: no such target '//integration:bogus'"), suspicion
    assert "\n" not in suspicion.method and len(suspicion.method) < 250
    assert "# exit: 7" in (sample_ws[2].parent / "culprits.log").read_text()
