"""convoy.manifest_edit: the bump finds its positions with ruamel's C composer
and makes byte for byte the manifest it made with the pure composer, over
every kind of bump of a large manifest written every way; and a bump of
2,000 components neither loads the manifest round-trip nor composes it in
pure Python, and validates once."""

from __future__ import annotations

from typing import Callable

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.constructor import RoundTripConstructor

from convoy import manifest_edit
from convoy.errors import ConvoyError
from convoy.manifest import clear_cache, parse_manifest
from convoy.manifest_edit import Bump, bump_manifest, compose_positions

from tests.support.manifests import NEW, ODD, OLD  # noqa: E402  (the odd manifest, as written by hand)

# ODD with its one flow URL quoted: the C parser reads it (it refuses `{remote: https://...}`).
ODD_C = ODD.replace("remote: https://git.example.com/robot/controller.git,",
                    "remote: 'https://git.example.com/robot/controller.git',")


# -- a large manifest, written every way ---------------------------------------------------
#
# big_manifest(n) has n components in every form the edit must keep: block
# and flow mappings, plain, single- and double-quoted values, inline and
# whole-line comments, blank lines, odd indentation, an anchored remote that
# most components alias, git components with and without a commit, archives
# (url, strip_prefix, sha256) and local directories; and four configurations:
# a block list, a flow list, a block list with block pins and a flow mapping
# with flow pins. bumps_of(n) are bumps of every kind over it (a version, a
# version and a commit, an archive, a pin, a new pin, and some that do not
# fit), spread over the file.

SHA = "ab" * 32
CONFIGURATIONS = ("everything", "evens", "odds", "flowing")


def name(i: int) -> str:
    return f"part{i:04d}"


def kind(i: int) -> str:
    """git, archive or local; one in five of the git and local ones is written as a flow mapping."""
    return ("git", "git", "archive", "git", "local", "git", "git")[i % 7]


def big_manifest(n: int) -> str:
    lines = [
        f"# A generated manifest of {n} components (tests/manifest_edit/test_edit_positions.py).",
        "schema_version: 1",
        f"default_configuration: {CONFIGURATIONS[0]}   # the big one",
        "",
        "release: {tag_format: \"v{year}.{month}.{n}\"}",
        "",
        "components:",
    ]
    for i in range(n):
        c = name(i)
        if i % 50 == 0:
            lines += ["", f"  # --- group {i // 50} ---"]
        remote = "&shared https://git.example.com/robot/shared.git" if i == 0 else (
            "*shared" if i % 3 else f"'https://git.example.com/robot/{c}.git'")
        version = (f"v1.{i % 10}.0", f"'v1.{i % 10}.0'", f'"v1.{i % 10}.0"')[i % 3]
        k = kind(i)
        if i % 5 == 4 and k != "archive":
            where = f"remote: {remote if not remote.startswith('&') else 'https://x.example.com/r.git'}" \
                if k == "git" else f"path: 'components/{c}/{{version}}'"
            commit = f", commit: {OLD}" if k == "git" and i % 2 else ""
            lines.append(f"  {c}: {{source: {k}, {where}, version: {version}{commit}}}")
            continue
        indent = "      " if i % 11 == 0 else "    "
        lines.append(f"  {c}:" + ("   # an inline comment" if i % 4 == 0 else ""))
        lines.append(f"{indent}source: {k}" + ("                # from the server" if i % 6 == 0 else ""))
        if k == "git":
            lines.append(f"{indent}remote: {remote}")
        elif k == "archive":
            lines.append(f"{indent}url: \"https://pkg.example.com/{c}-{{version}}.tar.gz\"")
            if i % 2:
                lines.append(f"{indent}strip_prefix: {c}-{{version}}")
            lines.append(f"{indent}sha256: {SHA}")
        else:
            lines.append(f"{indent}path: components/{c}/{{version}}")
        if i % 9 == 0:
            lines.append(f"{indent}# the version below is what the queue bumps")
        lines.append(f"{indent}version: {version}" + ("          # pinned by hand" if i % 8 == 1 else ""))
        if k == "git" and i % 2:
            lines.append(f"{indent}commit: {OLD}")
    lines += ["", "configurations:", f"  {CONFIGURATIONS[0]}:   # every component", "    components:"]
    lines += [f"      - {name(i)}" for i in range(n)]
    evens = ", ".join(name(i) for i in range(0, n, 2))
    lines += [f"  {CONFIGURATIONS[1]}:", f"    components: [{evens}]   # flow"]
    lines += [f"  {CONFIGURATIONS[2]}:", "    components:"]
    lines += [f"      - {name(i)}" for i in range(1, n, 2)]
    lines += ["    pins:"]
    lines += [f"      {name(i)}: v0.9.0   # older" for i in range(1, n, 10)]
    flowing = ", ".join(name(i) for i in range(0, n, 3))
    lines += [f"  {CONFIGURATIONS[3]}: {{components: [{flowing}], pins: {{{name(0)}: v0.8.0}}}}", "# the end", ""]
    return "\n".join(lines)


def bumps_of(n: int) -> list[Bump]:
    """Bumps of every kind, spread over a big_manifest(n)."""
    picks = sorted({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 19, 22, 33, 44, 45, 50, 99,
                    n // 2, n // 2 + 1, n - 3, n - 2, n - 1})
    bumps = []
    for i in (i for i in picks if i < n):
        c, k = name(i), kind(i)
        bumps.append(Bump(c, "v2.0.0"))
        bumps.append(Bump(c, "2.10"))  # reads as a number: quoted
        if k == "git":
            bumps.append(Bump(c, "v2.0.0", commit=NEW))
        bumps.append(Bump(c, "v2.1.0", archive_url=f"https://pkg.example.com/{c}-2.1.0.tgz",
                          strip_prefix=f"{c}-2.1.0" if i % 2 else None))
        for configuration, member in ((CONFIGURATIONS[0], True), (CONFIGURATIONS[1], i % 2 == 0),
                                      (CONFIGURATIONS[2], i % 2 == 1), (CONFIGURATIONS[3], i % 3 == 0)):
            bumps.append(Bump(c, "v0.7.0", configuration=configuration))  # some do not fit
        bumps.append(Bump(c, "v1..2"))  # does not fit
    bumps.append(Bump("nosuch", "v1.0.0"))
    return bumps


@pytest.fixture(autouse=True)
def empty_cache():
    clear_cache()
    yield
    clear_cache()


def outcome(text: str, bump: Bump) -> object:
    """What bump_manifest makes of `text`: the new text, or the error it raises."""
    try:
        return bump_manifest(text, bump)[0]
    except (ConvoyError, RuntimeError) as e:
        return (type(e).__name__, str(e))


@pytest.fixture
def as_before(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Bump], object]:
    """outcome() as the bump was before: positions from ruamel's pure
    composer (each text composed once; the editor only reads the nodes)."""
    trees: dict[str, object] = {}

    def pure(text: str):
        if text not in trees:
            trees[text] = YAML(typ="safe", pure=True).compose(text)
        return trees[text]

    def before(text: str, bump: Bump) -> object:
        with monkeypatch.context() as patch:
            patch.setattr(manifest_edit, "compose_positions", pure)
            return outcome(text, bump)

    return before


def c_reads(text: str) -> bool:
    try:
        YAML(typ="safe").compose(text)
    except Exception:  # noqa: BLE001
        return False
    return True


def test_the_texts_below_are_read_by_the_c_composer():
    for text in (ODD_C, big_manifest(120), big_manifest(120).replace("\n", "\r\n")):
        assert c_reads(text)
    assert not c_reads(ODD)  # compose_positions reads it with the pure one, as parse_manifest does


def odd_bumps(text: str) -> list[Bump]:
    manifest = parse_manifest(text)
    bumps = []
    for component in manifest.components:
        bumps += [Bump(component, "v9.0.0"), Bump(component, "v9.0.0", commit=NEW), Bump(component, "3.10"),
                  Bump(component, "v9.1.0", archive_url="https://x.example.com/a.tgz", strip_prefix="a"),
                  Bump(component, "v9.1.0", archive_url="https://x.example.com/a.tgz")]
        bumps += [Bump(component, "v0.1.0", configuration=c) for c in manifest.configurations]
    return bumps


@pytest.mark.parametrize("variant", ["odd", "odd-c", "odd-c-crlf", "odd-c-no-final-newline", "odd-bom"])
def test_the_odd_manifest_is_bumped_as_before(variant, as_before):
    text = {"odd": ODD, "odd-c": ODD_C, "odd-c-crlf": ODD_C.replace("\n", "\r\n"),
            "odd-c-no-final-newline": ODD_C.rstrip("\n"), "odd-bom": "\ufeff" + ODD_C}[variant]
    changed = 0
    for bump in odd_bumps(text):
        after = outcome(text, bump)
        assert after == as_before(text, bump), bump
        changed += isinstance(after, str)
    assert changed >= 20


KINDS = {
    "version": lambda b: b.configuration is None and b.archive_url is None and b.commit is None,
    "commit": lambda b: b.commit is not None,
    "archive": lambda b: b.archive_url is not None,
    **{f"pin-{c}": (lambda c: lambda b: b.configuration == c)(c) for c in CONFIGURATIONS},
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_a_large_manifest_is_bumped_as_before(kind, newline, as_before):
    """120 components (comments, anchors and aliases, flow and block, quotes)."""
    text = big_manifest(120).replace("\n", newline)
    bumps = [b for b in bumps_of(120) if KINDS[kind](b)]
    results = [outcome(text, bump) for bump in bumps]
    assert results == [as_before(text, bump) for bump in bumps]
    assert any(isinstance(r, str) and r != text for r in results)


def test_2000_components_are_bumped_as_before(as_before):
    text = big_manifest(2000)
    picks = [Bump(name(1000), "v2.0.0"), Bump(name(1001), "v2.0.0", commit=NEW), Bump(name(1999), "2.10"),
             Bump(name(1002), "v2.1.0", archive_url="https://pkg.example.com/a.tgz", strip_prefix="a"),
             Bump(name(1001), "v0.7.0", configuration="odds"), Bump(name(0), "v0.7.0", configuration="flowing"),
             Bump(name(1998), "v0.7.0", configuration="evens")]
    for bump in picks:
        after = outcome(text, bump)
        assert isinstance(after, str) and after != text, (bump, after)
        assert after == as_before(text, bump), bump


class Spy:
    """Counts, on the real ruamel: round-trip constructions, and every load,
    parse or compose of a text of at least `size` characters, by kind."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
        self.constructed = 0
        self.calls: list[tuple[str, str]] = []
        real_construct = RoundTripConstructor.construct_document

        def construct_document(constructor, node):
            self.constructed += 1
            return real_construct(constructor, node)

        monkeypatch.setattr(RoundTripConstructor, "construct_document", construct_document)
        for method in ("load", "parse", "compose"):
            real = getattr(YAML, method)

            def spy(yaml, stream, _real=real, _method=method):
                if isinstance(stream, str) and len(stream) >= size:
                    kind = "rt" if "rt" in yaml.typ else "pure" if yaml.pure else "c"
                    self.calls.append((_method, kind))
                return _real(yaml, stream)

            monkeypatch.setattr(YAML, method, spy)


def test_a_bump_of_2000_components_reads_with_c_and_validates_once(monkeypatch):
    text = big_manifest(2000)
    parse_manifest(text)  # as the queue's previous bump left it
    spy = Spy(monkeypatch, size=len(text) // 2)
    edited, manifest = bump_manifest(text, Bump(name(1000), "v2.0.0"))
    assert manifest.components[name(1000)].version == "v2.0.0"
    # Positions: one C compose of the text. Validation of the new text: its
    # C parse (bounds) and compose, then one round-trip construction.
    assert sorted(spy.calls) == [("compose", "c"), ("compose", "c"), ("parse", "c")]
    assert spy.constructed == 1
    assert parse_manifest(edited) == manifest and spy.constructed == 1  # the next bump starts from it: cached


def test_the_positions_alone_are_one_c_compose(monkeypatch):
    text = big_manifest(2000)
    spy = Spy(monkeypatch, size=len(text) // 2)
    compose_positions(text)
    assert spy.calls == [("compose", "c")] and spy.constructed == 0


def test_a_bump_from_a_cold_cache_validates_both_texts_once(monkeypatch):
    text = big_manifest(300)
    spy = Spy(monkeypatch, size=len(text) // 2)
    bump_manifest(text, Bump(name(100), "v2.0.0"))
    assert spy.constructed == 2
    assert not [call for call in spy.calls if call[1] != "c"]
