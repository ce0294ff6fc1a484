"""The driver's layering (docs/architecture.md, "The driver's code") is a
contract this test enforces: the layer table of that page IS the contract,
parsed from its markdown, so the page cannot drift from the code.

The table's rows, top to bottom, are the layers; the backticked names of a
row's "modules" cell are its modules (`candidate.py`) and packages
(`store/`: the whole package, except a module of it named in another row,
like `lab/stage.py`). The import graph of every module under
tools/driver/convoy is read with `ast` from the standard library
(tests/layers/layercheck.py) and counts EVERY import: at module level,
inside functions, under `if TYPE_CHECKING:`, absolute and relative. (grimp /
import-linter would do the same, but no index this machine reaches has them,
and fifty lines of `ast` need no pin.) The test asserts:

(a) every module is in the table exactly once, and every name in the table
    is a module or package that exists;
(b) no module imports one in a higher row (the same row is allowed);
(c) there is no import cycle at all (no strongly connected component of
    more than one module; each is listed with its imports' lines).

Each failure line names the importing module, its line, the imported module
and both layers. `test_the_checker_sees_an_upward_import_and_a_cycle` feeds
the checker a small package made in a tmp dir with both, so this test
cannot pass by seeing nothing.
"""

from __future__ import annotations

from pathlib import Path

from tests.layers import layercheck

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tools" / "driver" / "convoy"
PAGE = ROOT / "docs" / "architecture.md"


def _table():
    return layercheck.parse_layer_table(PAGE.read_text())


def _graph():
    return layercheck.import_graph(PACKAGE, "convoy")


def test_every_module_is_in_the_layer_table_exactly_once():
    _, problems = layercheck.layer_of(_table(), _graph().modules)
    assert not problems, "docs/architecture.md's layer table:\n" + "\n".join(problems)


def test_no_module_imports_a_higher_layer():
    problems = layercheck.upward_imports(_table(), _graph())
    assert not problems, f"{len(problems)} upward imports:\n" + "\n".join(problems)


def test_there_are_no_import_cycles():
    graph = _graph()
    found = layercheck.cycles(graph)
    assert not found, f"{len(found)} import cycles:\n" + "\n".join(
        layercheck.describe_cycle(c, graph) for c in found
    )


def test_the_graph_counts_lazy_and_type_checking_imports():
    """The contract's graph sees the imports a cycle hides behind."""
    imports = {(i.source, i.target) for i in _graph().imports}
    assert ("main.py", "errors.py") in imports
    assert len(imports) > 300  # the whole driver, not a corner of it


def _write(root: Path, files: dict) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_sees_an_upward_import_and_a_cycle(tmp_path):
    package = tmp_path / "toy"
    _write(package, {
        "__init__.py": "",
        "top.py": "from toy import low\n",
        "low.py": "import os\n\ndef f():\n    from toy import top  # upward, lazily\n",
        "db/__init__.py": "from .engine import Engine\n",
        "db/engine.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..db import rows\n",
        "db/rows.py": "from . import engine\n",
        "db/util.py": "",
        "stray.py": "",
    })
    page = (
        "| layer | modules | what they hold |\n| --- | --- | --- |\n"
        "| top | `top.py`, `__init__.py` | |\n"
        "| low | `low.py`, `db/`, `gone.py` | |\n"
        "| base | `db/util.py`, `low.py` | |\n"
    )
    rows = layercheck.parse_layer_table(page)
    assert [r.layer for r in rows] == ["top", "low", "base"]
    graph = layercheck.import_graph(package, "toy")
    problems = layercheck.check(rows, graph)
    text = "\n".join(problems)
    assert "stray.py is in no row of the layer table" in text
    assert "low.py is in the table 2 times: rows low, base" in text
    assert "the table's low row names gone.py, which does not exist" in text
    assert "low.py:4 imports top.py: layer 'low' imports the higher layer 'top'" in text
    found = layercheck.cycles(graph)
    assert found == [["db/engine.py", "db/rows.py"], ["low.py", "top.py"]]
    assert "db/engine.py:3 -> db/rows.py" in layercheck.describe_cycle(found[0], graph)
    assert "db/rows.py:1 -> db/engine.py" in layercheck.describe_cycle(found[0], graph)
    # db/util.py is named in its own row; the rest of db/ is in the low row.
    layers, _ = layercheck.layer_of(rows, graph.modules)
    assert layers["db/util.py"].layer == "base" and layers["db/rows.py"].layer == "low"
