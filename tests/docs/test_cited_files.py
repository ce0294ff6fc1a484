"""Every repository file that the docs cite exists (issue 23, "docs true").

Checked: docs/*.md and README.md (the whole text), and the module
docstrings and comments of tools/driver/convoy, rules/, scripts/ and
benchmarks/. tests/docs/citations.py says what counts as a citation, what
is ignored (generated and example paths: `<name>`, `foo/...`, `.convoy/...`,
other repositories' files) and where a citation is looked for; the rule is
pragmatic: a path with a `/` and a known extension (or `scripts/<name>`), a
Markdown link, or a bare module name (`chain.py`). A renamed, moved or
deleted file is what it catches.
"""

from __future__ import annotations

from pathlib import Path

from tests.docs.citations import EXAMPLES, citations, cited_text, citing_files, links, missing
from tests.support import REPO


def test_every_cited_file_exists():
    files = citing_files()
    assert REPO / "README.md" in files and REPO / "docs" / "status.md" in files
    assert REPO / "tools" / "driver" / "convoy" / "queue" / "chain.py" in files
    assert sum(1 for f in files for _ in citations(cited_text(f))) > 300  # the check reads what it should
    assert sum(1 for f in files for _ in links(cited_text(f))) > 20
    gone = missing(files)
    assert not gone, "cited but not in the repository (fix the citation):\n" + "\n".join(gone)


def test_a_missing_citation_fails(tmp_path: Path):
    doc = tmp_path / "page.md"
    doc.write_text("See `tools/driver/convoy/queue/chain.py` and `queue/chain.py`, [releases](../releases.md),\n"
                   "`scripts/setup`, `tests/lab/test_rig_health.py` and `benchmarks/x.py`.\n"
                   "Moved: `tools/driver/convoy/queue/gone.py`, [gone](no-such-page.md), `vanished_module.py`.\n")
    assert missing([doc]) == [f"{doc}:1: ../releases.md", f"{doc}:2: benchmarks/x.py",
                              f"{doc}:3: tools/driver/convoy/queue/gone.py", f"{doc}:3: vanished_module.py",
                              f"{doc}:3: no-such-page.md"]


def test_a_module_docstring_and_comments_are_read_but_not_the_code(tmp_path: Path):
    module = tmp_path / "mod.py"
    module.write_text('"""Holds x; see `queue/no_such.py`."""\n\n'
                      'PATH = "data/no_such_either.py"  # written by it: docs/no_such_page.md\n'
                      'def f():\n    """Reads `lab/not_a_citation.py`."""\n')
    assert [line.rsplit(": ", 1)[1] for line in missing([module])] == ["queue/no_such.py", "docs/no_such_page.md"]


def test_generated_and_example_paths_are_not_citations():
    text = ("`<checkout>/.convoy/logs/x.py`, `.convoy/state.db`, `foo/bar.py`, `components/<name>/BUILD.bazel`,\n"
            "https://github.com/a/b/blob/main/c.py, `@messages//messages:x.py`, `//integration/pins_test.py`,\n"
            "`/tmp/lock.json`, `~/.cache/convoy/x.json`, `$HOME/x/y.py`, `bazel-out/k8/x.py`, `printf %s/__init__.py`")
    assert list(citations(text)) == []
    assert all(reason for reason in EXAMPLES.values())
    assert list(citations("`integration/pins_test.py` by convoy init")) == []
