"""The release stage's outputs (convoy.artifacts, convoy.bep.output_files), the
artifact store (a directory, a plugin's URL scheme) and release.* in convoy.yaml.

The build event files here are written in the shape Bazel 4.2 writes (as
observed: namedSet events before the targetCompleted that names them);
tests/release/test_end_to_end.py runs the real Bazel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from convoy import artifacts
from convoy.artifact_store import DirectoryStore, open_artifact_store
from convoy.bep import output_files
from convoy.config import parse_config
from convoy.errors import ConvoyError, InfraError


def write_bep(path: Path, outputs: dict[str, list[Path]], *, nested: bool = False, failed: tuple[str, ...] = ()) -> Path:
    lines = []
    for index, (label, files) in enumerate(outputs.items()):
        set_id, child = str(2 * index), str(2 * index + 1)
        first, rest = (files[:1], files[1:]) if nested else (files, [])
        if nested:
            lines.append({"id": {"namedSet": {"id": child}},
                          "namedSetOfFiles": {"files": [{"name": f.name, "uri": f.as_uri()} for f in rest]}})
        lines.append({"id": {"namedSet": {"id": set_id}},
                      "namedSetOfFiles": {"files": [{"name": f.name, "uri": f.as_uri()} for f in first],
                                          **({"fileSets": [{"id": child}]} if nested else {})}})
        completed = {"outputGroup": [{"name": "default", "fileSets": [{"id": set_id}]}]}
        if label not in failed:
            completed["success"] = True
        lines.append({"id": {"targetCompleted": {"label": label}}, "completed": completed})
    lines.append({"id": {"buildFinished": {}}, "finished": {"exitCode": {"name": "SUCCESS"}}, "lastMessage": True})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def outputs_in(tmp_path: Path, *names: str) -> list[Path]:
    made = []
    for name in names:
        path = tmp_path / "bazel-out" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"content of {name}".encode())
        made.append(path)
    return made


def test_output_files_follow_nested_sets_and_skip_failed_targets(tmp_path):
    files = outputs_in(tmp_path, "a/one.tar", "b/two.txt", "c/three.bin")
    bep = write_bep(tmp_path / "bep.json", {"//p:dist": files[:2], "//p:broken": files[2:]}, nested=True,
                    failed=("//p:broken",))
    assert output_files(bep) == {"//p:dist": [str(files[0]), str(files[1])]}
    assert output_files(tmp_path / "missing.json") == {}


def test_keep_copies_each_configurations_outputs_and_replaces_an_earlier_run(tmp_path):
    checkout = tmp_path / "checkout"
    files = outputs_in(tmp_path, "x/dist.tar", "x/notes.txt")
    bep = write_bep(tmp_path / "bep.json", {"//product:dist": files})
    kept = artifacts.keep(checkout, 7, "rover", bep, ["//product:dist"])
    assert kept.problem is None and kept.files == ("rover/dist.tar", "rover/notes.txt")
    staged = artifacts.staged(checkout, 7)
    assert sorted(staged) == ["rover/dist.tar", "rover/notes.txt"]
    assert staged["rover/dist.tar"].read_bytes() == b"content of x/dist.tar"
    files[0].write_bytes(b"rebuilt")  # the slot builds something else: the kept copy stays
    assert staged["rover/dist.tar"].read_bytes() == b"content of x/dist.tar"
    bep = write_bep(tmp_path / "bep2.json", {"//product:dist": files[:1]})
    assert artifacts.keep(checkout, 7, "rover", bep, ["//product:dist"]).files == ("rover/dist.tar",)
    assert sorted(artifacts.staged(checkout, 7)) == ["rover/dist.tar"]  # a second run replaces the first's
    artifacts.discard(checkout, 7)
    assert artifacts.staged(checkout, 7) == {}


@pytest.mark.parametrize("case, expected", [
    ("no output", "release target //product:dist built no output file in rover"),
    ("same name", "two release outputs in rover are named dist.tar"),
    ("remote", "is not on this machine: build the release stage without --remote_download_minimal"),
])
def test_keep_names_what_it_cannot_release(tmp_path, case, expected):
    one, two = outputs_in(tmp_path, "a/dist.tar", "b/dist.tar")
    outputs = {"no output": {"//product:dist": []},
               "same name": {"//product:dist": [one, two]},
               "remote": {"//product:dist": [one]}}[case]
    bep = write_bep(tmp_path / "bep.json", outputs)
    if case == "remote":
        bep.write_text(bep.read_text().replace(one.as_uri(), "bytestream://127.0.0.1:50051/blobs/abc/10"))
    kept = artifacts.keep(tmp_path / "checkout", 1, "rover", bep, ["//product:dist"])
    assert kept.files == () and expected in kept.problem, kept
    assert artifacts.staged(tmp_path / "checkout", 1) == {}


def test_a_directory_store_publishes_whole_once_and_removes_only_its_files(tmp_path):
    staged = tmp_path / "staged"
    (staged / "rover").mkdir(parents=True)
    (staged / "rover" / "dist.tar").write_text("tar")
    (staged / "SHA256SUMS").write_text("sums")
    store = open_artifact_store("releases", tmp_path)
    assert isinstance(store, DirectoryStore) and store.root == tmp_path / "releases"
    store.publish("v2026.12.1", staged)
    (staged / "SHA256SUMS").write_text("changed")
    store.publish("v2026.12.1", staged)  # already there: kept as it was
    assert (store.open("v2026.12.1") / "SHA256SUMS").read_text() == "sums"
    assert store.tags() == ["v2026.12.1"]
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]  # no partial copy left
    with pytest.raises(ConvoyError, match="is not a file of release"):
        store.remove("v2026.12.1", ["../../escape"])
    store.remove("v2026.12.1", ["rover/dist.tar"])
    assert sorted(p.name for p in store.open("v2026.12.1").iterdir()) == ["SHA256SUMS"]
    with pytest.raises(ConvoyError, match="release v9 is not in the release store"):
        store.open("v9")
    for bad in ("", ".hidden", "a/b"):
        with pytest.raises(ConvoyError, match="is not a release tag name"):
            store.open(bad)
    assert open_artifact_store(f"file://{tmp_path}/elsewhere", tmp_path).root == tmp_path / "elsewhere"


def test_an_unwritable_store_is_an_infrastructure_error(tmp_path):
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "SHA256SUMS").write_text("")
    (tmp_path / "a-file").write_text("not a directory")  # unwritable even for root
    store = open_artifact_store(str(tmp_path / "a-file" / "releases"), tmp_path)
    with pytest.raises(InfraError, match="cannot publish release v1 to .*: Not a directory; check that the release store is writable"):
        store.publish("v1", staged)


def test_a_url_scheme_comes_from_a_plugin_entry_point(tmp_path):
    """A package registering `mem` under convoy.artifact_stores (its dist-info on sys.path, as pip installs it)."""
    site = tmp_path / "site"
    (site / "memstore-1.0.dist-info").mkdir(parents=True)
    (site / "memstore-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: memstore\nVersion: 1.0\n")
    (site / "memstore-1.0.dist-info" / "entry_points.txt").write_text(
        "[convoy.artifact_stores]\nmem = memstore:MemStore\n")
    (site / "memstore.py").write_text(textwrap.dedent("""
        class MemStore:
            def __init__(self, url, checkout):
                self.url, self.checkout = url, checkout
    """))
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(site)!r})
        from pathlib import Path
        from convoy.artifact_store import open_artifact_store
        from convoy.errors import ConvoyError
        store = open_artifact_store("mem://bucket/releases", Path("/checkout"))
        print(type(store).__name__, store.url, store.checkout)
        try:
            open_artifact_store("s3://bucket", Path("/checkout"))
        except ConvoyError as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "MemStore mem://bucket/releases /checkout",
        "release.store s3://bucket: no plugin provides s3:// URLs; use a directory, file:// or install a plugin "
        "registering 's3' under convoy.artifact_stores",
    ]


@pytest.mark.parametrize("text, problem", [
    ("release:\n  artifacts: //product:dist\n", "release.artifacts: must be a list of Bazel targets or a mapping"),
    ("release:\n  artifacts: [//product/...]\n", "'//product/...' is not a Bazel target label"),
    ("release:\n  artifacts: {'bad name': [//p:d]}\n", "'bad name' is not a configuration name"),
    ("release:\n  changelog: ../CHANGELOG.md\n", "is not a path inside the integration repository"),
    ("release:\n  signing: {key: k}\n", "a signing key needs allowed_signers"),
    ("release:\n  signing: {key: k, allowed_signers: a, principal: 'a b'}\n", "'a b' is not a signer identity"),
    ("release:\n  keep: -1\n", "release.keep"),
    ("release:\n  artifacts: [//p:d]\nstages:\n  - {name: release, command: build}\n",
     "a stage is named 'release'"),
])
def test_release_settings_are_checked(text, problem):
    with pytest.raises(ConvoyError) as raised:
        parse_config(text, "convoy.yaml")
    assert problem in str(raised.value)


def test_the_release_stage_is_last_and_per_configuration():
    config = parse_config("release:\n  artifacts: {rover: [//p:rover], '*': [//p:all]}\n", "convoy.yaml")
    release = config.plan_stages[-1]
    assert [s.name for s in config.plan_stages] == [s.name for s in config.stages] + ["release"]
    assert release.is_release and release.command == "build"
    assert release.targets_for("rover") == ("//p:rover",) and release.targets_for("drone") == ("//p:all",)
    assert config.stage("release") == release
    assert parse_config("", "convoy.yaml").plan_stages == parse_config("", "convoy.yaml").stages
