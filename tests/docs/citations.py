"""Finds the repository files that the docs, docstrings and comments cite,
and the ones among them that do not exist (tests/docs/test_cited_files.py).

What is read (`cited_text`):
- Python (tools/driver/convoy, benchmarks/, scripts written in Python):
  the module docstring and every `#` comment; other docstrings and string
  literals are code's data (paths it writes or reads), not citations.
- Starlark and BUILD files (rules/), shell scripts (scripts/): `#` comment
  lines, and in .bzl files the triple-quoted docstrings too.
- Markdown (docs/*.md, README.md): the whole text.

What counts as a citation (`citations`): a token with at least one `/`,
starting at a word boundary that is not part of a longer path, URL or Bazel
label (not after `/`, `:`, `@`, `$`, `~`, `<` ...), and
- ending in a file extension the repository uses (.py .md .bzl .bazel .txt
  .toml .yaml .yml .json .sh .js .css .svg .cfg), or
- naming a script: `scripts/<name>` or `.ci/run`;
in Markdown, every relative link target (`[text](releases.md)`, which
must exist relative to its page, as a browser follows it); and a
bare module name (`chain.py`, `defs.bzl`: no `/`), which exists if some file
of the repository has that name (other bare names, `convoy.yaml`,
`NOTES.md`, are mostly files convoy writes, so they are not checked).

What is not (`IGNORED`): generated or example paths rather than files of
this repository: anything with `<`, `...`, `*`, `{`, `$` in it, paths under
`.convoy/`, `bazel-*/`, `.venv*/`, `.git/`, `~`, and the placeholder roots
`foo/`, `bar/`, `x/`, `a/`, `path/`, `some/`, `my/`; and the few files of
other repositories or of examples named in `EXAMPLES`, each with the reason.

A citation exists (`exists`) if it names a file (or folder) relative to
the repository's root, to the citing file's folder, or to the driver's
package (`queue/chain.py` in tools/driver/convoy), or, failing those, if
some file of the repository ends with `/<citation>` (a path inside an
example component, such as `firmware/image.py` under examples/components,
or inside a test folder). The last rule is lenient on purpose: what the
check must catch is a file that was renamed, moved or deleted, and those
match nothing.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

from tests.support import REPO

DRIVER = REPO / "tools" / "driver" / "convoy"

_EXTENSIONS = "py|md|bzl|bazel|txt|toml|yaml|yml|json|sh|js|css|svg|cfg"
_CITATION = re.compile(
    r"(?<![\w./:@$~<>{}*%\\-])"  # not inside a longer path, URL, label or placeholder
    rf"((?:\.\./|\./)*(?:[\w.+-]+/)+[\w.+-]*\.(?:{_EXTENSIONS})(?![\w/-])"
    r"|scripts/[\w-]+(?![\w./-])|\.ci/run\b)"
)
_MODULE = re.compile(r"(?<![\w./:@$~<>{}*%\\-])([\w-]+\.(?:py|bzl))(?![\w/-])")
_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?\)")
IGNORED = re.compile(
    r"[<*{$]|\.\.\.|^(?:\./)?(?:\.convoy|bazel-[\w-]+|\.venv[\w-]*|\.git|foo|bar|x|a|path|some|my)/"
)

# Files that the text names but that are not this repository's: what convoy
# writes into another repository, or a user's script in an example convoy.yaml.
EXAMPLES = {
    "integration/pins_test.py": "written by `convoy init` into the new integration repository",
    "staged/provenance.intoto.json": "a release's staged statement, written at the merge",
    "../other/manifests/manifest.yaml": "an example of --manifest in `convoy lock`'s help",
    "scripts/notify": "a user's notification script in an example convoy.yaml",
    "scripts/notify-component": "a user's notification script in an example convoy.yaml",
    "error_handler.py": "pre-commit's module, which convoy's crash log follows (crashlog.py)",
}


def cited_text(path: Path) -> str:
    """The part of `path` that may cite files (see the module docstring)."""
    text = path.read_text(errors="replace")
    if path.suffix == ".md":
        return text
    if path.suffix == ".py" or text.startswith("#!") and "python" in text.splitlines()[0]:
        return _python_cited_text(text)
    lines = [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]
    if path.suffix == ".bzl":
        lines += re.findall(r'"""(.*?)"""', text, flags=re.S)
    return "\n".join(lines)


def _python_cited_text(text: str) -> str:
    parts: list[str] = []
    try:
        parts.append(ast.get_docstring(ast.parse(text), clean=False) or "")
    except SyntaxError:
        pass
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                parts.append(token.string)
    except (tokenize.TokenError, SyntaxError):
        pass
    return "\n".join(parts)


def citations(text: str) -> Iterator[str]:
    """The repository paths `text` cites, in order (repeats included)."""
    for match in _CITATION.finditer(text):
        cited = match.group(1).rstrip(".")
        if not IGNORED.search(cited) and cited not in EXAMPLES:
            yield cited
    for match in _MODULE.finditer(text):
        if match.group(1) not in EXAMPLES:
            yield match.group(1)


def links(text: str) -> Iterator[str]:
    """The relative Markdown link targets in `text` (the part before any `#`)."""
    for match in _LINK.finditer(text):
        target = match.group(1)
        if "://" not in target and not target.startswith(("mailto:", "/")) and not IGNORED.search(target):
            yield target


@lru_cache(maxsize=1)
def _repo_files() -> tuple[str, ...]:
    """Every file git knows here (tracked or not ignored), as posix paths."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return tuple(line for line in out.splitlines() if (REPO / line).exists())


def exists(cited: str, citing: Path, repo: Path = REPO) -> bool:
    """Whether `cited` (as written in `citing`) names a file or folder here."""
    for base in (repo, citing.parent, DRIVER):
        if (base / cited).exists():
            return True
    suffix = "/" + cited.lstrip("./")
    return repo == REPO and any(f"/{f}".endswith(suffix) or suffix + "/" in f"/{f}" for f in _repo_files())


def outside(cited: str, citing: Path) -> bool:
    """Whether `cited`, read from the repository's root or `citing`'s folder, leaves the repository
    (`../shared/DESIGN.md` beside the checkout): not the repository's file,
    so not checked here (a fresh clone elsewhere does not have it)."""
    repo = REPO.resolve()
    return (cited.startswith("../") and citing.resolve().is_relative_to(repo)
            and any(not (base / cited).resolve().is_relative_to(repo) for base in (REPO, citing.parent)))


def missing(files: Iterable[Path]) -> list[str]:
    """"<file>:<line>: <citation>" for each citation of a file that does not exist."""
    found = []
    for path in files:
        whole = path.read_text(errors="replace")
        text = cited_text(path)
        gone = [c for c in dict.fromkeys(citations(text)) if not outside(c, path) and not exists(c, path)]
        gone += [t for t in dict.fromkeys(links(text))  # a link: from its page
                 if not outside(t, path) and not (path.parent / t).exists()]
        lines = whole.splitlines()
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        at = {c: next((n for n, line in enumerate(lines, 1) if c in line), 0) for c in gone}
        found += [f"{shown}:{at[c]}: {c}" for c in sorted(gone, key=lambda c: at[c])]
    return found


def citing_files() -> list[Path]:
    """The files whose citations are checked."""
    files = [p for p in DRIVER.rglob("*.py") if "__pycache__" not in p.parts]
    files += [p for p in (REPO / "rules").rglob("*") if p.is_file() and p.suffix in (".bzl", ".bazel", "")]
    files += [p for p in (REPO / "scripts").iterdir() if p.is_file()]
    files += sorted((REPO / "benchmarks").glob("*.py"))
    files += sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
    return sorted(files)
