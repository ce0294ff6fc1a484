"""Culprits from the build graph: which bumps of a failed candidate can explain its failure.

A candidate that holds several bumps (several requests, each bumping one or
more components) fails in one configuration; a bump can only have broken
the failing targets if they depend on a component it bumps:

    bumped = {3: ("messages",), 4: ("planner",), 5: ("controller",)}     # queue order
    suspicion = suspects(worktree, "rover", ["//integration:telemetry_roundtrip_test"], bumped,
                         QuerySettings(output_base=slot, flags=flags))
    suspicion.suspects     # (3,)
    suspicion.cleared      # (4, 5)
    suspicion.line()       # "build graph: //integration:telemetry_roundtrip_test depends on messages
                           #  (request 3) only; 2 cleared (requests 4, 5)"

`suspects` asks Bazel once (convoy.affected's query: the task's own output
base, its startup flags, `--repo_env=CONVOY_CONFIGURATION=<c>` and its
explicit `--repo_env`/`--override_repository` flags, so a warm server
answers without fetching), where <t> is the failing targets as
`set("t1" "t2" ...)`:

    let t = <t> in deps($t) + (buildfiles(deps($t)) except set(@convoy_manifest//...:*))
                                                                   --output=package

and keeps, of the packages it prints, the repositories: each component has
its own, named after it (@messages//, also @@...~messages// or
@@...+messages// for a module extension's canonical name; see
rules/private/lock.bzl). A request is a suspect if the failing targets
depend on (or their BUILD files load a .bzl of) one of its components;
the others are cleared. The components are matched in Python, not in the
query, so that a bumped component without a repository clears its request
instead of failing the query. The hub @convoy_manifest counts when it is in
the deps (configuration.json records every pin: every request is then a
suspect), not when a BUILD file only loads its defs.bzl (every test macro
does).

Whenever the graph cannot tell, every request is a suspect and `method`
says why: no failing targets (e.g. a build failure), the query failed (a
Bazel error such as a label that no longer exists, a timeout, output that
is not packages: "query failed: <one line>"), no bumped component is in the
deps (a flake?), or the deps hold the hub. The query's command line and
Bazel's messages are appended to `settings.log_path`. Never raises for
Bazel's sake.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from convoy import affected
from convoy.affected import QuerySettings

__all__ = ["GRAPH", "NO_BUMPED", "NO_TARGETS", "ON_HUB", "QuerySettings", "Suspicion", "suspects",
           "suspects_from_packages"]

GRAPH = "build graph"
NO_TARGETS = "no failing targets"
NO_BUMPED = "build graph: no bumped component in the failing targets' deps"
ON_HUB = f"build graph: the failing targets depend on @{affected.HUB}, which records every pin"
_FAILED = "query failed"
_NAMED = 3  # at most this many failing targets are named in line()


@dataclass(frozen=True)
class Suspicion:
    """Which requests of a failed candidate can explain its failure.

    `suspects`: the requests whose bumped components are in the failing
    targets' deps, in queue order (every request when the graph cannot
    tell); `cleared`: the others; `method`: "build graph", or why the
    graph did not decide (every request is then a suspect); `seconds`: the
    query's. `targets` (the failing targets asked about) and `blamed` (each
    suspect with its components found in the deps) make line() precise."""

    suspects: tuple[int, ...]
    cleared: tuple[int, ...]
    method: str
    seconds: float
    targets: tuple[str, ...] = ()
    blamed: tuple[tuple[int, tuple[str, ...]], ...] = ()

    def line(self) -> str:
        """One line for `convoy show`."""
        if self.method != GRAPH:
            everyone = f"all suspects ({_requests(self.suspects)})" if self.suspects else "no request to suspect"
            return f"{self.method}; {everyone}"
        if self.blamed:
            by_component: dict[str, list[int]] = {}
            for request, components in self.blamed:
                for component in components:
                    by_component.setdefault(component, []).append(request)
            found = ", ".join(f"{c} ({_requests(ids)})" for c, ids in by_component.items())
            text = f"{GRAPH}: {_who(self.targets)} on {found}"
        else:
            text = f"{GRAPH}: suspects {_requests(self.suspects)}"
        if not self.cleared:
            return f"{text}; none cleared"
        return f"{text}{' only' if self.blamed else ''}; {len(self.cleared)} cleared ({_requests(self.cleared)})"


def suspects(worktree: Path, configuration: str, failing_targets: Sequence[str],
             bumped: Mapping[int, Sequence[str]], settings: QuerySettings) -> Suspicion:
    """The requests of `bumped` (request id -> the components it bumps, in
    queue order) whose components the `failing_targets` depend on in
    `configuration`; see the module docstring. Never raises for Bazel's sake."""
    bumps = _bumps(bumped)
    everyone = tuple(bumps)
    targets = tuple(dict.fromkeys(t.strip() for t in failing_targets if t and t.strip()))
    if not targets:
        return Suspicion(everyone, (), NO_TARGETS, 0.0)
    started = time.monotonic()
    try:
        expression = _expression(targets)
        packages = _packages(affected._run(Path(worktree), ["--output=package", expression], configuration,
                                           settings))
    except affected._QueryFailed as e:
        return Suspicion(everyone, (), f"{_FAILED}: {e}", time.monotonic() - started, targets)
    except UnicodeError:  # Bazel printed bytes that are not text
        return Suspicion(everyone, (), f"{_FAILED}: its output is not text", time.monotonic() - started, targets)
    seconds = time.monotonic() - started
    repositories = _repositories(packages)
    if any(_is_repository_of(r, affected.HUB) for r in repositories):
        return Suspicion(everyone, (), ON_HUB, seconds, targets)
    found, cleared = suspects_from_packages(packages, bumps)
    if not found:
        return Suspicion(everyone, (), NO_BUMPED, seconds, targets)
    blamed = tuple((request, tuple(c for c in bumps[request] if _depends_on(repositories, c))) for request in found)
    return Suspicion(found, cleared, GRAPH, seconds, targets, blamed)


def suspects_from_packages(packages_or_labels: Iterable[str],
                           bumped: Mapping[int, Sequence[str]]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(suspects, cleared): the requests of `bumped` (request id -> the
    components it bumps) with a component whose repository one of
    `packages_or_labels` is in (`@messages//`, `@messages//:messages`,
    `@@+convoy+messages//sub`; a main repository's package or label, such
    as `integration` or `//integration:x`, names none), and the others,
    each in the order of `bumped`. The hub counts for nothing here."""
    repositories = _repositories(packages_or_labels)
    found, cleared = [], []
    for request, components in _bumps(bumped).items():
        (found if any(_depends_on(repositories, c) for c in components) else cleared).append(request)
    return tuple(found), tuple(cleared)


def _bumps(bumped: Mapping[int, Sequence[str]]) -> dict[int, tuple[str, ...]]:
    """`bumped` with each value a tuple of names (a lone string is one name)."""
    return {request: (components,) if isinstance(components, str) else tuple(components)
            for request, components in bumped.items()}


def _expression(targets: Sequence[str]) -> str:
    """The query: the failing targets' deps, and the .bzl files their
    packages load except the hub's (see the module docstring)."""
    for target in targets:
        if '"' in target or not target.isprintable() or target.startswith("-"):
            raise affected._QueryFailed(f"target {target!r} cannot be quoted in a query")
    words = " ".join(f'"{t}"' for t in targets)
    return (f"let t = set({words}) in deps($t) + "
            f"(buildfiles(deps($t)) except set(@{affected.HUB}//...:*))")


def _packages(text: str) -> list[str]:
    """The lines of --output=package (a main repository's root package is an empty line)."""
    packages = [line.strip() for line in text.splitlines() if line.strip()]
    for package in packages:
        if any(c.isspace() for c in package) or ":" in package or (package.startswith("@") and "//" not in package):
            raise affected._QueryFailed(f"it printed {package[:80]!r}, not a package")
    return packages


def _repositories(packages_or_labels: Iterable[str]) -> frozenset[str]:
    """The external repositories (names without @) that packages or labels are in."""
    return frozenset(p.lstrip("@").split("//", 1)[0] for p in packages_or_labels if p.startswith("@"))


def _is_repository_of(repository: str, name: str) -> bool:
    """Whether `repository` is the one declared as `name`: by that name, or
    a module extension's canonical name for it (`...~name`, `...+name`)."""
    return repository == name or repository.endswith(("~" + name, "+" + name))


def _depends_on(repositories: frozenset[str], component: str) -> bool:
    return bool(component) and any(_is_repository_of(r, component) for r in repositories)


def _who(targets: Sequence[str]) -> str:
    if not targets:
        return "the failing targets depend"
    if len(targets) == 1:
        return f"{targets[0]} depends"
    if len(targets) <= _NAMED:
        return f"{', '.join(targets[:-1])} and {targets[-1]} depend"
    return f"{len(targets)} failing targets depend"


def _requests(ids: Sequence[int]) -> str:
    return f"request{'s' if len(ids) != 1 else ''} {', '.join(str(i) for i in ids)}"

