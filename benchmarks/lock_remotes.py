"""A fresh `convoy lock` of 10, 500 and 2,000 git components: one `git ls-remote`
per remote (now) against one per component version (before issue 10), side by side.

    .venv/bin/python benchmarks/lock_remotes.py [--components=10,500,2000] [--remotes=4] [--tags=1000]
                                                [--repeat=3] [--old-repeat=1]

In a temporary directory (removed at the end):

- R component git repositories (--remotes), used as file:// remotes, each
  with T tags (--tags) v1.0.0 ... v1.<T-1>.0, one commit each (even ones
  annotated, odd ones lightweight), refs packed as on a server;
- per size N, an integration checkout whose manifest has N git components,
  component i on remote i % R at its own version, and 2 configurations
  (`alpha` has every component; `beta` leaves out every 7th and pins every
  10th to another version of its remote, as in benchmarks/driver_overhead.py).

For each size, with no lock and no cache before (a fresh lock):

- new: load_manifest + convoy.lock.lock_manifest + write_lock, in this
  process, --repeat times (the median is shown);
- old: the same with convoy.lock._lock_manifest_per_version, the resolution
  as it was (one ls-remote per component version), --old-repeat times;
- `convoy lock` as a process of its own (python -m convoy lock), new way,
  once: what a user waits for, interpreter start included.

git processes are counted in this process by wrapping convoy.gitutil._run_git
(every git convoy runs goes through it), and for the `convoy lock` process
by a `git` script first on PATH that counts and runs the real git. The lock
files of both ways are compared byte for byte. Then, on one remote of T tags:
the time of one `git ls-remote --tags --heads` (what convoy runs) against one
ls-remote naming the 3 refs of each of k versions (tag, peeled tag, branch),
the other way to ask one remote for many versions. Only figures are printed;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "driver"))

from machine import IDENTITY, machine  # noqa: E402  (benchmarks/machine.py)

from convoy import gitutil  # noqa: E402
from convoy import lock as lock_module  # noqa: E402
from convoy.manifest import load_manifest  # noqa: E402

MANIFEST = "manifests/manifest.yaml"
LOCK = "manifests/manifest.lock.json"


# --- counting git ------------------------------------------------------------------------


class GitCounter:
    """Counts the git processes convoy starts in this process (all of them go
    through gitutil._run_git), and the ls-remotes among them."""

    def __init__(self) -> None:
        self.processes = 0
        self.ls_remotes = 0
        self._real = gitutil._run_git

        def counting(args, **kwargs):
            self.processes += 1
            self.ls_remotes += bool(args) and args[0] == "ls-remote"
            return self._real(args, **kwargs)

        gitutil._run_git = counting

    def reset(self) -> None:
        self.processes = self.ls_remotes = 0


def logging_git(directory: Path) -> tuple[Path, Path]:
    """A directory holding a `git` that appends its arguments to a log and
    runs the real git; returns (the directory, the log)."""
    real = shutil.which("git")
    directory.mkdir()
    log = directory / "git.log"
    script = directory / "git"
    script.write_text("#!/bin/sh\n"
                      "line=$(printf '%s\\t' \"$@\")\n"
                      f"printf '%s\\n' \"$line\" >> '{log}'\n"
                      f"exec '{real}' \"$@\"\n")
    script.chmod(0o755)
    return directory, log


# --- the world ---------------------------------------------------------------------------


def git(args: List[str], cwd: Path, stdin: str | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def version(index: int) -> str:
    return f"v1.{index}.0"


def make_remote(path: Path, tags: int) -> None:
    """A repository with a commit per tag (even tags annotated, odd ones
    lightweight) on branch main, made with one git fast-import; refs packed."""
    path.mkdir(parents=True)
    git(["init", "-q", "--initial-branch=main", "."], path)
    stream = []
    for i in range(tags):
        content = f"{path.name} {version(i)}\n"
        message = f"{path.name} {version(i)}"
        stream.append(f"commit refs/heads/main\nmark :{i + 1}\ncommitter Convoy Bench <bench@convoy.invalid> "
                      f"{1_700_000_000 + i} +0000\ndata {len(message)}\n{message}\n"
                      f"M 644 inline VERSION\ndata {len(content)}\n{content}\n")
        if i % 2 == 0:
            note = f"release {version(i)}"
            stream.append(f"tag {version(i)}\nfrom :{i + 1}\ntagger Convoy Bench <bench@convoy.invalid> "
                          f"{1_700_000_000 + i} +0000\ndata {len(note)}\n{note}\n")
        else:
            stream.append(f"reset refs/tags/{version(i)}\nfrom :{i + 1}\n\n")
    git(["fast-import", "--quiet"], path, stdin="".join(stream))
    git(["pack-refs", "--all"], path)


def component(i: int) -> str:
    return f"comp{i:04d}"


def manifest_text(components: int, remotes: List[str], tags: int) -> str:
    def version_of(i: int) -> int:
        return (i // len(remotes)) % tags

    lines = [f"# Synthetic manifest of {components} components (benchmarks/lock_remotes.py).",
             "default_configuration: alpha", "components:"]
    for i in range(components):
        lines += [f"  {component(i)}:", "    source: git", f"    remote: {remotes[i % len(remotes)]}",
                  f"    version: {version(version_of(i))}"]
    lines += ["configurations:", "  alpha:", "    components:"]
    lines += [f"      - {component(i)}" for i in range(components)]
    lines += ["  beta:", "    components:"]
    lines += [f"      - {component(i)}" for i in range(components) if i % 7 != 6]
    pins = [i for i in range(components) if i % 7 != 6 and i % 10 == 5]
    if pins:
        lines.append("    pins:")
        lines += [f"      {component(i)}: {version((version_of(i) + 1) % tags)}" for i in pins]
    return "\n".join(lines) + "\n"


def make_checkout(path: Path, text: str) -> Path:
    (path / "manifests").mkdir(parents=True)
    (path / MANIFEST).write_text(text)
    return path


def fresh(checkout: Path) -> None:
    """No lock and no cache: the next lock is a fresh one."""
    (checkout / LOCK).unlink(missing_ok=True)
    shutil.rmtree(checkout / ".convoy", ignore_errors=True)


# --- measuring ---------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    processes: int
    ls_remotes: int
    lock: bytes


def lock_once(checkout: Path, resolve: Callable, counter: GitCounter) -> Run:
    fresh(checkout)
    counter.reset()
    started = time.perf_counter()
    manifest = load_manifest(checkout / MANIFEST)
    lock = resolve(manifest, checkout, MANIFEST)
    lock_module.write_lock(checkout / LOCK, lock)
    seconds = time.perf_counter() - started
    return Run(seconds, counter.processes, counter.ls_remotes, (checkout / LOCK).read_bytes())


def lock_process(checkout: Path, bin_dir: Path, log: Path) -> tuple[float, int, int]:
    """`python -m convoy lock` in `checkout`: (seconds, git processes, ls-remotes)."""
    fresh(checkout)
    log.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "tools" / "driver"), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "convoy", "lock"], cwd=checkout, env=env, capture_output=True,
                          text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"convoy lock failed (exit {proc.returncode}):\n{proc.stderr}")
    calls = [line.split("\t", 1)[0] for line in log.read_text().splitlines()]
    return seconds, len(calls), calls.count("ls-remote")


def time_git(args: List[str], cwd: Path, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        gitutil.run(args, cwd=cwd)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", default="10,500,2000", help="manifest sizes (default 10,500,2000)")
    parser.add_argument("--remotes", type=int, default=4, help="git remotes the components share (default 4)")
    parser.add_argument("--tags", type=int, default=1000, help="tags per remote (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh locks the new way per size (default 3)")
    parser.add_argument("--old-repeat", type=int, default=1, help="fresh locks the old way per size (default 1)")
    args = parser.parse_args()
    try:
        sizes = [int(s) for s in args.components.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--components={args.components}: expected numbers such as 10,500,2000")
    if not sizes or min(sizes) < 1 or args.remotes < 1 or args.tags < 2 or args.repeat < 1 or args.old_repeat < 0:
        parser.error("sizes and --remotes at least 1, --tags at least 2, --repeat at least 1")

    os.environ.update(IDENTITY)
    os.environ["GIT_CONFIG_GLOBAL"] = os.devnull  # the user's git config stays out of it
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "CONVOY_FAILPOINT"):
        os.environ.pop(name, None)

    print("a fresh convoy lock: one git ls-remote per remote (new) against one per component version (old)")
    print(machine())
    root = Path(tempfile.mkdtemp(prefix="convoy-bench-lock-"))
    try:
        started = time.perf_counter()
        remotes = []
        for r in range(args.remotes):
            make_remote(root / "remotes" / f"remote{r}", args.tags)
            remotes.append((root / "remotes" / f"remote{r}").as_uri())
        print(f"{args.remotes} file:// remotes of {args.tags} tags each (half annotated), made in "
              f"{time.perf_counter() - started:.1f} s")
        bin_dir, log = logging_git(root / "logging-git")
        counter = GitCounter()
        rows = []
        for size in sizes:
            print(f"... {size} components", flush=True)
            checkout = make_checkout(root / f"checkout-{size}", manifest_text(size, remotes, args.tags))
            manifest = load_manifest(checkout / MANIFEST)
            versions = len({(c.name, c.version) for name in manifest.configurations
                            for c in manifest.resolved(name).values()})
            new = [lock_once(checkout, lock_module.lock_manifest, counter) for _ in range(args.repeat)]
            old = [lock_once(checkout, lock_module._lock_manifest_per_version, counter)
                   for _ in range(args.old_repeat)]
            load_started = time.perf_counter()
            load_manifest(checkout / MANIFEST)
            load_seconds = time.perf_counter() - load_started
            process = lock_process(checkout, bin_dir, log)
            rows.append((size, versions, load_seconds, new, old, process))

        print()
        print("fresh lock = load_manifest + lock_manifest + write_lock, in this process, in seconds "
              f"(new: median of {args.repeat}; old: median of {args.old_repeat}); git = git processes run")
        header = (f"{'components':>10} {'versions':>8} {'load':>6} | {'new s':>7} {'git':>5} {'ls-rem':>6} | "
                  f"{'old s':>7} {'git':>5} {'ls-rem':>6} | {'old/new':>7} {'same lock':>9} | "
                  f"{'convoy lock (own process)':>25}")
        print(header)
        print("-" * len(header))
        for size, versions, load_seconds, new, old, (p_seconds, p_git, p_ls) in rows:
            n = statistics.median(r.seconds for r in new)
            cells = f"{size:>10} {versions:>8} {load_seconds:6.2f} | {n:7.3f} {new[0].processes:>5} " \
                    f"{new[0].ls_remotes:>6} | "
            if old:
                o = statistics.median(r.seconds for r in old)
                same = "yes" if all(r.lock == new[0].lock for r in old + new) else "NO"
                cells += f"{o:7.3f} {old[0].processes:>5} {old[0].ls_remotes:>6} | {o / n:6.1f}x {same:>9} | "
            else:
                cells += f"{'-':>7} {'-':>5} {'-':>6} | {'-':>7} {'-':>9} | "
            cells += f"{p_seconds:6.2f} s, {p_git} git ({p_ls} ls-remote)"
            print(cells)
        print("  versions = distinct (component, version) pairs to resolve; load = load_manifest alone (in both);")
        print("  convoy lock (own process) = `python -m convoy lock`, interpreter start and printing included,")
        print("  git processes counted by a logging git first on PATH.")

        print()
        remote = remotes[0]
        print(f"one ls-remote of a remote of {args.tags} tags, median of 3, in seconds:")
        listing = time_git(["ls-remote", "--tags", "--heads", "--", remote], root)
        print(f"  {'ls-remote --tags --heads (what convoy runs)':52} {listing:7.3f}")
        for k in sorted({1, 100, min(1000, args.tags), args.tags}):
            names = [name for i in range(k) for name in
                     (f"refs/tags/{version(i)}", f"refs/tags/{version(i)}^{{}}", f"refs/heads/{version(i)}")]
            named = time_git(["ls-remote", "--", remote, *names], root)
            print(f"  {f'ls-remote naming the 3 refs of {k} versions':52} {named:7.3f}")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
