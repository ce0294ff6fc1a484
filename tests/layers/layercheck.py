"""The layering checker that tests/layers/test_layers.py runs: the layer
table of a markdown page parsed into rows, the import graph of a package
read with `ast`, and what breaks the contract between them.

    table = parse_layer_table(Path("docs/architecture.md").read_text())
    graph = import_graph(Path("tools/driver/convoy"))
    problems = check(table, graph)      # [] when the code keeps the table

Modules are named by their path inside the package (`store/sqlite_tx.py`,
`lab/__init__.py`, `main.py`). An import is an edge from the importing
module to the module it names, with its line: `import convoy.x.y`,
`from convoy.x import y` (to `x/y.py` when `y` is a module of `x`, else to
`x.py` or `x/__init__.py`), and the relative forms (`from . import y`,
`from .x import y`). EVERY import statement counts, wherever it is: at
module level, inside a function, under `if TYPE_CHECKING:`; a lazy import
still couples the two modules, and a cycle hidden by one is still a cycle.
The parents a Python import also runs (`x/__init__.py` of `x/y.py`) are
not edges: a package's `__init__.py` is a module like the others, with a
layer of its own. `importlib.import_module` with a computed name (main.py's
command dispatch, store.BACKENDS, the plugin registry) is not an import
this can see, and is not counted.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple


@dataclass(frozen=True)
class Row:
    layer: str  # the row's first cell: "entry", "records", ...
    index: int  # 0 for the top row; a module may import rows of a higher index
    entries: Tuple[str, ...]  # `main.py`, `store/` (a whole package), `lab/stage.py`


@dataclass(frozen=True)
class Import:
    source: str  # the importing module: "events.py"
    line: int
    target: str  # the imported module: "store/__init__.py"


@dataclass(frozen=True)
class Graph:
    modules: Tuple[str, ...]
    imports: Tuple[Import, ...]


_TICKED = re.compile(r"`([^`]+)`")


def parse_layer_table(markdown: str) -> List[Row]:
    """The rows of the page's first table whose header starts `| layer |`,
    top to bottom; each row's modules are the backticked names of its second
    cell that end in `.py` (a module) or `/` (a package)."""
    rows: List[Row] = []
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"\|\s*layer\s*\|", line)), None)
    if start is None:
        raise ValueError("no table with a `| layer |` header")
    for line in lines[start + 2:]:  # past the header and its `| --- |` line
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2:
            continue
        entries = tuple(e for e in _TICKED.findall(cells[1]) if e.endswith((".py", "/")))
        rows.append(Row(cells[0], len(rows), entries))
    return rows


def _modules(package: Path) -> List[str]:
    return sorted(
        p.relative_to(package).as_posix()
        for p in package.rglob("*.py")
        if "__pycache__" not in p.parts
    )


def resolve_module(dotted: str, modules: Set[str]) -> Optional[str]:
    """The module a dotted name inside the package names ("" = its top)."""
    path = dotted.replace(".", "/")
    for candidate in (f"{path}.py", f"{path}/__init__.py" if path else "__init__.py"):
        if candidate in modules:
            return candidate
    return None


def import_graph(package: Path, name: Optional[str] = None) -> Graph:
    """Every import between the modules of `package` (a directory whose
    modules import it as `name`, by default its directory's name)."""
    name = name or package.name
    modules = _modules(package)
    known = set(modules)
    imports: List[Import] = []
    for module in modules:
        tree = ast.parse((package / module).read_text(), filename=module)
        parts = module[: -len(".py")].split("/")
        own_package = parts[:-1]  # the dotted package of a relative import of level 1
        if parts[-1] == "__init__":
            parts = parts[:-1]
        for node in ast.walk(tree):
            targets: List[str] = []  # dotted, relative to the package's top
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == name or alias.name.startswith(name + "."):
                        targets.append(alias.name[len(name) + 1:])
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = own_package[: len(own_package) - (node.level - 1)]
                    if node.level - 1 > len(own_package):
                        continue
                    stem = ".".join(base + ([node.module] if node.module else []))
                elif node.module == name or (node.module or "").startswith(name + "."):
                    stem = node.module[len(name) + 1:]
                else:
                    continue
                for alias in node.names:
                    sub = f"{stem}.{alias.name}" if stem else alias.name
                    targets.append(sub if resolve_module(sub, known) else stem)
            for dotted in targets:
                target = resolve_module(dotted, known)
                if target and target != module:
                    imports.append(Import(module, node.lineno, target))
    unique = sorted(set(imports), key=lambda i: (i.source, i.line, i.target))
    return Graph(tuple(modules), tuple(unique))


def layer_of(rows: Sequence[Row], modules: Iterable[str]) -> Tuple[Dict[str, Row], List[str]]:
    """Each module's row (named itself, else its innermost `pkg/` entry), and
    the problems: a module in no row, named twice, or an entry naming nothing."""
    modules = list(modules)
    problems: List[str] = []
    named: Dict[str, List[Row]] = {}
    packages: Dict[str, List[Row]] = {}
    for row in rows:
        for entry in row.entries:
            if entry.endswith("/"):
                packages.setdefault(entry, []).append(row)
                if not any(m.startswith(entry) for m in modules):
                    problems.append(f"the table's {row.layer} row names {entry}, which has no modules")
            else:
                named.setdefault(entry, []).append(row)
                if entry not in modules:
                    problems.append(f"the table's {row.layer} row names {entry}, which does not exist")
    for entry, where in list(named.items()) + list(packages.items()):
        if len(where) > 1:
            problems.append(
                f"{entry} is in the table {len(where)} times: rows {', '.join(r.layer for r in where)}"
            )
    layers: Dict[str, Row] = {}
    for module in modules:
        if module in named:
            layers[module] = named[module][0]
            continue
        prefixes = [p for p in packages if module.startswith(p)]
        if not prefixes:
            problems.append(f"{module} is in no row of the layer table")
            continue
        layers[module] = packages[max(prefixes, key=len)][0]
    return layers, problems


def upward_imports(rows: Sequence[Row], graph: Graph) -> List[str]:
    layers, _ = layer_of(rows, graph.modules)
    problems = []
    for imp in graph.imports:
        src, dst = layers.get(imp.source), layers.get(imp.target)
        if src and dst and dst.index < src.index:
            problems.append(
                f"{imp.source}:{imp.line} imports {imp.target}: layer {src.layer!r} "
                f"imports the higher layer {dst.layer!r}"
            )
    return problems


def cycles(graph: Graph) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan's)."""
    edges: Dict[str, Set[str]] = {m: set() for m in graph.modules}
    for imp in graph.imports:
        edges[imp.source].add(imp.target)
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(start: str) -> None:  # iterative: no recursion limit on long chains
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for module in graph.modules:
        if module not in index:
            visit(module)
    return sorted(found)


def describe_cycle(component: Sequence[str], graph: Graph) -> str:
    """One cycle's modules and the imports between them, with their lines."""
    members = set(component)
    inner = [i for i in graph.imports if i.source in members and i.target in members]
    lines = ", ".join(f"{i.source}:{i.line} -> {i.target}" for i in inner)
    return f"cycle of {len(component)} modules {' <-> '.join(component)}: {lines}"


def check(rows: Sequence[Row], graph: Graph) -> List[str]:
    """Every way the package breaks the table, one line each ([] if none)."""
    _, problems = layer_of(rows, graph.modules)
    problems += upward_imports(rows, graph)
    problems += [describe_cycle(c, graph) for c in cycles(graph)]
    return problems
