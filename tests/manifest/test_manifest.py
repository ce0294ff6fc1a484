"""convoy.manifest: the checked-in manifest loads; every mistake is reported
with its file, line, what is wrong and how to fix it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from convoy.errors import ConvoyError
from convoy.manifest import Component, load_manifest

REPO = Path(__file__).resolve().parents[2]
PATH = "manifests/manifest.yaml"

# Each case below edits this text; the line numbers it expects are these.
from tests.support.manifests import GOOD  # noqa: E402
assert GOOD.splitlines()[8] == "    version: v1.4.0"  # line 9
assert GOOD.splitlines()[24] == "      controller: v1.1.0"  # line 25

REMOTE_FIX = "write an absolute path or a URL (https://, ssh://, git://, file://)"
PATH_FIX = "write a path inside the integration repository, e.g. path: components/<name>/{version}"
VERSION_RULE = (
    "(letters, digits and . _ + / -, starting with a letter or digit; no '..'; not ending in '.lock' or '/')"
)


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """write(text) puts text at manifests/manifest.yaml under the current
    (temporary) directory and returns that relative path."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "manifests").mkdir()

    def write(text: str) -> str:
        (tmp_path / PATH).write_text(text)
        return PATH

    return write


def problems(path: str) -> list[str]:
    with pytest.raises(ConvoyError) as raised:
        load_manifest(path)
    return list(raised.value.problems)


def edited(old: str, new: str) -> str:
    assert GOOD.count(old) == 1, old
    return GOOD.replace(old, new)


def test_checked_in_manifest_loads_and_resolves():
    manifest = load_manifest(REPO / PATH)

    assert manifest.default_configuration == "rover"
    assert manifest.tag_format == "v{year}.{month}.{n}"
    assert set(manifest.components) == {"messages", "planner", "controller", "firmware"}
    drone = manifest.resolved("drone")
    assert list(drone) == ["messages", "controller", "firmware"]
    assert drone["firmware"].version == "v2.9.4"
    assert drone["firmware"].path == "examples/components/firmware/v2.9.4"
    assert manifest.resolved("rover")["firmware"].version == "v3.0.1"
    assert manifest.sha256 == hashlib.sha256((REPO / PATH).read_bytes()).hexdigest()


def test_resolved_applies_pins_and_substitutes_version(write):
    text = edited("    version: v2.1.0\n", "    version: v2.1.0\n    sha256: " + "AB" * 32 + "\n")
    text = text.replace("    components: [messages, controller]\n", "    components: [messages, planner, controller]\n")
    text += "      planner: v2.0.0\n"
    manifest = load_manifest(write(text))

    rover = manifest.resolved("rover")
    assert rover["planner"] == Component(
        name="planner", source="archive", version="v2.1.0", line=10,
        url="https://pkg.example.com/planner-v2.1.0.tar.gz", strip_prefix="planner-v2.1.0", sha256="ab" * 32,
        key_lines={"source": 11, "url": 12, "strip_prefix": 13, "version": 14, "sha256": 15},
    )
    drone = manifest.resolved("drone")
    # A pin to another version drops the sha256, which pins the manifest's version.
    assert (drone["planner"].version, drone["planner"].url, drone["planner"].sha256) == (
        "v2.0.0", "https://pkg.example.com/planner-v2.0.0.tar.gz", None
    )
    assert drone["planner"].line_of("version") == 27
    assert drone["controller"].path == "components/controller/v1.1.0"
    assert manifest.configurations["drone"].pins == {"controller": "v1.1.0", "planner": "v2.0.0"}


def test_resolved_unknown_configuration(write):
    manifest = load_manifest(write(GOOD))
    with pytest.raises(ConvoyError) as raised:
        manifest.resolved("boat")
    assert str(raised.value) == (
        "unknown configuration 'boat' (expected one of: drone, rover); "
        "pick one of those or add it to manifests/manifest.yaml"
    )


def test_missing_file(write):
    assert problems("manifests/nope.yaml") == [
        "manifests/nope.yaml not found; run convoy from the integration repository or pass --manifest"
    ]


def test_yaml_syntax_error(write):
    path = write(edited("[messages, planner, controller]", "[messages, planner, controller"))
    assert problems(path) == [
        "manifests/manifest.yaml:22: invalid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence started at line 21); fix the YAML syntax"
    ]


def test_duplicate_keys_are_all_reported(write):
    text = edited("    version: v1.4.0\n", "    version: v1.4.0\n    version: v1.4.1\n")
    text = text.replace("  drone:\n", "  rover:\n    components: [messages]\n  drone:\n")
    assert problems(write(text)) == [
        "manifests/manifest.yaml:10: components.messages: duplicate key 'version' (first at line 9); "
        "remove one of them",
        "manifests/manifest.yaml:23: configurations: duplicate key 'rover' (first at line 21); remove one of them",
    ]


@pytest.mark.parametrize("marker_line", [
    "<<<<<<< HEAD\n    version: v1.4.0\n=======\n    version: v1.5.0\n>>>>>>> bump-messages\n",
    "=======\n",
])
def test_merge_conflict_markers(write, marker_line):
    path = write(edited("    version: v1.4.0\n", marker_line))
    assert problems(path) == [
        "manifests/manifest.yaml:9: unresolved merge conflict marker; resolve the merge conflict "
        "(keep the right lines, delete the <<<<<<< ======= >>>>>>> markers)"
    ]


@pytest.mark.parametrize("old, new, expected", [
    pytest.param(
        "release:", "relase:",
        "3: unknown key 'relase' (expected: schema_version, default_configuration, release, components, "
        "configurations); fix or remove it",
        id="top-level"),
    pytest.param(
        "  tag_format", "  format",
        "4: release: unknown key 'format' (expected: tag_format); fix or remove it",
        id="release"),
    pytest.param(
        "    strip_prefix", "    urll",
        "13: components.planner: unknown key 'urll' (expected: source, version, url, strip_prefix, sha256); "
        "fix or remove it",
        id="component"),
    pytest.param(
        "    remote: https://git.example.com/robot/messages.git\n",
        "    remote: https://git.example.com/robot/messages.git\n    url: https://x.example.com/m.tgz\n",
        "9: components.messages: unknown key 'url' (expected: source, version, remote, commit); fix or remove it",
        id="key-of-another-source"),
    pytest.param(
        "    pins:", "    pinned:",
        "24: configurations.drone: unknown key 'pinned' (expected: components, pins); fix or remove it",
        id="configuration"),
])
def test_unknown_keys(write, old, new, expected):
    assert problems(write(edited(old, new))) == [f"{PATH}:{expected}"]


@pytest.mark.parametrize("old, new, expected", [
    pytest.param(
        "version: v1.4.0", "version: 1.4",
        '9: components.messages.version: must be a string, not a number; put it in quotes, e.g. version: "v1.2.3"',
        id="number-version"),
    pytest.param(
        "version: v1.4.0", "version: 2024-01-01",
        '9: components.messages.version: must be a string, not a date; put it in quotes, e.g. version: "v1.2.3"',
        id="date-version"),
    pytest.param(
        "version: v1.4.0", "version:",
        "9: components.messages.version: has no value; give it one, e.g. version: v1.2.3",
        id="empty-version"),
    pytest.param(
        "      controller: v1.1.0", "      controller: [v1.1.0]",
        "25: configurations.drone.pins.controller: must be a string, not a list; write it like controller: v1.2.3",
        id="list-pin"),
    pytest.param(
        "[messages, controller]", "messages",
        "23: configurations.drone.components: must be a list, not a string; write it like components: [a, b]",
        id="string-components"),
    pytest.param(
        "    pins:\n      controller: v1.1.0\n", "    pins: [controller]\n",
        "24: configurations.drone.pins: must be a mapping, not a list; write it as indented 'name: value' lines",
        id="list-pins"),
    pytest.param(
        "schema_version: 1", "schema_version: one",
        "1: schema_version: must be the number 1, not a string; write schema_version: 1",
        id="string-schema-version"),
])
def test_wrong_types(write, old, new, expected):
    assert problems(write(edited(old, new))) == [f"{PATH}:{expected}"]


def test_wrong_type_of_components_reports_no_follow_up_errors(write):
    path = write(edited("components:\n  messages:\n", "components:\n- messages:\n"))
    assert problems(path) == [
        f"{PATH}:5: components: must be a mapping, not a list; write it as indented 'name: value' lines"
    ]


@pytest.mark.parametrize("old, expected", [
    pytest.param(
        "default_configuration: rover\n",
        "1: missing required key 'default_configuration'; add it, e.g. default_configuration: <configuration name>",
        id="default_configuration"),
    pytest.param(
        "    source: git\n",
        "6: components.messages: missing required key 'source'; add it, e.g. source: git",
        id="source"),
    pytest.param(
        "    version: v1.4.0\n",
        "6: components.messages: missing required key 'version'; add it, e.g. version: v1.2.3",
        id="version"),
    pytest.param(
        "    remote: https://git.example.com/robot/messages.git\n",
        "6: components.messages: missing required key 'remote'; add it, e.g. "
        "remote: https://git.example.com/team/<name>.git",
        id="remote"),
    pytest.param(
        "    url: https://pkg.example.com/planner-{version}.tar.gz\n",
        "10: components.planner: missing required key 'url'; add it, e.g. "
        "url: https://example.com/<name>-{version}.tar.gz",
        id="url"),
    pytest.param(
        "    path: components/controller/{version}\n",
        "15: components.controller: missing required key 'path'; add it, e.g. path: components/<name>/{version}",
        id="path"),
    pytest.param(
        "    components: [messages, controller]\n",
        "22: configurations.drone: missing required key 'components'; add it, e.g. components: [<component>, ...]",
        id="configuration-components"),
])
def test_missing_required_keys(write, old, expected):
    assert problems(write(edited(old, ""))) == [f"{PATH}:{expected}"]


def test_missing_sections(write):
    path = write("schema_version: 1\ndefault_configuration: rover\n")
    assert problems(path) == [
        f"{PATH}:1: missing required key 'components'; add it, e.g. components: {{...}}",
        f"{PATH}:1: missing required key 'configurations'; add it, e.g. configurations: {{...}}",
    ]


def test_empty_file(write):
    assert problems(write("# nothing yet\n")) == [
        f"{PATH}:1: the manifest is empty; give it default_configuration, components and configurations"
    ]


@pytest.mark.parametrize("old, new, expected", [
    pytest.param(
        "source: git", "source: svn",
        "7: components.messages.source: unknown source 'svn' (expected: git, archive, local); fix it",
        id="unknown-source"),
    pytest.param(
        "version: v1.4.0", "version: v1..4",
        f"9: components.messages.version: 'v1..4' is not a valid version {VERSION_RULE}; fix it, e.g. v1.2.3",
        id="version-dots"),
    pytest.param(
        "version: v1.4.0", "version: v1.4.lock",
        f"9: components.messages.version: 'v1.4.lock' is not a valid version {VERSION_RULE}; fix it, e.g. v1.2.3",
        id="version-lock"),
    pytest.param(
        "      controller: v1.1.0", "      controller: -v1",
        f"25: configurations.drone.pins.controller: '-v1' is not a valid version {VERSION_RULE}; fix it, e.g. v1.2.3",
        id="pin-version"),
    pytest.param(
        "    version: v1.4.0\n", "    version: v1.4.0\n    commit: abc123\n",
        "10: components.messages.commit: 'abc123' is not a full commit id (40 lowercase hex digits); "
        "write the full id, e.g. from git rev-parse <tag>",
        id="short-commit"),
    pytest.param(
        "    version: v2.1.0\n", "    version: v2.1.0\n    sha256: xyz\n",
        "15: components.planner.sha256: 'xyz' is not a sha256 (64 hex digits); "
        "fix it, or remove it to trust the archive as downloaded",
        id="bad-sha256"),
    pytest.param(
        "url: https://pkg", "url: ftp://pkg",
        "12: components.planner.url: 'ftp://pkg.example.com/planner-{version}.tar.gz' must start with "
        "https://, http://, file://; fix it",
        id="url-scheme"),
    pytest.param(
        "url: https://pkg", "url: https:///pkg",
        "12: components.planner.url: 'https:///pkg.example.com/planner-{version}.tar.gz' has no host; fix it",
        id="url-without-host"),
    pytest.param(
        "remote: https://git.example.com/robot/messages.git", "remote: '--upload-pack=touch /tmp/marker'",
        "8: components.messages.remote: '--upload-pack=touch /tmp/marker' starts with '-' (git would read it as "
        f"an option); {REMOTE_FIX}",
        id="remote-option"),
    pytest.param(
        "remote: https://git.example.com/robot/messages.git", "remote: 'ext::sh -c touch% /tmp/marker'",
        "8: components.messages.remote: 'ext::sh -c touch% /tmp/marker' uses a git remote helper ('ext::'), which "
        f"can run commands; {REMOTE_FIX}",
        id="remote-ext"),
    pytest.param(
        "remote: https://git.example.com/robot/messages.git", "remote: fd::17",
        f"8: components.messages.remote: 'fd::17' uses a git remote helper ('fd::'), which can run commands; {REMOTE_FIX}",
        id="remote-fd"),
    pytest.param(
        "remote: https://git.example.com/robot/messages.git", "remote: ../codec.git",
        "8: components.messages.remote: '../codec.git' is neither a URL (https://, ssh://, git://, file://), "
        "scp-like user@host:path, nor an absolute path (a relative path would mean something else in every "
        f"checkout); {REMOTE_FIX}",
        id="remote-relative"),
    pytest.param(
        "remote: https://git.example.com/robot/messages.git", 'remote: "https://git.example.com/\\x1b[2Jm.git"',
        "8: components.messages.remote: 'https://git.example.com/\\x1b[2Jm.git' contains control characters "
        f"(\\x1b); {REMOTE_FIX}",
        id="remote-control-character"),
    pytest.param(
        "path: components/controller/{version}", "path: /etc",
        f"17: components.controller.path: '/etc' is absolute (it must be relative to the integration repository); "
        f"{PATH_FIX}",
        id="path-absolute"),
    pytest.param(
        "path: components/controller/{version}", "path: ../../..",
        f"17: components.controller.path: '../../..' leaves the integration repository ('..'); {PATH_FIX}",
        id="path-up"),
    pytest.param(
        "path: components/controller/{version}", "path: components/{version}/../../..",
        "17: components.controller.path: 'components/v1.2.0/../../..' leaves the integration repository ('..'); "
        f"{PATH_FIX}",
        id="path-up-after-version"),

    pytest.param(
        '"v{year}.{month}.{n}"', '"v{year}.{month}"',
        "4: release.tag_format: 'v{year}.{month}' has no {n} (the release number that keeps tags unique); "
        'fix it, e.g. tag_format: "v{year}.{month}.{n}"',
        id="tag-format-without-n"),
    pytest.param(
        '"v{year}.{month}.{n}"', '"v{year}.{week}.{n}"',
        "4: release.tag_format: 'v{year}.{week}.{n}' uses unknown fields {week} "
        '(only {year}, {month}, {day}, {n} exist); fix it, e.g. tag_format: "v{year}.{month}.{n}"',
        id="tag-format-unknown-field"),
    pytest.param(
        '"v{year}.{month}.{n}"', '"release {n}"',
        "4: release.tag_format: 'release {n}' gives 'release 3', which is not a valid git tag; "
        'fix it, e.g. tag_format: "v{year}.{month}.{n}"',
        id="tag-format-not-a-tag"),
    pytest.param(
        '"v{year}.{month}.{n}"', '"v{n:>20000000000}"',
        "4: release.tag_format: 'v{n:>20000000000}' gives {n} a width or precision of 20000000000 (at most 20); "
        'fix it, e.g. tag_format: "v{year}.{month}.{n}"',
        id="tag-format-huge-width"),
    pytest.param(
        '"v{year}.{month}.{n}"', '"v{n:.99}"',
        "4: release.tag_format: 'v{n:.99}' gives {n} a width or precision of 99 (at most 20); "
        'fix it, e.g. tag_format: "v{year}.{month}.{n}"',
        id="tag-format-huge-precision"),
    pytest.param(
        '"v{year}.{month}.{n}"', '"v{n:{year}}"',
        "4: release.tag_format: 'v{n:{year}}' has a field inside the format of {n} (nested fields are not "
        'supported); fix it, e.g. tag_format: "v{year}.{month}.{n}"',
        id="tag-format-nested"),
    pytest.param(
        '"v{year}.{month}.{n}"', '"v{n:q}"',
        "4: release.tag_format: 'v{n:q}' has an invalid format ':q' for {n}; "
        'fix it, e.g. tag_format: "v{year}.{month}.{n}"',
        id="tag-format-bad-spec"),
    pytest.param(
        '"v{year}.{month}.{n}"', '"v' + "{n}" * 40 + '"',
        "4: release.tag_format: 'v" + ("{n}" * 40)[:99] + "...' is longer than 100 characters; "
        'fix it, e.g. tag_format: "v{year}.{month}.{n}"',
        id="tag-format-long"),
    pytest.param(
        "schema_version: 1", "schema_version: 2",
        "1: schema_version: 2 is not supported (this convoy reads 1); upgrade convoy or fix it",
        id="schema-version"),
])
def test_bad_values(write, old, new, expected):
    assert problems(write(edited(old, new))) == [f"{PATH}:{expected}"]


def test_local_path_is_checked_with_each_pinned_version(write):
    text = edited("path: components/controller/{version}", "path: '{version}/../..'")
    text = text.replace("    version: v1.2.0\n", "    version: v1.2.0/x\n")
    assert problems(write(text)) == [
        f"{PATH}:25: components.controller.path: 'v1.1.0/../..' (version v1.1.0 of drone) leaves the integration "
        f"repository ('..'); {PATH_FIX}",
    ]



UNUSED_COMPONENT = "    source: local\n    path: unused\n    version: v1\n"


@pytest.mark.parametrize("old, new, expected", [
    pytest.param(
        "components:\n", "components:\n  my_messages!:\n" + UNUSED_COMPONENT,
        "6: components: 'my_messages!' is not a valid component name (a Bazel repository name: a letter, then "
        "letters, digits, _ . -); rename it",
        id="component"),
    pytest.param(
        "components:\n", "components:\n  platforms:\n" + UNUSED_COMPONENT,
        "6: components: 'platforms' is reserved (a repository name Bazel or convoy uses); rename it",
        id="reserved-component"),
    pytest.param(
        "  drone:\n", "  2d-drone:\n",
        "22: configurations: '2d-drone' is not a valid configuration name (a letter, then letters, digits, _ -); "
        "rename it",
        id="configuration"),
])
def test_bad_names(write, old, new, expected):
    assert problems(write(edited(old, new))) == [f"{PATH}:{expected}"]


@pytest.mark.parametrize("old, new, expected", [
    pytest.param(
        "[messages, controller]", "[messages, controler]",
        ["23: configurations.drone.components: unknown component 'controler' (known: controller, messages, "
         "planner); fix the name or declare it under components:",
         "25: configurations.drone.pins: 'controller' is not in this configuration's components; "
         "add it to configurations.drone.components or remove the pin"],
        id="unknown-component"),
    pytest.param(
        "[messages, controller]", "[messages, controller, messages]",
        ["23: configurations.drone.components: 'messages' is listed twice; remove one"],
        id="listed-twice"),
    pytest.param(
        "    components: [messages, controller]\n    pins:\n      controller: v1.1.0\n",
        "    components: []\n",
        ["23: configurations.drone.components: must list at least one component; "
         "add the components of this configuration"],
        id="no-components"),
    pytest.param(
        "      controller: v1.1.0", "      planner: v2.0.0",
        ["25: configurations.drone.pins: 'planner' is not in this configuration's components; "
         "add it to configurations.drone.components or remove the pin"],
        id="pin-outside-configuration"),
    pytest.param(
        "      controller: v1.1.0", "      nope: v1.1.0",
        ["25: configurations.drone.pins: unknown component 'nope' (known: controller, messages, planner); "
         "fix the name or remove the pin"],
        id="pin-unknown-component"),
    pytest.param(
        "default_configuration: rover", "default_configuration: rovr",
        ["2: default_configuration: 'rovr' is not a configuration (expected one of: drone, rover); "
         "fix it or add that configuration"],
        id="default-configuration"),
])
def test_bad_references(write, old, new, expected):
    assert problems(write(edited(old, new))) == [f"{PATH}:{line}" for line in expected]


def test_no_configurations(write):
    text = GOOD[: GOOD.index("configurations:")] + "configurations: {}\n"
    assert problems(write(text)) == [
        f"{PATH}:19: configurations: must name at least one configuration; "
        "add one, e.g. default: {components: [<component>, ...]}",
    ]


def test_every_mistake_is_reported_at_once(write):
    text = edited("    strip_prefix", "    urll")
    text = text.replace("version: v1.4.0", "version: v1..4")
    text = text.replace("[messages, controller]", "[messages, controler]")
    text = text.replace("      controller: v1.1.0\n", "")
    text = text.replace("    pins:\n", "")
    assert problems(write(text)) == [
        f"{PATH}:9: components.messages.version: 'v1..4' is not a valid version {VERSION_RULE}; fix it, e.g. v1.2.3",
        f"{PATH}:13: components.planner: unknown key 'urll' (expected: source, version, url, strip_prefix, sha256); "
        "fix or remove it",
        f"{PATH}:23: configurations.drone.components: unknown component 'controler' (known: controller, messages, "
        "planner); fix the name or declare it under components:",
    ]


MERGED = """\
schema_version: 1
default_configuration: rover
components:
  messages: &base
    source: local
    path: x/{version}
    version: v1.4.0
  planner:
    <<: *base
    path: p/{version}
configurations:
  rover:
    components: [messages, planner]
"""


def test_a_merge_key_in_a_component_is_read_not_a_crash(tmp_path):
    (tmp_path / "manifest.yaml").write_text(MERGED)
    planner = load_manifest(tmp_path / "manifest.yaml").components["planner"]
    assert (planner.source, planner.path, planner.version) == ("local", "p/{version}", "v1.4.0")
    assert planner.key_lines["version"] == 9  # merged in: the line of the `<<`


def test_a_mistake_in_a_merged_key_is_one_located_line(tmp_path):
    (tmp_path / "manifest.yaml").write_text(MERGED.replace("    version: v1.4.0", "    version: 1.4"))
    with pytest.raises(ConvoyError) as e:
        load_manifest(tmp_path / "manifest.yaml")
    shown = str(tmp_path / "manifest.yaml")
    lines = str(e.value).splitlines()
    assert lines and all(line.startswith(f"{shown}:") for line in lines), lines
    assert any(line.startswith(f"{shown}:9: components.planner.version:") for line in lines), lines
