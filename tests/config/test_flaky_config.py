"""convoy.config_flaky: a test stage's `flaky_test_attempts` and `retry_failed`, and `quarantine:`
entries; each mistake is one line, and an entry past its date is refused."""

from __future__ import annotations

import datetime
import textwrap
from pathlib import Path

import pytest

from convoy.config import load_config
from convoy.config_flaky import QuarantineEntry, label_of
from convoy.errors import ConvoyError

TODAY = datetime.date.today()
LATER = TODAY + datetime.timedelta(days=30)
YESTERDAY = TODAY - datetime.timedelta(days=1)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "convoy.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = _write(tmp_path, text)
    before = path.read_bytes()
    with pytest.raises(ConvoyError) as info:
        load_config(path)
    assert path.read_bytes() == before  # checking changes nothing
    return list(info.value.problems)


def test_a_stage_adds_bazels_flaky_test_attempts_and_keeps_its_retry_failed(tmp_path):
    config = load_config(_write(tmp_path, """\
        stages:
          - {name: build, command: build}
          - {name: integration, command: test, flags: [--keep_going], flaky_test_attempts: 3, retry_failed: 0}
          - {name: hardware, command: test, flaky_test_attempts: 1}
        """))
    build, integration, hardware = config.stages
    assert integration.bazel_flags() == ("--keep_going", "--flaky_test_attempts=3")
    assert (integration.retry_failed, hardware.retry_failed, build.retry_failed) == (0, 1, 1)
    assert hardware.bazel_flags() == ()  # one attempt is Bazel's default: no flag


def test_quarantine_entries_load_with_their_labels_as_bazel_names_them(tmp_path):
    config = load_config(_write(tmp_path, f"""\
        quarantine:
          - target: //integration:plan_to_motion_test
            reason: times out on a loaded host (#123)
            until: {LATER.isoformat()}
          - {{target: "@//integration/radio", reason: flaky radio, until: "{TODAY.isoformat()}",
             configurations: [drone]}}
        """))
    assert config.quarantine == (
        QuarantineEntry(target="//integration:plan_to_motion_test", reason="times out on a loaded host (#123)",
                        until=LATER, index=0),
        QuarantineEntry(target="//integration/radio:radio", reason="flaky radio", until=TODAY,
                        configurations=("drone",), index=1),
    )
    assert config.quarantine[0].note == f"quarantined until {LATER.isoformat()}: times out on a loaded host (#123)"
    assert config.quarantine[1].applies("//integration/radio:radio", "drone", TODAY)
    assert not config.quarantine[1].applies("//integration/radio:radio", "rover", TODAY)
    assert not config.quarantine[1].applies("//integration/radio:radio", "drone", LATER)  # it ended


def test_an_expired_entry_is_an_error_that_names_it(tmp_path):
    assert _problems(tmp_path, f"""\
        quarantine:
          - target: //integration:plan_to_motion_test
            reason: slow
            until: {YESTERDAY.isoformat()}
        """) == [f"convoy.yaml:4: quarantine[0] (//integration:plan_to_motion_test): expired on "
                 f"{YESTERDAY.isoformat()}; fix the test or move its until date"]


@pytest.mark.parametrize("entry, problem", [
    ("{target: //integration/..., reason: r, until: LATER}",
     "quarantine[0] (//integration/...): '//integration/...' is not a test's label; name one test, like "
     "//integration:plan_to_motion_test (no patterns)"),
    ("{target: '//integration:all', reason: r, until: LATER}",
     "quarantine[0] (//integration:all): '//integration:all' is not a test's label; name one test, like "
     "//integration:plan_to_motion_test (no patterns)"),
    ("{target: --config=x, reason: r, until: LATER}",
     "quarantine[0] (--config=x): '--config=x' is not a test's label; name one test, like "
     "//integration:plan_to_motion_test (no patterns)"),
    ("{target: //a:t, until: LATER}",
     "quarantine[0] (//a:t): missing required key 'reason'; add it, e.g. reason: \"flaky on a loaded host, "
     "see #123\""),
    ("{target: //a:t, reason: '', until: LATER}",
     "quarantine[0] (//a:t).reason: has no value; give it one, e.g. reason: \"flaky on a loaded host, see #123\""),
    ("{target: //a:t, reason: \"two\\nlines\", until: LATER}",
     "quarantine[0] (//a:t).reason: must be one line of at most 200 printable characters; shorten it; put the "
     "story in the issue it names"),
    ("{target: //a:t, reason: r}",
     "quarantine[0] (//a:t): missing required key 'until' (a quarantine ends); add it, e.g. until: 2026-12-31 "
     "(at most a few weeks away)"),
    ("{target: //a:t, reason: r, until: next week}",
     "quarantine[0] (//a:t).until: must be a date like 2026-12-31, not 'next week'; write it as YYYY-MM-DD"),
    ("{target: //a:t, reason: r, until: '2026-02-30'}",
     "quarantine[0] (//a:t).until: must be a date like 2026-12-31, not '2026-02-30'; write it as YYYY-MM-DD"),
    ("{target: //a:t, reason: r, until: 2026-12-01 10:00:00}",
     "quarantine[0] (//a:t).until: must be a date like 2026-12-31, not a date and time; write it as YYYY-MM-DD"),
    ("{target: //a:t, reason: r, until: LATER, configurations: [rover, 'bad name']}",
     "quarantine[0] (//a:t).configurations: 'bad name' is not a configuration name; write names like "
     "[rover, drone]"),
    ("{target: //a:t, reason: r, until: LATER, owner: me}",
     "quarantine[0]: unknown key 'owner' (expected: target, reason, until, configurations); fix or remove it"),
    ("//a:t", "quarantine[0]: each entry must be a mapping, not a string; write it like - {target: "
              "//integration:t, reason: ..., until: 2026-12-31}"),
])
def test_each_mistake_in_an_entry_is_one_line(tmp_path, entry, problem):
    text = f"quarantine:\n  - {entry.replace('LATER', LATER.isoformat())}\n"
    assert _problems(tmp_path, text) == [f"convoy.yaml:2: {problem}"]


def test_a_test_quarantined_twice_in_one_configuration_is_an_error(tmp_path):
    assert _problems(tmp_path, f"""\
        quarantine:
          - {{target: //a:t, reason: r, until: {LATER}, configurations: [rover]}}
          - {{target: //a:t, reason: r, until: {LATER}, configurations: [drone]}}
          - {{target: "//a:t", reason: r, until: {LATER}}}
        """) == ["convoy.yaml:4: quarantine[2] (//a:t): quarantines the test again (quarantine[0] has it); "
                 "remove one of them"]


@pytest.mark.parametrize("stage, problem", [
    ("{name: b, command: build, flaky_test_attempts: 2}",
     "stages.b.flaky_test_attempts: applies to test stages only (a build has no tests to run again); remove it, "
     "or set it on a stage with command: test"),
    ("{name: b, command: build, retry_failed: 0}",
     "stages.b.retry_failed: applies to test stages only (a build has no tests to run again); remove it, or set "
     "it on a stage with command: test"),
    ("{name: t, command: test, flaky_test_attempts: 0}",
     "stages.t.flaky_test_attempts: must be at least 1, not 0; write it like flaky_test_attempts: 1"),
    ("{name: t, command: test, flaky_test_attempts: 11}",
     "stages.t.flaky_test_attempts: must be at most 10, not 11; write it like flaky_test_attempts: 1"),
    ("{name: t, command: test, retry_failed: -1}",
     "stages.t.retry_failed: must be at least 0, not -1; write it like retry_failed: 1"),
    ("{name: t, command: test, retry_failed: 6}",
     "stages.t.retry_failed: must be at most 5, not 6; write it like retry_failed: 1"),
    ("{name: t, command: test, retry_failed: yes}",
     "stages.t.retry_failed: must be a whole number, not a string; write it like retry_failed: 1"),
    ("{name: t, command: test, flaky_test_attempts: 2, flags: ['--flaky_test_attempts=3']}",
     "stages.t.flaky_test_attempts: the stage's flags set --flaky_test_attempts too; keep one: remove "
     "--flaky_test_attempts from flags"),
])
def test_each_mistake_in_a_stages_retries_is_one_line(tmp_path, stage, problem):
    assert _problems(tmp_path, f"stages:\n  - {stage}\n") == [f"convoy.yaml:2: {problem}"]


def test_several_mistakes_are_all_reported_sorted_by_line(tmp_path):
    problems = _problems(tmp_path, f"""\
        stages:
          - {{name: t, command: test, retry_failed: -1}}
        quarantine:
          - {{target: //a:t, reason: r, until: {YESTERDAY}}}
          - {{target: //b, until: {LATER}}}
        """)
    assert [p.split(":")[1] for p in problems] == ["2", "4", "5"]
    assert all("\n" not in p for p in problems)


@pytest.mark.parametrize("text, label", [
    ("//integration:plan_to_motion_test", "//integration:plan_to_motion_test"),
    ("//integration", "//integration:integration"),
    ("//a/b", "//a/b:b"),
    ("@//a:t", "//a:t"),
    ("@other//a:t", "@other//a:t"),
    ("//:t", "//:t"),
    ("//a:sub/t", "//a:sub/t"),
    ("//...", None), ("//a:*", None), ("//a:all-targets", None), ("//", None), ("a:t", None), ("//a b:t", None),
    ("//a:t extra", None),
])
def test_labels_are_bazels_names_of_one_test(text, label):
    assert label_of(text) == label
