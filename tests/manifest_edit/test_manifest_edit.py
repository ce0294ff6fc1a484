"""convoy.manifest_edit: a bump changes the lines it must and keeps every
other byte of the person's manifest (comments, quoting, order, blank lines,
flow collections)."""

from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest

from convoy.errors import ConvoyError
from convoy.manifest import load_manifest
from convoy.manifest import parse_manifest
from convoy.manifest_edit import Bump, apply_bump

REPO = Path(__file__).resolve().parents[2]
from tests.support.manifests import NEW, ODD, OLD  # noqa: E402


def _replaced(old: str, new: str, text: str = ODD) -> str:
    """`text` with the one occurrence of `old` replaced by `new`."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _error(text: str, bump: Bump) -> list[str]:
    with pytest.raises(ConvoyError) as info:
        apply_bump(text, bump)
    return list(info.value.problems)


def test_the_odd_manifest_is_valid():
    manifest = parse_manifest(ODD)
    assert sorted(manifest.components) == ["controller", "firmware", "messages", "planner"]


# -- components.<c>.version ---------------------------------------------------


def test_version_and_commit_replaced_keeping_quotes_and_comments():
    result = apply_bump(ODD, Bump("messages", "v1.5.0", commit=NEW))
    assert result == _replaced(
        f"    version: 'v1.4.0'          # single-quoted\n    commit: {OLD}\n",
        f"    version: 'v1.5.0'          # single-quoted\n    commit: {NEW}\n",
    )


def test_a_bump_without_commit_removes_the_old_commit_line():
    result = apply_bump(ODD, Bump("messages", "v1.5.0"))
    assert result == _replaced(
        f"    version: 'v1.4.0'          # single-quoted\n    commit: {OLD}\n\n",
        "    version: 'v1.5.0'          # single-quoted\n\n",
    )


def test_a_commit_is_added_after_the_version_with_the_siblings_indentation():
    result = apply_bump(ODD, Bump("firmware", "v3.1.0", commit=NEW))
    assert result == _replaced(
        "      version: v3.0.1   # odd indentation\n",
        f"      version: v3.1.0   # odd indentation\n      commit: {NEW}\n",
    )


def test_double_quotes_are_kept_and_the_old_archive_digest_goes():
    result = apply_bump(ODD, Bump("planner", "v2.2.0"))
    assert result == _replaced(
        f"    sha256: {'a' * 64}\n    version: \"v2.1.0\"          # double-quoted\n",
        "    version: \"v2.2.0\"          # double-quoted\n",
    )


def test_a_flow_mapping_component():
    result = apply_bump(ODD, Bump("controller", "v1.3.0", commit=NEW))
    assert result == _replaced(
        "  controller: {source: git, remote: https://git.example.com/robot/controller.git, version: v1.2.0}\n",
        f"  controller: {{source: git, remote: https://git.example.com/robot/controller.git, version: v1.3.0, "
        f"commit: {NEW}}}\n",
    )


@pytest.mark.parametrize("before, after", [
    (f"{{commit: {OLD}, source: git, remote: /r, version: v1}}", "{source: git, remote: /r, version: v2}"),
    (f"{{source: git, commit: {OLD}, remote: /r, version: v1}}", "{source: git, remote: /r, version: v2}"),
    (f"{{source: git, remote: /r, version: v1, commit: {OLD}}}", "{source: git, remote: /r, version: v2}"),
    (f"{{source: git,\n    remote: /r, version: v1,\n    commit: {OLD}}}", "{source: git,\n    remote: /r, version: v2}"),
])
def test_a_commit_is_removed_from_a_flow_mapping(before, after):
    text = f"default_configuration: c\ncomponents:\n  x: {before}\nconfigurations:\n  c: {{components: [x]}}\n"
    result = apply_bump(text, Bump("x", "v2"))
    assert result == text.replace(before, after)


def test_a_value_that_would_read_as_a_number_is_quoted():
    result = apply_bump(ODD, Bump("firmware", "3.10"))
    assert result == _replaced("      version: v3.0.1   # odd", '      version: "3.10"   # odd')
    assert load_manifest_text_version(result, "firmware") == "3.10"


def test_an_all_digit_commit_is_quoted():
    digits = "1234567890" * 4
    result = apply_bump(ODD, Bump("firmware", "v3.1.0", commit=digits))
    assert result == _replaced(
        "      version: v3.0.1   # odd indentation\n",
        f"      version: v3.1.0   # odd indentation\n      commit: \"{digits}\"\n",
    )


def test_a_longer_value_keeps_at_least_one_space_before_the_comment():
    result = apply_bump(ODD, Bump("messages", "v1.4.0-rc.1+build.5", commit=OLD))
    assert result == _replaced("    version: 'v1.4.0'          # single", "    version: 'v1.4.0-rc.1+build.5' # single")


# -- archive ----------------------------------------------------------------------


def test_a_git_component_becomes_an_archive():
    result = apply_bump(ODD, Bump("messages", "v1.5.0", commit=NEW,
                                  archive_url="https://pkg.example.com/messages-1.5.0.tar.gz",
                                  strip_prefix="messages-1.5.0"))
    assert result == _replaced(
        "    source: git                # from the git server\n"
        "    remote: 'https://git.example.com/robot/messages.git'\n"
        "    version: 'v1.4.0'          # single-quoted\n"
        f"    commit: {OLD}\n",
        "    source: archive            # from the git server\n"
        "    version: 'v1.5.0'          # single-quoted\n"
        "    url: https://pkg.example.com/messages-1.5.0.tar.gz\n"
        "    strip_prefix: messages-1.5.0\n",
    )
    messages = parse_manifest(result).components["messages"]
    assert (messages.source, messages.commit, messages.remote) == ("archive", None, None)


def test_an_archive_gets_a_new_url_and_loses_its_old_prefix_and_digest():
    result = apply_bump(ODD, Bump("planner", "v2.2.0", archive_url="https://pkg.example.com/planner-2.2.0.tgz"))
    assert result == _replaced(
        '    url: "https://pkg.example.com/planner-{version}.tar.gz"\n'
        "    strip_prefix: planner-{version}\n"
        f"    sha256: {'a' * 64}\n"
        '    version: "v2.1.0"          # double-quoted\n',
        '    url: "https://pkg.example.com/planner-2.2.0.tgz"\n'
        '    version: "v2.2.0"          # double-quoted\n',
    )


def test_a_flow_component_becomes_an_archive():
    result = apply_bump(ODD, Bump("controller", "v1.3.0", archive_url="https://pkg.example.com/c.tgz",
                                  strip_prefix="c"))
    assert result == _replaced(
        "{source: git, remote: https://git.example.com/robot/controller.git, version: v1.2.0}",
        "{source: archive, version: v1.3.0, url: https://pkg.example.com/c.tgz, strip_prefix: c}",
    )


# -- configurations.<x>.pins --------------------------------------------------------


def test_an_existing_pin_in_a_flow_mapping():
    result = apply_bump(ODD, Bump("firmware", "v2.9.5", configuration="drone"))
    assert result == _replaced("pins: {firmware: v2.9.4}", "pins: {firmware: v2.9.5}")


def test_a_new_pin_in_existing_pins():
    result = apply_bump(ODD, Bump("controller", "v1.1.0", configuration="drone"))
    assert result == _replaced("pins: {firmware: v2.9.4}", "pins: {firmware: v2.9.4, controller: v1.1.0}")


def test_pins_are_created_after_a_flow_list():
    result = apply_bump(ODD, Bump("planner", "v2.2.0", configuration="rover"))
    assert result == _replaced(
        "    components: [messages, planner, controller, firmware]   # everything\n",
        "    components: [messages, planner, controller, firmware]   # everything\n"
        "    pins:\n"
        "      planner: v2.2.0\n",
    )


def test_pins_are_created_after_a_block_list_and_before_the_comment_below_it():
    result = apply_bump(ODD, Bump("firmware", "v2.9.5", configuration="bench"))
    assert result == _replaced(
        "      - firmware\n    # no pins yet\n",
        "      - firmware\n    pins:\n      firmware: v2.9.5\n    # no pins yet\n",
    )


def test_pins_are_added_to_a_flow_configuration():
    text = "default_configuration: c\ncomponents:\n  x: {source: local, path: p, version: v1}\n" \
           "configurations:\n  c: {components: [x]}   # flow\n"
    result = apply_bump(text, Bump("x", "v0.9", configuration="c"))
    assert result == text.replace("{components: [x]}", "{components: [x], pins: {x: v0.9}}")


def test_a_new_pin_in_block_pins_and_a_file_without_final_newline():
    text = ("default_configuration: c\ncomponents:\n  x: {source: local, path: p, version: v1}\n"
            "  y: {source: local, path: q, version: v1}\nconfigurations:\n  c:\n    components: [x, y]\n"
            "    pins:\n        x: 'v0.9'")
    result = apply_bump(text, Bump("y", "v0.8", configuration="c"))
    assert result == text + "\n        y: 'v0.8'\n"


def test_crlf_line_endings_are_kept():
    text = ODD.replace("\n", "\r\n")
    result = apply_bump(text, Bump("planner", "v2.2.0", configuration="rover"))
    assert result == _replaced(
        "    components: [messages, planner, controller, firmware]   # everything\r\n",
        "    components: [messages, planner, controller, firmware]   # everything\r\n"
        "    pins:\r\n"
        "      planner: v2.2.0\r\n",
        text,
    )


# -- the real manifest ---------------------------------------------------------------


def test_the_real_manifest_changes_by_exactly_one_line():
    text = (REPO / "manifests" / "manifest.yaml").read_text()
    result = apply_bump(text, Bump("planner", "v2.2.0"))

    diff = [line for line in difflib.unified_diff(text.splitlines(), result.splitlines(), lineterm="", n=0)
            if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]
    assert diff == ["-    version: v2.1.0", "+    version: v2.2.0"]


def test_the_real_manifest_pin_changes_by_exactly_one_line(tmp_path):
    text = (REPO / "manifests" / "manifest.yaml").read_text()
    result = apply_bump(text, Bump("firmware", "v2.9.5", configuration="drone"))

    (tmp_path / "a").write_text(text)
    (tmp_path / "b").write_text(result)
    diff = subprocess.run(["git", "diff", "--no-index", "--numstat", "a", "b"], cwd=tmp_path,
                          capture_output=True, text=True).stdout
    assert diff.split() == ["1", "1", "a", "=>", "b"] or diff.split()[:2] == ["1", "1"]
    assert "      firmware: v2.9.5   # drone hardware stays on the 2.x firmware\n" in result


# -- mistakes ------------------------------------------------------------------------


@pytest.mark.parametrize("bump, problem", [
    (Bump("nav", "v1"), "manifests/manifest.yaml: unknown component 'nav' (known: controller, firmware, messages, "
                        "planner); check the name, or declare it under components: in manifests/manifest.yaml first"),
    (Bump("planner", "v1", configuration="boat"),
     "manifests/manifest.yaml: unknown configuration 'boat' (known: bench, drone, rover); check the name or bump "
     "every configuration"),
    (Bump("planner", "v1", configuration="drone"),
     "manifests/manifest.yaml: configuration 'drone' does not include 'planner' (it has: messages, controller, "
     "firmware); bump another configuration, or add it to configurations.drone.components"),
    (Bump("planner", "v1..2"),
     "'v1..2' is not a valid version (letters, digits and . _ + / -, starting with a letter or digit; no '..'; "
     "not ending in '.lock' or '/'); give a version like v1.2.3"),
    (Bump("messages", "v1", commit="abc123"),
     "'abc123' is not a full commit id (40 lowercase hex digits); give the full id, e.g. from git rev-parse <tag>"),
    (Bump("firmware", "v2.9.5", commit=NEW, configuration="drone"),
     "a pin in configurations.drone.pins names a version only; drop the commit and archive URL, or bump the "
     "component for every configuration"),
    (Bump("planner", "v2", commit=NEW),
     "manifests/manifest.yaml: component 'planner' comes from source archive, and only git sources take a commit; "
     "drop the commit, or give an archive URL"),
    (Bump("planner", "v2", strip_prefix="p"),
     "strip_prefix goes with an archive URL; give the archive URL too, or drop strip_prefix"),
    (Bump("planner", "v2", archive_url="ftp://x/p.tgz"),
     "archive URL 'ftp://x/p.tgz' must start with http://, https:// or file://; fix it"),
])
def test_a_bump_that_does_not_fit(bump, problem):
    assert _error(ODD, bump) == [problem]


def test_a_bump_with_several_mistakes_reports_them_all():
    problems = _error(ODD, Bump("nav", "v1..2", commit="x"))
    assert [p.split(" ")[0] for p in problems] == ["manifests/manifest.yaml:", "'v1..2'", "'x'"]


def test_an_invalid_manifest_is_reported_as_the_loader_does():
    text = ODD.replace("version: v3.0.1", "version: [v3]")
    assert _error(text, Bump("planner", "v2.2.0")) == [
        "manifests/manifest.yaml:26: components.firmware.version: must be a string, not a list; write it like "
        "version: v1.2.3",
    ]


@pytest.mark.parametrize("value", ["|-\n        v3.0.1", ">-\n        v3.0.1", "&v v3.0.1"])
def test_a_value_written_in_a_form_that_cannot_be_kept_is_refused(value):
    text = ODD.replace("version: v3.0.1   # odd indentation", f"version: {value}")
    with pytest.raises(ConvoyError) as info:
        apply_bump(text, Bump("firmware", "v3.1.0"))
    assert str(info.value).startswith("manifests/manifest.yaml:26: 'version' ")
    assert str(info.value).endswith("which convoy cannot edit while keeping the file as written; write it as one "
                                    "plain line (version: value)")


def test_the_input_is_not_modified_on_error():
    text = str(ODD)
    with pytest.raises(ConvoyError):
        apply_bump(text, Bump("nav", "v1"))
    assert text == ODD


def load_manifest_text_version(text: str, component: str) -> str:
    return parse_manifest(text).components[component].version


def test_parse_manifest_matches_the_loader(tmp_path):
    path = tmp_path / "manifest.yaml"
    path.write_text(ODD)
    assert parse_manifest(ODD, str(path)) == load_manifest(path)


def test_an_aliased_value_is_refused_where_the_alias_is():
    text = ("default_configuration: c\ncomponents:\n  x: {source: local, path: p, version: &v v1}\n"
            "  y: {source: local, path: q, version: *v}\nconfigurations:\n  c: {components: [x, y]}\n")
    with pytest.raises(ConvoyError) as info:
        apply_bump(text, Bump("y", "v2"))
    assert str(info.value) == (
        "manifests/manifest.yaml:4: 'version' is a YAML anchor or alias, which convoy cannot edit while keeping the "
        "file as written; write it as one plain line (version: value)"
    )
