"""`convoy init`, `convoy bazel4` and the files `convoy lock` generates, in-process (no Bazel).

Real git repositories as the components' remotes; the exact files a user
gets; refusals that name what is in the way and write nothing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from convoy import bazel4, scaffold
from convoy.manifest import load_manifest

from tests.support import REPO

BUILDIFIER = REPO / ".tools" / "node_modules" / ".bin" / "buildifier"
SCAFFOLD = [
    ".bazelignore", ".bazelrc", ".gitignore", "MODULE.bazel", "WORKSPACE.bazel", "WORKSPACE.bzlmod", "convoy.yaml",
    "integration/BUILD.bazel", "integration/pins_test.py", "manifests/BUILD.bazel", "manifests/manifest.yaml",
]


@pytest.fixture(autouse=True)
def _no_bazel4(monkeypatch):
    """As on a machine with Bazel 7 unless a test says otherwise."""
    monkeypatch.setattr(bazel4, "bazel_version", lambda *a, **k: "7.4.1")


@pytest.fixture
def remotes(git_repo):
    """Three components, each a git repository with tags."""
    made = {}
    for name, tags in (("codec", ["v1.0.0", "v1.1.0"]), ("telemetry", ["v2.0.0"]), ("bootloader", ["v0.3.0"])):
        repo = git_repo(name, {"BUILD.bazel": "", f"{name}/__init__.py": ""})
        for tag in tags:
            repo.commit({f"{name}/__init__.py": f"VERSION = {tag!r}\n"}, tag)
            repo.tag(tag)
        made[name] = repo
    return made


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and ".git" not in p.parts and ".convoy" not in p.parts)


def test_init_with_components_writes_and_locks(convoy, remotes, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = [f"--component={n}={r.url}@{v}" for n, r, v in (("codec", remotes["codec"], "v1.0.0"),
                                                            ("telemetry", remotes["telemetry"], "v2.0.0"))]
    # repeated both ways: --component=X and --component X
    assert convoy("init", "product", f"--rules={REPO}", *args, "--component",
                  f"bootloader={remotes['bootloader'].url}@v0.3.0") == 0
    root = tmp_path / "product"
    assert _files(root) == sorted(SCAFFOLD + ["manifests/configurations.bazelrc", "manifests/manifest.lock.json"])
    out = capsys.readouterr().out
    assert "locked main: bootloader v0.3.0, codec v1.0.0, telemetry v2.0.0\n" in out
    assert "git init product (branch main; nothing committed)\n" in out
    assert (root / ".git").is_dir()

    manifest = load_manifest(root / "manifests" / "manifest.yaml")
    assert manifest.default_configuration == "main"
    assert {n: (c.source, c.remote, c.version) for n, c in manifest.components.items()} == {
        "codec": ("git", remotes["codec"].url, "v1.0.0"),
        "telemetry": ("git", remotes["telemetry"].url, "v2.0.0"),
        "bootloader": ("git", remotes["bootloader"].url, "v0.3.0"),
    }
    lock = json.loads((root / "manifests" / "manifest.lock.json").read_text())
    assert lock["configurations"]["main"]["components"]["codec"]["commit"] == remotes["codec"].rev_parse("v1.0.0")
    assert (root / "manifests" / "configurations.bazelrc").read_text().splitlines()[2:] == [
        "build:main --repo_env=CONVOY_CONFIGURATION=main",
        "query:main --repo_env=CONVOY_CONFIGURATION=main",
        "fetch:main --repo_env=CONVOY_CONFIGURATION=main",
        "sync:main --repo_env=CONVOY_CONFIGURATION=main",
    ]
    module = (root / "MODULE.bazel").read_text()
    assert 'use_repo(manifest, "bootloader", "codec", "convoy_manifest", "telemetry")' in module
    assert f'local_path_override(\n    module_name = "convoy",\n    path = "{REPO}",\n)' in module
    assert f'local_repository(\n    name = "convoy",\n    path = "{REPO}",\n)' in (root / "WORKSPACE.bazel").read_text()
    assert not (root / ".bazelrc.local").exists()  # Bazel 7 here: no bazel4 config


def test_init_points_at_a_release_archive(convoy, rules_release, tmp_path):
    assert convoy("init", str(tmp_path / "it"), f"--rules={rules_release.url}") == 0
    root = tmp_path / "it"
    workspace = (root / "WORKSPACE.bazel").read_text()
    assert (f'http_archive(\n    name = "convoy",\n    sha256 = "{rules_release.sha256}",\n'
            f'    strip_prefix = "{rules_release.strip_prefix}",\n    urls = ["{rules_release.url}"],\n)\n') in workspace
    module = (root / "MODULE.bazel").read_text()
    assert (f'archive_override(\n    module_name = "convoy",\n    integrity = "{rules_release.integrity}",\n'
            f'    strip_prefix = "{rules_release.strip_prefix}",\n    urls = ["{rules_release.url}"],\n)\n') in module
    assert 'bazel_dep(name = "convoy", version = "0.2.0")' in module
    # No component yet: the manifest says where to add them, and nothing is locked.
    assert "components: {}" in (root / "manifests" / "manifest.yaml").read_text()
    assert not (root / "manifests" / "manifest.lock.json").exists()


def test_init_checks_the_archive_sha256(convoy, rules_release, tmp_path, capsys):
    assert convoy("init", str(tmp_path / "it"), f"--rules={rules_release.path}", f"--rules_sha256={'0' * 64}") == 2
    assert capsys.readouterr().err == (
        f"convoy: error: --rules={rules_release.url}: its sha256 is {rules_release.sha256}, not {'0' * 64}; "
        "check the download\n")
    assert not (tmp_path / "it").exists()


def test_init_never_overwrites(convoy, tmp_path, capsys):
    root = tmp_path / "it"
    (root / "manifests").mkdir(parents=True)
    (root / ".bazelrc").write_text("mine\n")
    (root / "manifests" / "manifest.yaml").write_text("mine too\n")
    assert convoy("init", str(root), f"--rules={REPO}") == 2
    assert capsys.readouterr().err == (
        f"convoy: error: {root} already has .bazelrc, manifests/manifest.yaml; convoy init never overwrites a file. "
        "Remove them, or choose another directory\n")
    assert _files(root) == [".bazelrc", "manifests/manifest.yaml"]
    assert (root / ".bazelrc").read_text() == "mine\n"


@pytest.mark.parametrize("value, expected", [
    ("codec", "--component=codec: expected NAME=REMOTE@VERSION"),
    ("codec=https://h/codec.git", "--component=codec=https://h/codec.git: expected NAME=REMOTE@VERSION"),
    ("Codec!=https://h/c.git@v1", "'Codec!' is not a component name"),
])
def test_init_refuses_a_bad_component(convoy, tmp_path, capsys, value, expected):
    assert convoy("init", str(tmp_path / "it"), f"--rules={REPO}", f"--component={value}") == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "it").exists()


def test_init_writes_nothing_when_a_remote_cannot_be_locked(convoy, tmp_path, capsys):
    root = tmp_path / "it"
    assert convoy("init", str(root), f"--rules={REPO}", f"--component=codec={(tmp_path / 'nowhere').as_uri()}@v1") == 2
    assert "component 'codec'" in capsys.readouterr().err
    assert _files(root) == []


def test_scaffold_starlark_is_buildifier_clean(tmp_path):
    if not BUILDIFIER.exists():
        pytest.fail("no buildifier; run scripts/setup")
    components = [scaffold.ComponentSpec.parse(f"{n}=https://git.example.com/{n}.git@v1.0.0")
                  for n in ("telemetry", "codec")]
    rules = scaffold.RulesSource(url="https://example.com/convoy-0.2.0.tar.gz", sha256="a" * 64,
                                 strip_prefix="convoy-0.2.0")
    files = scaffold.scaffold_files("product", rules, components)
    starlark = [name for name in files if name.endswith((".bazel", ".bzl")) or name == "MODULE.bazel"]
    for name in starlark:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(files[name])
    proc = subprocess.run([str(BUILDIFIER), "-mode=check", "-lint=warn", *starlark], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scaffold_bazelrc_keeps_bazel4_flags_behind_the_config():
    text = scaffold.scaffold_files("p", scaffold.RulesSource(path=str(REPO)), [])[".bazelrc"]
    for line in text.splitlines():
        if "--override_repository" in line or "--extra_toolchains" in line:
            assert line.split()[0].endswith(":bazel4"), line
    assert "--config=bazel4" not in text  # turned on only in .bazelrc.local, where Bazel 4.x is found
    assert "try-import %workspace%/manifests/configurations.bazelrc" in text


def test_component_spec_splits_at_the_last_at():
    spec = scaffold.ComponentSpec.parse("codec=git@git.example.com:robot/codec.git@v1.2.0")
    assert (spec.name, spec.remote, spec.version) == ("codec", "git@git.example.com:robot/codec.git", "v1.2.0")


# --- Bazel 4: the bazel4 config's local part ----------------------------------------


def test_init_writes_the_bazel4_config_where_bazel_is_4(convoy, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bazel4, "bazel_version", lambda *a, **k: "4.2.3+ds-9")
    root = tmp_path / "it"
    assert convoy("init", str(root), f"--rules={REPO}") == 0
    assert "Bazel 4.2.3+ds-9: wrote the bazel4 config's local part" in capsys.readouterr().out
    local = (root / ".bazelrc.local").read_text().splitlines()
    shims = root / ".convoy" / "bazel4"
    assert local[1:5] == [
        f"build:bazel4 --override_repository=remote_coverage_tools={shims / 'remote_coverage_tools'}",
        f"build:bazel4 --override_repository=rules_cc={shims / 'rules_cc'}",
        f"build:bazel4 --override_repository=rules_python={shims / 'rules_python'}",
        "build --config=bazel4",
    ]
    assert (shims / "rules_python" / "python" / "defs.bzl").is_file()


def test_bazel4_stand_ins_are_convoys_own(tmp_path):
    for name, files in bazel4.SHIMS.items():
        ours = REPO / "third_party" / "bazel4" / name
        on_disk = {p.relative_to(ours).as_posix(): p.read_text() for p in ours.rglob("*") if p.is_file()}
        assert files == on_disk, f"convoy/bazel4.py and third_party/bazel4/{name} differ"


def test_bazel4_command(convoy, tmp_path, monkeypatch, capsys):
    root = tmp_path / "it"
    assert convoy("init", str(root), f"--rules={REPO}") == 0
    capsys.readouterr()
    assert convoy("bazel4", f"--repo={root}") == 0
    assert capsys.readouterr().out == "Bazel 7.4.1: the bazel4 config is for Bazel 4.x only; nothing to do\n"
    assert not (root / ".bazelrc.local").exists()

    monkeypatch.setattr(bazel4, "bazel_version", lambda *a, **k: "4.2.3+ds-9")
    assert convoy("bazel4", f"--repo={root}") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == ["wrote .bazelrc.local", "Bazel 4.2.3+ds-9: the bazel4 config is on (.bazelrc.local)"]
    assert "wrote .convoy/bazel4/rules_cc/cc/defs.bzl" in out

    (root / ".bazelrc.local").write_text("build --jobs=4\n")  # a person's own file is never replaced
    assert convoy("bazel4", f"--repo={root}") == 2
    assert "exists and was not written by convoy; move your settings to user.bazelrc" in capsys.readouterr().err
    assert (root / ".bazelrc.local").read_text() == "build --jobs=4\n"


# --- convoy lock: configurations.bazelrc, local paths --------------------------------


def test_lock_regenerates_configurations_when_one_is_added(convoy, remotes, tmp_path, monkeypatch, capsys):
    root = tmp_path / "it"
    assert convoy("init", str(root), f"--rules={REPO}", f"--component=codec={remotes['codec'].url}@v1.1.0") == 0
    manifest = root / "manifests" / "manifest.yaml"
    text = manifest.read_text()
    manifest.write_text(text.replace("  # lite:", "  lite:\n    components: [codec]\n    pins:\n      codec: v1.0.0\n"
                                     "  # lite:", 1))
    monkeypatch.chdir(root)
    capsys.readouterr()
    assert convoy("lock") == 0
    assert capsys.readouterr().out.splitlines()[-2:] == ["wrote manifests/manifest.lock.json",
                                                          "wrote manifests/configurations.bazelrc"]
    assert "build:lite --repo_env=CONVOY_CONFIGURATION=lite" in (root / "manifests" / "configurations.bazelrc").read_text()


def test_lock_without_the_import_writes_no_configurations(convoy, remotes, tmp_path, monkeypatch):
    root = tmp_path / "it"
    assert convoy("init", str(root), f"--rules={REPO}", f"--component=codec={remotes['codec'].url}@v1.1.0") == 0
    (root / ".bazelrc").write_text("build --jobs=2\n")
    (root / "manifests" / "configurations.bazelrc").unlink()
    monkeypatch.chdir(root)
    assert convoy("lock") == 0
    assert not (root / "manifests" / "configurations.bazelrc").exists()


def test_lock_warns_about_a_local_component_git_does_not_track(convoy, tmp_path, monkeypatch, capsys):
    root = tmp_path / "it"
    assert convoy("init", str(root), f"--rules={REPO}") == 0
    (root / "components" / "vendored").mkdir(parents=True)
    (root / "components" / "vendored" / "BUILD.bazel").write_text("")
    manifest = root / "manifests" / "manifest.yaml"
    manifest.write_text(manifest.read_text()
                        .replace("components: {}", "components:\n  vendored:\n    source: local\n"
                                 "    path: components/vendored\n    version: v0.1.0\n#", 1)
                        .replace("    components: []", "    components: [vendored]", 1))
    monkeypatch.chdir(root)
    capsys.readouterr()
    assert convoy("lock") == 0
    assert capsys.readouterr().err == (
        "convoy: warning: component 'vendored': components/vendored is not committed to git, so convoy's "
        "candidate worktree (convoy process) will not have it; commit it before submitting requests\n")
    subprocess.run(["git", "add", "components"], cwd=root, check=True)
    assert convoy("lock") == 0
    assert capsys.readouterr().err == ""


def test_init_without_rules_points_at_the_convoy_checkout_it_runs_from(convoy, remotes, tmp_path, monkeypatch):
    """Run from a convoy checkout, `convoy init` needs no --rules: the
    scaffold's rules source is that checkout (a wheel has none and asks)."""
    monkeypatch.chdir(tmp_path)
    assert convoy("init", "product", f"--component=codec={remotes['codec'].url}@v1.0.0") == 0
    module = (tmp_path / "product" / "MODULE.bazel").read_text()
    assert str(REPO) in module, module
