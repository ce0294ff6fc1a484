"""Releases people can ship and audit: the end-to-end proof of issue 13.

One integration repository of the sample, the real Bazel, real git, real
ssh-keygen, `convoy process` as a real process. convoy.yaml releases the
sample's distribution (//product:distribution) per configuration, keeps a
CHANGELOG.md and signs with an SSH key made here:

    #1 messages v1.5.0    both configurations include messages -> a release with rover's and drone's tarball
    #2 planner v2.2.0     with a release target that does not exist: the artifact build fails -> re-queued,
                          main and the tags untouched; the target fixed -> merged, rover's tarball only

Then `convoy verify` passes on the release, and fails, naming it, for an
artifact modified, the statement edited, the tag moved, a hardware result
claimed for a rig outside its pool, and a lock that is not the one tested.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from convoy import release_layout as layout
from convoy.models import RequestState

from tests.support.integration import Integration, config_text

pytestmark = [pytest.mark.bazel, pytest.mark.slow]

STAGES = """\
stages:
  - {name: build, command: build, timeout: 300}
  - {name: hardware, command: test, tag_filter: convoy-hardware, timeout: 300}
"""


def release_section(keys: Path, artifacts: str = "[//product:distribution]") -> str:
    return (
        "release:\n"
        f"  artifacts: {artifacts}\n"
        "  changelog: CHANGELOG.md\n"
        "  signing:\n"
        f"    key: {json.dumps(str(keys / 'release'))}\n"
        f"    allowed_signers: {json.dumps(str(keys / 'allowed_signers'))}\n"
        "    principal: release@test\n"
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    keys = tmp_path_factory.mktemp("keys")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "release")], check=True)
    public = (keys / "release.pub").read_text().split()
    (keys / "allowed_signers").write_text(f"release@test {public[0]} {public[1]}\n")
    return keys


@pytest.fixture(scope="module")
def it(make_integration, keys) -> Integration:
    return make_integration("releases", config=config_text(stages=STAGES) + release_section(keys))


@pytest.fixture(scope="module")
def first(it, component_repos) -> str:
    """#1 merged: the tag of its release."""
    request_id = it.submit("--component=messages", "--version=v1.5.0", "--requested_by=issue-13")
    run = it.process("--all")
    assert run.code == 0, run
    assert it.request(request_id).state == RequestState.MERGED, it.show(request_id)
    return it.request(request_id).tag


def release_dir(it: Integration, tag: str) -> Path:
    return it.checkout / ".convoy" / "releases" / tag


def verify(it: Integration, tag: str):
    return it.convoy("verify", tag)


def test_a_merge_releases_artifacts_sums_notes_and_signed_provenance(it, first, component_repos, keys):
    directory = release_dir(it, first)
    # the artifacts of every affected configuration, built from the tested candidate
    sums = layout.parse_sums((directory / layout.SUMS).read_text())
    assert set(sums) == {"drone/distribution.tar", "rover/distribution.tar"}
    for name, digest in sums.items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest
        with tarfile.open(directory / name) as tar:
            names = tar.getnames()
        configuration = name.split("/")[0]
        assert f"product-{configuration}/messages/messages/types.py" in names, names
    candidate = it.origin_tags()[first]
    lock = json.loads(it.origin_file("manifests/manifest.lock.json", first))
    assert lock["configurations"]["rover"]["components"]["messages"]["version"] == "v1.5.0"

    # the notes list messages' own commits between the old and the new pin
    messages = component_repos["messages"]
    subjects = subprocess.run(["git", "log", "--format=%h %s", "v1.4.0..v1.5.0"], cwd=messages, check=True,
                              capture_output=True, text=True).stdout.split("\n")[0].split(" ", 1)[1]
    notes = (directory / layout.NOTES).read_text()
    assert subjects in notes and "messages" in notes, notes
    message = it.origin("cat-file", "tag", f"refs/tags/{first}")
    assert "Component commits:" in message and subjects in message, message
    assert layout.provenance_digest(message) == layout.sha256_file(directory / layout.STATEMENT)
    # the changelog is in the commit that was tested and merged
    changelog = it.origin_file("CHANGELOG.md", first)
    assert subjects in changelog and "request 1" in changelog, changelog

    # signed: the tag and the statement, with the configured key
    assert "-----BEGIN SSH SIGNATURE-----" in message
    signed = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(keys / "allowed_signers"), "-I",
                             "release@test", "-n", layout.SIGNING_NAMESPACE, "-s",
                             str(directory / layout.SIGNATURE)],
                            input=(directory / layout.STATEMENT).read_bytes(), capture_output=True)
    assert signed.returncode == 0, signed.stderr
    statement = json.loads((directory / layout.STATEMENT).read_text())
    subjects_of = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert {k: v for k, v in subjects_of.items() if k in sums} == sums
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["commit"] == candidate

    shown = it.convoy("release", "show", first)
    assert shown.code == 0, shown
    assert "rover/distribution.tar" in shown.out and subjects in shown.out, shown
    checked = verify(it, first)
    assert checked.code == 0, checked
    assert "FAIL" not in checked.out, checked


@pytest.fixture
def restore(it, first):
    """Puts back the release's files and the tag on origin after a test tampers with them."""
    directory = release_dir(it, first)
    saved = directory.parent / f".saved-{first}"
    shutil.copytree(directory, saved)
    commit = it.origin_tags()[first]
    tag_object = it.origin("rev-parse", f"refs/tags/{first}").strip()
    yield directory
    shutil.rmtree(directory)
    saved.rename(directory)
    it.origin("update-ref", f"refs/tags/{first}", tag_object)
    assert it.origin_tags()[first] == commit


def test_verify_names_a_modified_artifact(it, first, restore):
    with open(restore / "drone" / "distribution.tar", "ab") as f:
        f.write(b"tampered")
    checked = verify(it, first)
    assert checked.code == 1, checked
    assert "drone/distribution.tar" in checked.out + checked.err, checked


def test_verify_names_an_edited_statement(it, first, restore):
    path = restore / layout.STATEMENT
    statement = json.loads(path.read_text())
    statement["predicate"]["buildDefinition"]["externalParameters"]["requests"][0]["requested_by"] = "mallory"
    path.write_bytes(layout.canonical_json(statement))
    checked = verify(it, first)
    assert checked.code == 1, checked
    assert "statement" in checked.err.splitlines()[-1], checked


def test_verify_names_a_moved_tag(it, first, restore, tmp_path, keys):
    # the same message (and so the same provenance line) on another commit
    message = it.origin("for-each-ref", "--format=%(contents)", f"refs/tags/{first}")
    (tmp_path / "message").write_text(message.split("-----BEGIN SSH SIGNATURE-----")[0])
    parent = it.origin("rev-parse", f"{first}^{{commit}}~1").strip()
    it.origin("-c", "gpg.format=ssh", "-c", f"user.signingkey={keys / 'release'}", "tag", "-f", "-s", "-F",
              str(tmp_path / "message"), first, parent)  # signed by whoever holds the key: still noticed
    checked = verify(it, first)
    assert checked.code == 1, checked
    assert "moved" in checked.err.splitlines()[-1], checked


def test_verify_names_a_replaced_tag(it, first, restore):
    parent = it.origin("rev-parse", f"{first}^{{commit}}~1").strip()
    it.origin("tag", "-f", "-a", "-m", "replaced", first, parent)  # by someone without the key
    checked = verify(it, first)
    assert checked.code == 1, checked
    assert checked.err.splitlines()[-1].endswith(f"signatures: tag {first} is not signed"), checked


def test_verify_names_a_rig_outside_its_pool(it, first, restore, keys):
    path = restore / layout.STATEMENT
    statement = json.loads(path.read_text())
    hardware = next(b for b in statement["predicate"]["runDetails"]["byproducts"]
                    if b["annotations"]["stage"] == "hardware" and b["annotations"]["configuration"] == "rover")
    hardware["annotations"].pop("hardware_executor", None)
    hardware["annotations"]["hardware"] = [{
        "target": "//integration:flash_and_drive_test", "pool": "rover-rigs", "rig": "drone-rigs-1",
        "worker": "drone-rigs/drone-rigs-1", "started_on": "2026-12-05T10:00:00Z",
        "finished_on": "2026-12-05T10:00:20Z"}]
    path.write_bytes(layout.canonical_json(statement))
    (restore / layout.SIGNATURE).unlink()
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-f", str(keys / "release"), "-n", layout.SIGNING_NAMESPACE,
                    str(path)], check=True)  # whoever holds the key cannot hide a misrouted test either
    checked = verify(it, first)
    assert checked.code == 1, checked
    rigs = [line for line in checked.out.splitlines() if "drone-rigs-1" in line]
    assert rigs and rigs[0].startswith("FAIL"), checked


def test_a_failed_artifact_build_leaves_main_and_tags_and_requeues(it, first, keys):
    config = it.checkout / "convoy.yaml"
    good = config.read_text()
    config.write_text(good.replace("  artifacts: [//product:distribution]\n",
                                   "  artifacts: [//product:distribution, //product:no_such_target]\n"))
    main, tags = it.origin("rev-parse", "main").strip(), it.origin_tags()
    request_id = it.submit("--component=planner", "--version=v2.2.0", "--requested_by=issue-13")
    try:
        run = it.process("--once")
        request = it.request(request_id)
        assert request.state == RequestState.QUEUED, (run, it.show(request_id))
        assert "release artifacts did not build" in (request.detail or ""), request.detail
        assert it.origin("rev-parse", "main").strip() == main and it.origin_tags() == tags
        assert sorted(p.name for p in release_dir(it, first).parent.iterdir() if not p.name.startswith(".")) \
            == [first]
    finally:
        config.write_text(good)
    run = it.process("--all")
    assert run.code == 0, run
    request = it.request(request_id)
    assert request.state == RequestState.MERGED, it.show(request_id)
    sums = layout.parse_sums((release_dir(it, request.tag) / layout.SUMS).read_text())
    assert set(sums) == {"rover/distribution.tar"}  # only rover has a planner
    assert verify(it, request.tag).code == 0


def test_a_driver_killed_while_releasing_tags_and_publishes_once(it, first):
    request_id = it.submit("--component=planner", "--version=v2.3.0", "--requested_by=issue-13")
    for failpoint in ("after_tag", "after_publish"):  # a local tag; then the tag pushed and the release published
        killed = it.process("--once", failpoint=failpoint)
        assert killed.code == -9, killed
        assert it.request(request_id).state == RequestState.TESTING
    run = it.process("--all")
    assert run.code == 0, run
    request = it.request(request_id)
    assert request.state == RequestState.MERGED, it.show(request_id)
    candidate = request.candidate_commit
    assert [t for t, c in it.origin_tags().items() if c == candidate] == [request.tag]
    message = it.origin("cat-file", "tag", f"refs/tags/{request.tag}")
    assert layout.provenance_digest(message) == layout.sha256_file(release_dir(it, request.tag) / layout.STATEMENT)
    assert verify(it, request.tag).code == 0


def test_prune_keeps_the_newest_artifacts_and_every_statement(it, first):
    releases = sorted(p.name for p in release_dir(it, first).parent.iterdir() if not p.name.startswith("."))
    assert len(releases) == 3, releases
    pruned = it.convoy("release", "prune", "--keep=1")
    assert pruned.code == 0, pruned
    newest = max(releases, key=lambda t: int(t.rsplit(".", 1)[1]))
    for tag in releases:
        directory = release_dir(it, tag)
        kept = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
        assert {layout.SUMS, layout.NOTES, layout.STATEMENT, layout.SIGNATURE} <= set(kept), kept
        artifacts = [k for k in kept if "/" in k]
        if tag == newest:
            assert artifacts and layout.PRUNED not in kept
        else:
            assert artifacts == [] and layout.PRUNED in kept, kept
            shown = it.convoy("release", "show", tag)
            assert "pruned" in shown.out, shown
            checked = verify(it, tag)
            assert checked.code == 0, checked  # pruned, not changed: the statement still proves what was released
            assert "pruned" in checked.out, checked
    listed = it.convoy("release", "list")
    assert listed.out.count("artifacts pruned") == 2, listed
    refused = it.convoy("release", "prune", "--keep=-1")
    assert refused.code == 2 and "keep at least 0" in refused.err, refused
