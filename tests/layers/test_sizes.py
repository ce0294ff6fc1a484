"""The driver's modules and classes stay small enough to read.

- No module under tools/driver/convoy has more than 500 lines.
- No class has more than 250 lines counted with its in-package base
  classes: a class's lines are from its `class` line to its last line (its
  docstring, comments and blank lines inside it included), and a class
  that inherits from classes of the driver (mixins, or a base with code)
  counts theirs too, each base once, through every level. What a class
  inherits is read as much as what it says itself, so splitting a class
  into mixins does not make it smaller; collaborators (objects it holds
  and calls) do.
- A base that is an abstract interface is not counted: a class that
  derives from `abc.ABC` (or has `metaclass=abc.ABCMeta`) and declares an
  `@abc.abstractmethod`, or derives from `typing.Protocol`. It is the
  contract the class implements (store/base.py's `Transaction`), not code
  the class runs. Classes from outside the driver (the standard library's,
  Starlette's) are not counted either.

The classes and their bases are read with `ast`: a base is found by its
name in the class's module (defined there, or imported from a module of
the driver with `from convoy.x import Name`, `from .x import Name`, or as
`module.Name` of an imported module).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from tests.layers import layercheck

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tools" / "driver" / "convoy"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 250

ClassKey = Tuple[str, str]  # (module, class name)


class _Index:
    """Every class of a package, and what each module's names refer to."""

    def __init__(self, package: Path, name: str) -> None:
        self.modules = layercheck.import_graph(package, name).modules
        known = set(self.modules)
        self.classes: Dict[ClassKey, ast.ClassDef] = {}
        self.names: Dict[str, Dict[str, ClassKey]] = {}  # module -> local name -> a class elsewhere
        self.aliases: Dict[str, Dict[str, str]] = {}  # module -> local name -> a module
        for module in self.modules:
            tree = ast.parse((package / module).read_text())
            own = module[: -len(".py")].split("/")[:-1]
            self.names[module], self.aliases[module] = {}, {}
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    self.classes[(module, node.name)] = node
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        stem = ".".join(own[: len(own) - (node.level - 1)] + ([node.module] if node.module else []))
                    elif (node.module or "").startswith(name + ".") or node.module == name:
                        stem = node.module[len(name) + 1:]
                    else:
                        continue
                    for alias in node.names:
                        local = alias.asname or alias.name
                        sub = layercheck.resolve_module(f"{stem}.{alias.name}" if stem else alias.name, known)
                        if sub:
                            self.aliases[module][local] = sub
                        target = layercheck.resolve_module(stem, known)
                        if target:
                            self.names[module][local] = (target, alias.name)
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.startswith(name + ".") and alias.asname:
                            sub = layercheck.resolve_module(alias.name[len(name) + 1:], known)
                            if sub:
                                self.aliases[module][alias.asname] = sub

    def base(self, module: str, expr: ast.expr) -> Optional[ClassKey]:
        """The driver's class a base expression names, if it is one."""
        if isinstance(expr, ast.Name):
            if (module, expr.id) in self.classes:
                return (module, expr.id)
            key = self.names[module].get(expr.id)
            return self._follow(key)
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            target = self.aliases[module].get(expr.value.id)
            return self._follow((target, expr.attr)) if target else None
        return None

    def _follow(self, key: Optional[ClassKey], depth: int = 0) -> Optional[ClassKey]:
        """A class re-exported by another module (`from convoy.store.base import X` in store/__init__)."""
        if key is None or depth > 5:
            return None
        if key in self.classes:
            return key
        return self._follow(self.names.get(key[0], {}).get(key[1]), depth + 1)


def _is_interface(node: ast.ClassDef) -> bool:
    """An abstract interface: `abc.ABC` with an abstract method, or a `typing.Protocol`."""
    names = {ast.unparse(b) for b in node.bases}
    if names & {"Protocol", "typing.Protocol"}:
        return True
    abstract = bool(names & {"ABC", "abc.ABC"}) or any(
        k.arg == "metaclass" and ast.unparse(k.value) in ("ABCMeta", "abc.ABCMeta") for k in node.keywords)
    methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return abstract and any(
        ast.unparse(d) in ("abstractmethod", "abc.abstractmethod") for m in methods for d in m.decorator_list)


def _lines(node: ast.ClassDef) -> int:
    return node.end_lineno - node.lineno + 1


def class_sizes(package: Path, name: str) -> List[Tuple[int, str, str]]:
    """(lines with its counted bases, "module:Class", how it adds up) of every class."""
    index = _Index(package, name)
    sizes = []
    for (module, cls), node in sorted(index.classes.items()):
        counted: Dict[ClassKey, int] = {}
        seen: Set[ClassKey] = set()
        todo = [(module, node)]
        while todo:
            where, current = todo.pop()
            for expr in current.bases:
                key = index.base(where, expr)
                if key is None or key in seen:
                    continue
                seen.add(key)
                base = index.classes[key]
                if not _is_interface(base):
                    counted[key] = _lines(base)
                    todo.append((key[0], base))
        total = _lines(node) + sum(counted.values())
        parts = " + ".join(f"{k[1]} {v}" for k, v in counted.items())
        sizes.append((total, f"{module}:{cls}", f"{_lines(node)}" + (f" + {parts}" if parts else "")))
    return sizes


def test_no_module_is_over_500_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        count = len(path.read_text().splitlines())
        if count > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(PACKAGE)}: {count} lines (at most {MAX_MODULE_LINES})")
    assert not long, "\n".join(long)


def test_no_class_is_over_250_lines_with_its_mixins():
    big = [f"{where}: {total} lines ({how}; at most {MAX_CLASS_LINES})"
           for total, where, how in class_sizes(PACKAGE, "convoy") if total > MAX_CLASS_LINES]
    assert not big, "\n".join(big)


def test_the_size_rule_counts_mixins_and_not_interfaces(tmp_path):
    package = tmp_path / "toy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text(
        "import abc\n\nclass Iface(abc.ABC):\n    @abc.abstractmethod\n    def f(self): ...\n\n"
        "class Mixin:\n    def g(self):\n        return 1\n")
    (package / "impl.py").write_text(
        "from toy.base import Iface, Mixin\nfrom toy import base\n\n"
        "class Impl(Mixin, Iface):\n    def f(self):\n        return 2\n\n"
        "class Other(base.Mixin):\n    pass\n")
    sizes = {where: (total, how) for total, where, how in class_sizes(package, "toy")}
    assert sizes["impl.py:Impl"] == (3 + 3, "3 + Mixin 3")  # the interface Iface is not counted
    assert sizes["impl.py:Other"] == (2 + 3, "2 + Mixin 3")
    assert sizes["base.py:Iface"] == (3, "3")
