"""convoy.provenance: the statement of a build inserted in a real store, of a real git commit."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import convoy
from convoy import provenance
from convoy.release_layout import canonical_json
from convoy.store import iso

from tests.verify import ARCHIVE_PIN, ARTIFACTS, RIGS, git, insert_build, lock_text, make_site


def sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def test_the_statement(tmp_path):
    site = make_site(tmp_path)
    git(site.root, "remote", "set-url", "origin", "https://ci:t0ken@git.example.com/integration.git")
    statement = site.collect("v1")
    convoy_yaml = (site.root / "convoy.yaml").read_text()
    manifest, lock = sha((site.root / "manifests/manifest.yaml").read_text()), sha(lock_text())
    tree = git(site.root, "rev-parse", f"{site.commit}:components/tool")
    repository = "https://ci:***@git.example.com/integration.git"

    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"] == [
        {"name": "rover/notes.txt", "digest": {"sha256": sha(ARTIFACTS["rover/notes.txt"])}},
        {"name": "rover/product.tar", "digest": {"sha256": sha(ARTIFACTS["rover/product.tar"])}},
        {"name": "manifests/manifest.yaml", "digest": {"sha256": manifest}},
        {"name": "manifests/manifest.lock.json", "digest": {"sha256": lock}},
    ]
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == "https://github.com/convoy-ci/convoy/integration@v1"
    assert definition["externalParameters"] == {
        "tag": "v1", "repository": repository, "branch": "main", "commit": site.commit, "base": site.base,
        "requests": [{"id": 1, "requested_by": "alice", "bumps": [
            {"component": "widget", "version": "v1.1.0", "commit": "c" * 40, "configuration": None},
            {"component": "gadget", "version": "v2.0.0", "commit": None, "configuration": "drone"}]}],
        "configurations": ["drone", "rover"],
    }
    assert definition["internalParameters"] == {
        "convoy_yaml": {"sha256": sha(convoy_yaml)},
        "bazel": {"version": None, "startup_flags": ["--nosystem_rc"], "flags": ["--keep_going"]},
    }
    assert definition["resolvedDependencies"] == [
        {"name": "integration", "uri": f"git+{repository}", "digest": {"gitCommit": site.commit}},
        {"name": "manifests/manifest.yaml", "digest": {"sha256": manifest}},
        {"name": "manifests/manifest.lock.json", "digest": {"sha256": lock}},
        {"name": "convoy.yaml", "digest": {"sha256": sha(convoy_yaml)}},
        {"name": "drone/gadget", "uri": ARCHIVE_PIN["url"], "digest": {"sha256": "d" * 64},
         "annotations": {"version": "v2.0.0"}},
        {"name": "drone/tool", "uri": "file:components/tool", "digest": {"gitTree": tree},
         "annotations": {"version": "v0.3.0"}},
        {"name": "rover/tool", "uri": "file:components/tool", "digest": {"gitTree": tree},
         "annotations": {"version": "v0.3.0"}},
        {"name": "rover/widget", "uri": "git+https://deploy:***@git.example.com/widget.git",
         "digest": {"gitCommit": "c" * 40}, "annotations": {"version": "v1.1.0"}},
    ]

    run = statement["predicate"]["runDetails"]
    with site.store.read() as tx:
        build = tx.build(site.build_id)
    assert run["builder"] == {"id": "https://github.com/convoy-ci/convoy/driver",
                              "version": {"convoy": convoy.__version__, "worker": socket.gethostname()}}
    assert run["metadata"] == {"invocationId": f"build-{site.build_id}", "startedOn": iso(build.started_at),
                               "finishedOn": "2024-12-05T23:08:20.000Z"}
    names = [b["name"] for b in run["byproducts"]]
    assert names == ["stage/build/drone", "stage/build/rover", "stage/hardware/drone", "stage/hardware/rover",
                     "stage/release/rover"]
    byproducts = {b["name"]: b["annotations"] for b in run["byproducts"]}
    assert byproducts["stage/build/drone"] == {
        "stage": "build", "configuration": "drone", "command": "build", "state": "skipped", "outcome": "UNCHANGED",
        "invocation_id": None, "started_on": None, "finished_on": None, "targets": [], "flags": []}
    assert byproducts["stage/hardware/drone"]["outcome"] == "UNCHANGED"
    assert "hardware_executor" not in byproducts["stage/hardware/drone"]  # it never ran
    assert byproducts["stage/hardware/rover"] == {
        "stage": "hardware", "configuration": "rover", "command": "test", "state": "succeeded", "outcome": "SUCCESS",
        "invocation_id": "inv-hardware-rover", "started_on": "2024-12-05T23:07:00.000Z",
        "finished_on": "2024-12-05T23:07:05.250Z",
        "targets": [{"label": "//integration:rover_hil_test", "status": "passed", "cached": False},
                    {"label": "//integration:rover_bench_test", "status": "passed", "cached": True}],
        "hardware": [{"target": "//integration:rover_hil_test", "pool": "rover-rigs", "rig": "rover-rigs-1",
                      "worker": "rover-rigs/rover-rigs-1", "action": "ab12/140", "exit_code": None,
                      "started_on": "2024-12-05T23:06:40.000Z", "finished_on": "2024-12-05T23:07:00.500Z"}],
        "flags": ["--test_tag_filters=convoy-hardware"],
    }
    assert byproducts["stage/release/rover"]["invocation_id"] == "inv-release-rover"
    assert "hardware" not in byproducts["stage/release/rover"]

    digest = provenance.write(statement, tmp_path)
    written = (tmp_path / "provenance.intoto.json").read_bytes()
    assert written == canonical_json(statement) and digest == sha(written)
    assert json.loads(written) == statement


def test_hardware_without_a_lab_and_with_a_lab_error(tmp_path):
    site = make_site(tmp_path)
    _, local_build = insert_build(site.store, site.root / "local", site.base, site.commit, rigs=None)
    _, failed_build = insert_build(site.store, site.root / "error", site.base, site.commit,
                                   rigs={**RIGS, "runs": [], "error": "the lab did not answer: connection refused"})

    def hardware(build_id: int) -> dict:
        statement = provenance.collect(site.root, site.config, site.store, build_id=build_id, tag="v1", artifacts={},
                                       requests=[], bazel="no-such-bazel")
        byproduct = next(b for b in statement["predicate"]["runDetails"]["byproducts"]
                         if b["name"] == "stage/hardware/rover")
        return {k: v for k, v in byproduct["annotations"].items() if k.startswith("hardware")}

    assert hardware(local_build) == {"hardware_executor": "local"}
    assert hardware(failed_build) == {"hardware": [], "hardware_error": "the lab did not answer: connection refused"}


def test_invocation_id_and_times(tmp_path: Path):
    bep = tmp_path / "x.bep.json"
    bep.write_text('{"id": {"progress": {}}}\nnot json\n{"id": {"started": {}}, "started": {"uuid": "abc-1"}}\n')
    assert provenance.invocation_id(bep) == "abc-1"
    bep.write_text('{"id": {"started": {}}, "started": "no mapping"}\n')
    assert provenance.invocation_id(bep) is None
    assert provenance.invocation_id(tmp_path / "missing.json") is None
    assert provenance.rfc3339(0.5) == "1970-01-01T00:00:00.500Z"
    assert provenance.rfc3339(None) is None
