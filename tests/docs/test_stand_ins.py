"""docs/testing.md's list of stand-ins is every stand-in in tests/ (issue 23).

The rule, read from the test modules' text (tests/docs itself excepted):
- every `<x>.setattr(obj, "name", ...)` or `delattr` (monkeypatch, a
  `monkeypatch.context()`, `pytest.MonkeyPatch`) replaces the target
  `obj.name`; docs/testing.md must have a line naming both the file (in
  backquotes) and the target (`obj.name`; for a name that is a variable,
  `obj.` and a member);
- a file that uses `unittest.mock`, `MagicMock`, `mock.patch`, a
  `setitem`/`delitem`, an HTTP server of its own, or says it has a
  "stand-in" or a "fake", must be named (in backquotes) in docs/testing.md;
- and the other way round: every (file, target) of the list's first table
  is still in that file, so the list does not keep what is gone.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import REPO

DOC = REPO / "docs" / "testing.md"
_SETATTR = re.compile(r"\.(?:setattr|delattr)\(\s*([\w.]+)\s*,\s*(?:[\"'](\w+)[\"']|(\w+))")
_OTHER = re.compile(r"unittest\.mock|MagicMock|\bmock\.patch|\.setitem\(|\.delitem\(|HTTPServer\(|stand-in|\bfake",
                    re.IGNORECASE)


def _test_modules() -> list[Path]:
    return sorted(p for p in (REPO / "tests").rglob("*.py")
                  if "__pycache__" not in p.parts and p.parent != Path(__file__).parent)


def setattr_targets(text: str) -> list[tuple[str, bool]]:
    """(target, exact) per setattr/delattr in `text`: ("pools.bots", True), or
    ("YAML.", False) when the attribute's name is a variable."""
    found = []
    for match in _SETATTR.finditer(text):
        obj, literal, variable = match.groups()
        if literal is None and obj in ("os", "os.environ"):  # setattr(os.environ ...) is not a pattern here
            continue
        found.append((f"{obj}.{literal}", True) if literal else (f"{obj}.", False))
    return found


def unlisted(doc: str, files: list[Path]) -> list[str]:
    lines = doc.splitlines()
    problems = []
    for path in files:
        text = path.read_text()
        name = f"`{path.relative_to(REPO)}`" if path.is_relative_to(REPO) else f"`{path}`"
        rows = [line for line in lines if name in line]
        for target, exact in dict.fromkeys(setattr_targets(text)):
            wanted = f"`{target}`" if exact else f"`{target}"
            if not any(wanted in row for row in rows):
                problems.append(f"{name} replaces {target}{'' if exact else '<name>'}: not in docs/testing.md")
        if _OTHER.search(text) and not any(name in line for line in lines):
            problems.append(f"{name} has a stand-in (mock, fake, HTTP server): not in docs/testing.md")
    return problems


def listed_gone(doc: str) -> list[str]:
    """Rows of the first table (the setattr targets) whose file no longer replaces their target."""
    table = doc.split("Replaced by `monkeypatch`", 1)[-1].split("Other stand-ins", 1)[0]
    problems = []
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) < 4 or not cells[1].startswith("`tests/"):
            continue
        path = REPO / cells[1].strip("`")
        if not path.exists():
            problems.append(f"{cells[1]}: the file is gone")
            continue
        found = setattr_targets(path.read_text())
        for target in re.findall(r"`([\w.]+)`", cells[2]):
            if (target, True) not in found and not any(not exact and target.startswith(t) for t, exact in found):
                problems.append(f"{cells[1]}: {target} is listed but no longer replaced there")
    return problems


def test_every_stand_in_is_in_docs_testing_md():
    files = _test_modules()
    assert len(files) > 100
    problems = unlisted(DOC.read_text(), files)
    assert not problems, "list these in docs/testing.md (what is replaced and why it cannot be real):\n" + \
        "\n".join(problems)


def test_the_list_keeps_nothing_that_is_gone():
    problems = listed_gone(DOC.read_text())
    assert not problems, "\n".join(problems)


def test_an_unlisted_monkeypatch_fails(tmp_path: Path):
    test = tmp_path / "test_x.py"
    test.write_text("def test_x(monkeypatch):\n"
                    "    monkeypatch.setattr(pools, 'bots', lambda lab: [])\n"
                    "    for m in ('load',):\n        monkeypatch.setattr(YAML, m, None)\n")
    doc = f"| `{test}` | `pools.bots` | the lab's workers |\n"
    assert unlisted(doc, [test]) == [f"`{test}` replaces YAML.<name>: not in docs/testing.md"]
    assert unlisted(doc + f"| `{test}` | `YAML.load` | a spy |\n", [test]) == []
    assert unlisted("", [test]) == [f"`{test}` replaces pools.bots: not in docs/testing.md",
                                    f"`{test}` replaces YAML.<name>: not in docs/testing.md"]
    server = tmp_path / "test_y.py"
    server.write_text("import http.server\nserver = http.server.ThreadingHTTPServer(('127.0.0.1', 0), None)\n")
    assert unlisted(doc, [server]) == [f"`{server}` has a stand-in (mock, fake, HTTP server): not in docs/testing.md"]


def test_a_listed_target_that_is_gone_fails():
    doc = ("Replaced by `monkeypatch`:\n| file | target | why |\n|---|---|---|\n"
           "| `tests/queue/test_queue_modes.py` | `pools.bots`, `pools.gone` | x |\n"
           "| `tests/no/such_test.py` | `a.b` | x |\nOther stand-ins\n")
    assert listed_gone(doc) == ["`tests/queue/test_queue_modes.py`: pools.gone is listed but no longer replaced there",
                                "`tests/no/such_test.py`: the file is gone"]
