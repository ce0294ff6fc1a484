"""convoy.manifest: a text is parsed and validated once per process (a cache
keyed by its sha256), and `convoy submit` reads only the parts it needs
(read_component); both give what the full load gives, messages included."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from convoy import manifest as manifest_module
from convoy.errors import ConvoyError
from convoy.manifest import (
    CACHE_SIZE,
    cache_info,
    clear_cache,
    component_view,
    load_manifest,
    parse_manifest,
    read_component,
)

REPO = Path(__file__).resolve().parents[2]
SHOWN = "manifests/manifest.yaml"

from tests.support.manifests import GOOD  # noqa: E402

# Written every way: flow and block, quotes, comments, an anchor and its aliases, pins in flow and block.
VARIED = """\
# by hand
schema_version: 1
default_configuration: rover   # the big one
release: {tag_format: "v{year}.{month}.{n}"}
components:
  messages:
    source: git                # from the git server
    remote: &server 'https://git.example.com/robot/messages.git'
    version: 'v1.4.0'          # single-quoted
    commit: 1a2b3c4d1a2b3c4d1a2b3c4d1a2b3c4d1a2b3c4d

  planner:   # route planning
    source: archive
    url: "https://pkg.example.com/planner-{version}.tar.gz"
    strip_prefix: planner-{version}
    sha256: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
    version: "v2.1.0"          # double-quoted
  controller: {source: git, remote: *server, version: v1.2.0}
  firmware:
      source: local
      path: components/firmware/{version}
      version: v3.0.1   # odd indentation
  'quoted': {source: git, remote: "https://git.example.com/robot/q.git", version: "v1"}
configurations:
  rover:
    components: [messages, planner, controller, firmware, quoted]   # everything
  drone: {components: [messages, controller, firmware], pins: {firmware: v2.9.4}}
  bench:
    components:
      - messages
      - "firmware"
    pins:
      firmware: 'v2.9.0'
"""


@pytest.fixture(autouse=True)
def empty_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts that were parsed in full (a spy on the real parse, which still runs)."""
    seen: list[str] = []
    real = manifest_module._parse

    def spy(text: str, shown: str, digest: str):
        seen.append(text)
        return real(text, shown, digest)

    monkeypatch.setattr(manifest_module, "_parse", spy)
    return seen


def benchmark_like(n: int) -> str:
    """A manifest as benchmarks/driver_overhead.py writes one: n git components, two configurations."""
    lines = ["schema_version: 1", "default_configuration: alpha", "components:"]
    for i in range(n):
        lines += [f"  comp{i:04d}:   # component {i}", "    source: git",
                  "    remote: https://git.example.com/robot/shared.git", "    version: v1.0.0"]
    lines += ["configurations:", "  alpha:", "    components:"] + [f"      - comp{i:04d}" for i in range(n)]
    lines += ["  beta:", "    components:"] + [f"      - comp{i:04d}" for i in range(n) if i % 7 != 6]
    lines += ["    pins:"] + [f"      comp{i:04d}: v0.9.0" for i in range(n) if i % 10 == 5 and i % 7 != 6]
    return "\n".join(lines) + "\n"


# -- the cache ---------------------------------------------------------------------------


def test_a_text_is_parsed_once_and_gives_the_same_manifest(parses):
    first = parse_manifest(GOOD)
    second = parse_manifest(GOOD)
    assert second == first
    assert parses == [GOOD]
    assert cache_info()["hits"] == 1 and cache_info()["misses"] == 1


def test_the_cached_manifest_is_the_one_a_fresh_parse_makes(parses):
    cached = parse_manifest(GOOD)
    clear_cache()
    assert parse_manifest(GOOD) == cached
    assert len(parses) == 2


def test_a_caller_changing_its_manifest_changes_nothing_for_the_next(parses):
    first = parse_manifest(GOOD)
    first.components.clear()
    first.configurations["rover"] = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.default_configuration = "drone"
    second = parse_manifest(GOOD)
    assert sorted(second.components) == ["controller", "messages", "planner"]
    assert second.configurations["rover"].components == ("messages", "planner", "controller")
    assert second.default_configuration == "rover"
    assert second.components is not first.components
    assert len(parses) == 1


def test_the_same_text_under_another_name_is_not_parsed_again(parses):
    parse_manifest(GOOD, "a/manifest.yaml")
    other = parse_manifest(GOOD, "b/manifest.yaml")
    assert other.path == "b/manifest.yaml"
    assert other == dataclasses.replace(parse_manifest(GOOD, "a/manifest.yaml"), path="b/manifest.yaml")
    assert len(parses) == 1
    with pytest.raises(ConvoyError) as info:
        other.resolved("boat")
    assert "add it to b/manifest.yaml" in str(info.value)


def test_a_changed_text_is_parsed_again(parses):
    before = parse_manifest(GOOD)
    changed = GOOD.replace("version: v1.4.0", "version: v1.5.0")
    after = parse_manifest(changed)
    assert (before.components["messages"].version, after.components["messages"].version) == ("v1.4.0", "v1.5.0")
    assert after.sha256 != before.sha256
    assert parses == [GOOD, changed]


def test_a_file_changed_on_disk_is_read_again(tmp_path, parses):
    path = tmp_path / "manifest.yaml"
    path.write_text(GOOD)
    assert load_manifest(path).components["messages"].version == "v1.4.0"
    path.write_text(GOOD.replace("version: v1.4.0", "version: v1.5.0"))
    assert load_manifest(path).components["messages"].version == "v1.5.0"
    assert len(parses) == 2


BAD = GOOD.replace("    version: v1.4.0\n", "    version: v1..4\n    urll: x\n")
BAD_LINES = [
    "manifests/manifest.yaml:9: components.messages.version: 'v1..4' is not a valid version (letters, digits and "
    ". _ + / -, starting with a letter or digit; no '..'; not ending in '.lock' or '/'); fix it, e.g. v1.2.3",
    "manifests/manifest.yaml:10: components.messages: unknown key 'urll' (expected: source, version, remote, "
    "commit); fix or remove it",
]


def test_a_bad_manifest_raises_its_lines_and_again_from_the_cache(parses):
    for _ in range(3):
        with pytest.raises(ConvoyError) as info:
            parse_manifest(BAD)
        assert list(info.value.problems) == BAD_LINES
    assert parses == [BAD]


def test_a_bad_manifest_under_another_name_names_that_one(parses):
    with pytest.raises(ConvoyError):
        parse_manifest(BAD)
    with pytest.raises(ConvoyError) as info:
        parse_manifest(BAD, "other.yaml")
    assert list(info.value.problems) == [line.replace(SHOWN, "other.yaml") for line in BAD_LINES]
    assert len(parses) == 2


def test_syntax_errors_and_bounds_are_cached_with_their_message(parses):
    for text, expected in [
        ("components: [\n", "manifests/manifest.yaml:2: invalid YAML: "),
        ("a: &a [x, x]\nb: [*a, *a, *a]\n" + "".join(f"c{i}: [*a]\n" for i in range(6000)),
         "manifests/manifest.yaml:"),
        ("schema_version: 1\n<<<<<<< HEAD\n", "manifests/manifest.yaml:2: unresolved merge conflict marker"),
    ]:
        messages = []
        for _ in range(2):
            with pytest.raises(ConvoyError) as info:
                parse_manifest(text)
            messages.append(str(info.value))
        assert messages[0] == messages[1] and messages[0].startswith(expected)
    assert len(parses) == 3  # each once


def test_the_cache_keeps_the_last_ones(parses):
    texts = [GOOD.replace("v1.4.0", f"v1.4.{i}") for i in range(CACHE_SIZE + 1)]
    for text in texts:
        parse_manifest(text)
    parse_manifest(texts[-1])
    parse_manifest(texts[1])
    assert len(parses) == CACHE_SIZE + 1  # all still there but the first
    parse_manifest(texts[0])
    assert len(parses) == CACHE_SIZE + 2
    assert cache_info()["entries"] == CACHE_SIZE


def test_the_cache_holds_a_bounded_amount_of_text(monkeypatch, parses):
    monkeypatch.setattr(manifest_module, "CACHE_BYTES", 2 * len(GOOD) + 10)
    texts = [GOOD.replace("v1.4.0", f"v1.4.{i}") for i in range(3)]
    for text in texts:
        parse_manifest(text)
    assert cache_info()["entries"] == 2 and cache_info()["bytes"] <= 2 * len(GOOD) + 10
    parse_manifest(texts[0])
    assert len(parses) == 4


def test_threads_share_the_cache():
    text = benchmark_like(200)
    results, errors = [], []

    def parse():
        try:
            results.append(parse_manifest(text))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=parse) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 6
    assert all(result == results[0] for result in results)
    assert len({id(result.components) for result in results}) == 6


# -- read_component: what `convoy submit` reads -------------------------------------------


@pytest.mark.parametrize("text", [
    GOOD, (REPO / "manifests" / "manifest.yaml").read_text(), benchmark_like(300), VARIED,
    VARIED.replace("\n", "\r\n"),
], ids=["good", "real", "benchmark-like", "varied", "varied-crlf"])
def test_the_view_of_every_component_is_the_full_manifests(text):
    full = parse_manifest(text, "x/manifest.yaml")
    for component in [*full.components, "nosuch"]:
        clear_cache()
        assert component_view(text, component, "x/manifest.yaml") == full.view(component)


def test_the_view_reads_only_the_parts_it_needs(parses):
    text = benchmark_like(2000)
    view = component_view(text, "comp1234", SHOWN)
    assert parses == []  # no full parse: no round-trip document, no checks of the other 1999 components
    assert view.component.remote == "https://git.example.com/robot/shared.git"
    assert view.component.line == 3 + 4 * 1234 + 1
    assert len(view.component_names) == 2000 and "comp0006" not in view.members["beta"]


def test_the_view_uses_a_cached_manifest(parses):
    parse_manifest(GOOD, "a.yaml")
    view = component_view(GOOD, "planner", "b.yaml")
    assert view == dataclasses.replace(parse_manifest(GOOD, "a.yaml").view("planner"), path="b.yaml")
    assert len(parses) == 1


@pytest.mark.parametrize("old, new", [
    ("    remote: https://git.example.com/robot/messages.git", "    remote: --upload-pack=touch /tmp/x"),
    ("    remote: https://git.example.com/robot/messages.git", "    remote: 12"),
    ("    version: v1.4.0", "    version: 1.40"),
    ("    version: v1.4.0", "    version: v1..4"),
    ("    version: v1.4.0", "    version:"),
    ("    source: git\n    remote", "    source: svn\n    remote"),
    ("  messages:\n", "  Mess ages!:\n"),
    ("    components: [messages, planner, controller]", "    components: [messages, nosuch, controller]"),
    ("    components: [messages, planner, controller]", "    components: [messages, messages, controller]"),
    ("      controller: v1.1.0", "      controller: v1..1"),
    ("      controller: v1.1.0", "      planner: v1.1.0"),
    ("schema_version: 1", "schema_version: 2"),
    ("  messages:\n", "  messages:\n    commit: abc\n"),
    ("  messages:\n", "  messages:\n    source: git\n"),
    ("configurations:\n", "configurations:\n  rover: {components: [planner]}\n"),
])
def test_a_mistake_in_the_parts_read_is_reported_as_the_full_load_does(old, new):
    text = GOOD.replace(old, new)
    assert text != GOOD
    with pytest.raises(ConvoyError) as full:
        parse_manifest(text)
    clear_cache()
    with pytest.raises(ConvoyError) as view:
        component_view(text, "messages", SHOWN)
    assert view.value.problems == full.value.problems


@pytest.mark.parametrize("text", [
    GOOD + "<<<<<<< HEAD\n", "components: [\n", GOOD + "---\nother: 1\n", b"\xef\xbb\xbf".decode() + GOOD + "x: [\n",
    "a: &a [x, x]\nb: [*a, *a, *a]\n" + "".join(f"c{i}: [*a]\n" for i in range(6000)),
    "components: " + "[" * 100 + "]" * 100 + "\n",
])
def test_a_file_that_does_not_parse_is_reported_as_the_full_load_does(text):
    with pytest.raises(ConvoyError) as full:
        parse_manifest(text)
    clear_cache()
    with pytest.raises(ConvoyError) as view:
        component_view(text, "messages", SHOWN)
    assert view.value.problems == full.value.problems


@pytest.mark.parametrize("old, new", [
    ("    remote: https://git.example.com/robot/messages.git", "    remote: &r https://git.example.com/robot/m.git"),
    ("    components: [messages, planner, controller]", "    components: &all [messages, planner, controller]"),
    ("    version: v1.4.0", "    version: !!str v1.4.0"),
    ("    version: v1.4.0", "    version: |-\n      v1.4.0"),
    ("  messages:\n", "  <<: {}\n  messages:\n"),
    ("schema_version: 1", "schema_version: 0x1"),
    ("schema_version: 1", "%YAML 1.1\n---\nschema_version: 1"),
])
def test_what_the_view_does_not_take_as_plain_strings_goes_to_the_full_load(old, new, parses):
    text = GOOD.replace(old, new)
    assert text != GOOD
    try:
        expected = parse_manifest(text).view("messages")
    except (ConvoyError, KeyError) as e:  # KeyError: `<<` (a merge) is a crash of the full load too, for now
        expected = e
    clear_cache()
    parses.clear()
    try:
        got = component_view(text, "messages", SHOWN)
    except (ConvoyError, KeyError) as e:
        got = e
    assert len(parses) == 1
    assert repr(got) == repr(expected)


def test_a_mistake_elsewhere_is_left_to_what_reads_the_whole_file():
    text = GOOD.replace("    path: components/controller/{version}", "    path: /etc")
    with pytest.raises(ConvoyError, match="components.controller.path: '/etc' is absolute"):
        parse_manifest(text)
    clear_cache()
    view = component_view(text, "messages", SHOWN)
    assert view.component == parse_manifest(GOOD).components["messages"]
    with pytest.raises(ConvoyError, match="components.controller.path"):
        component_view(text, "controller", SHOWN)


def test_read_component_reads_the_file_as_load_manifest(tmp_path):
    path = tmp_path / "manifest.yaml"
    with pytest.raises(ConvoyError) as missing:
        read_component(path, "messages")
    with pytest.raises(ConvoyError) as missing_full:
        load_manifest(path)
    assert str(missing.value) == str(missing_full.value)
    path.write_bytes(b"schema_version: 1\n# \xff\n")
    with pytest.raises(ConvoyError, match=r"manifest.yaml:2: not UTF-8 text"):
        read_component(path, "messages")
    path.write_text(GOOD)
    assert read_component(path, "planner") == load_manifest(path).view("planner")
    assert read_component(path, "nosuch").component is None


# -- the plain fast path: the two large sections matched by a strict grammar ----------------

PLAIN = """\
# a plainly written manifest
schema_version: 1
default_configuration: rover

components:
  messages:        # the messages
    source: git
    remote: https://git.example.com/robot/messages.git
    version: v1.4.0

  planner:
    source: archive
    version: v2.1.0
    url: "https://example.com/planner-{version}.tar.gz"
    strip_prefix: 'planner-{version}'
# a comment at column 0 between components
  firmware:
    source: local
    version: v3.0.0
    path: third_party/firmware/{version}

configurations:
  rover:                    # the rover
    components:
      - messages
      # a comment among the items
      - planner
      - firmware
    pins:
      planner: v2.0.0
  drone:
    components: [messages, firmware]
release:
  tag_format: "v{year}.{month}.{n}"
"""


def test_a_plain_manifest_takes_the_fast_path_and_gives_the_same_view():
    from convoy.yamlcheck import Irregular

    full = parse_manifest(PLAIN, SHOWN)
    for component in [*full.components, "nosuch"]:
        assert manifest_module._fast_view(PLAIN, SHOWN, component) == full.view(component)
        assert manifest_module._fast_view(PLAIN, SHOWN, component) == manifest_module._read_view(PLAIN, SHOWN,
                                                                                                component)
    big = benchmark_like(2000)
    for name in ("comp1234", "comp0000", "comp1999", "comp123"):  # the first, the last, a prefix of others
        assert manifest_module._fast_view(big, SHOWN, name) == manifest_module._read_view(big, SHOWN, name)
    # Not plain (a flow mapping, a tab, an anchor, a number, a quoted pin): the event reader instead.
    for old, new in (("  firmware:\n    source: local\n    version: v3.0.0\n    path: third_party/firmware/{version}\n",
                      "  firmware: {source: local, version: v3.0.0, path: third_party/firmware/{version}}\n"),
                     ("    source: git\n", "    source:\tgit\n"), ("    version: v1.4.0\n", "    version: &v v1.4.0\n"),
                     ("      planner: v2.0.0\n", "      planner: 2.0\n"),
                     ("      planner: v2.0.0\n", "      planner: 'v2.0.0'\n"),
                     ("  drone:\n", "  drone:\n    pins: {}\n")):
        text = PLAIN.replace(old, new)
        assert text != PLAIN
        with pytest.raises(Irregular):
            manifest_module._fast_view(text, SHOWN, "messages")


@pytest.mark.parametrize("old, new", [
    ("      - planner\n", "      - planner\n      - planner\n"),  # listed twice
    ("      - planner\n", "      - plannr\n"),  # unknown
    ("    source: git\n", "    source: gti\n"),  # the component's own mistake
    ("  planner:\n    source: archive\n", "  messages:\n    source: archive\n"),  # a duplicate name
    ("schema_version: 1\n", "schema_version: 2\n"),
    ("release:\n", "release:\n  oops\n"),  # a syntax error elsewhere
    ("release:\n", "<<<<<<< HEAD\nrelease:\n"),  # a conflict marker (found by substring first)
    ("schema_version: 1\n", "======= \nschema_version: 1\n"),
    ("  drone:\n", "  drone:\n>>>>>>>\n"),
])
def test_a_mistake_in_a_plain_manifest_is_reported_as_the_full_load_does(old, new):
    text = PLAIN.replace(old, new)
    assert text != PLAIN
    with pytest.raises(ConvoyError) as full:
        parse_manifest(text, SHOWN)
    clear_cache()
    with pytest.raises(ConvoyError) as viewed:
        component_view(text, "messages", SHOWN)
    assert str(viewed.value) == str(full.value)
