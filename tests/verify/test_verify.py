"""convoy.verify and `convoy verify`: a release made by hand passes; each kind of tampering fails, named."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from convoy.config_release import SigningSpec
from convoy.errors import ConvoyError
from convoy.release_layout import provenance_line, sha256_file
from convoy.verify import verify_release

from tests.verify import Site, git, make_site

TAG = "v1"


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """A published, signed release v1 of the site's commit."""
    made = make_site(tmp_path)
    made.release(TAG, made.collect(TAG))
    yield made
    made.store.close()


def lines(report) -> dict[str, tuple[bool, str]]:
    assert [c.name for c in report.checks] == ["signatures", "lock", "artifacts", "stages", "rigs"]
    return {c.name: (c.ok, c.line) for c in report.checks}


def only_failure(site: Site, name: str) -> str:
    """The line of the one failing check, `name` (every other check passes)."""
    report = verify_release(site.root, site.config, TAG)
    failed = {c.name: c.line for c in report.checks if not c.ok}
    assert list(failed) == [name], failed
    assert report.first_problem == f"{name}: {failed[name]}"
    return failed[name]


def test_a_release_verifies(site):
    report = verify_release(site.root, site.config, TAG)
    digest = sha256_file(site.releases / TAG / "provenance.intoto.json")
    short = site.commit[:12]
    assert lines(report) == {
        "signatures": (True, f"tag v1 and its provenance are signed by release@example.com; the tag names the "
                             f"statement (sha256 {digest[:12]}) and the commit {short}"),
        "lock": (True, f"manifests/manifest.lock.json and manifests/manifest.yaml at {short} are the provenance's "
                       "(4 pins)"),
        "artifacts": (True, "2 artifacts match SHA256SUMS and the provenance"),
        "stages": (True, "3 tasks of 3 stages passed; 2 unchanged (skipped: their pins did not move)"),
        "rigs": (True, "1 hardware test ran on rigs of their pools"),
    }
    assert report.ok and report.first_problem is None
    # the remote's tag, fetched beside the checkout's own tags
    assert git(site.root, "rev-parse", "refs/convoy-verify/v1") == git(site.root, "rev-parse", "refs/tags/v1")


def test_a_modified_artifact(site):
    product = site.releases / TAG / "rover" / "product.tar"
    product.write_bytes(b"rover product, patched\n")
    assert only_failure(site, "artifacts") == (
        f"rover/product.tar does not match SHA256SUMS: its sha256 is {sha256_file(product)}, SHA256SUMS says "
        f"{site.statement(TAG)['subject'][1]['digest']['sha256']}")


def test_an_artifact_and_its_sum_modified(site):
    directory = site.releases / TAG
    (directory / "rover" / "product.tar").write_bytes(b"evil\n")
    sums = (directory / "SHA256SUMS").read_text().splitlines()
    sums = [f"{sha256_file(directory / 'rover/product.tar')}  rover/product.tar" if "product" in s else s for s in sums]
    (directory / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    assert only_failure(site, "artifacts").startswith(
        "SHA256SUMS does not match the provenance: rover/product.tar is ")


def test_pruned_and_missing_artifacts(site):
    directory = site.releases / TAG
    (directory / "rover" / "product.tar").unlink()
    assert only_failure(site, "artifacts") == (
        "rover/product.tar is missing from the release (it was not pruned: there is no PRUNED)")
    (directory / "PRUNED").write_text("2026-12-05T10:00:00Z rover/product.tar\n")
    report = verify_release(site.root, site.config, TAG)
    assert report.ok
    assert lines(report)["artifacts"] == (True, "1 artifact matches SHA256SUMS and the provenance; 1 pruned (PRUNED)")


def test_a_statement_edited_after_release(site):
    path = site.releases / TAG / "provenance.intoto.json"
    statement = site.statement(TAG)
    statement["predicate"]["runDetails"]["builder"]["version"]["worker"] = "elsewhere"
    path.write_text(json.dumps(statement, indent=2, sort_keys=True) + "\n")
    named = git(site.root, "cat-file", "tag", "v1").split("Provenance: sha256:")[1].split()[0]
    assert only_failure(site, "signatures") == (
        f"the provenance statement was changed after release: its sha256 is {sha256_file(path)}, the tag names {named}")


def test_a_tag_moved_on_the_remote(site, tmp_path):
    other = tmp_path / "other"
    git(tmp_path, "clone", "--quiet", str(site.remote), str(other))
    git(other, "commit", "--quiet", "--allow-empty", "-m", "not what was tested")
    moved = git(other, "rev-parse", "HEAD")
    git(other, "push", "--quiet", "origin", "main")
    digest = sha256_file(site.releases / TAG / "provenance.intoto.json")
    git(other, "-c", "gpg.format=ssh", "-c", f"user.signingkey={site.key}", "tag", "-s", "--force", "-m",
        f"Release v1\n\n{provenance_line(digest)}\n", TAG, moved)
    git(other, "push", "--quiet", "--force", "origin", "refs/tags/v1")
    assert only_failure(site, "signatures") == (
        f"tag v1 points at {moved}, its provenance says {site.commit}: the tag was moved")


def test_a_tag_moved_in_the_checkout(site):
    git(site.root, "tag", "--force", "-a", "-m", "mine", TAG, site.base)
    local, remote = git(site.root, "rev-parse", "refs/tags/v1"), git(site.root, "ls-remote", "origin", "refs/tags/v1")
    assert only_failure(site, "signatures") == (
        f"the checkout's tag v1 ({local[:12]}) is not the remote's ({remote[:12]}): it was moved here; replace it "
        "with: git fetch --force origin tag v1")


def test_a_lock_the_statement_does_not_record(site):
    statement = site.statement(TAG)
    statement["subject"][3]["digest"]["sha256"] = "0" * 64
    site.resign(TAG, statement)
    actual = statement["predicate"]["buildDefinition"]["resolvedDependencies"][2]["digest"]["sha256"]
    assert only_failure(site, "lock") == (
        f"manifests/manifest.lock.json at {site.commit[:12]} has sha256 {actual}, the provenance records {'0' * 64}")


def test_a_pin_the_lock_does_not_have(site):
    statement = site.statement(TAG)
    statement["predicate"]["buildDefinition"]["resolvedDependencies"][-1]["digest"]["gitCommit"] = "f" * 40
    site.resign(TAG, statement)
    assert only_failure(site, "lock") == (
        f"the provenance's pin of rover/widget is not the one in manifests/manifest.lock.json at {site.commit[:12]}")


def test_a_hardware_test_on_a_rig_outside_its_pool(site):
    statement = site.statement(TAG)
    byproduct = next(b for b in statement["predicate"]["runDetails"]["byproducts"]
                     if b["name"] == "stage/hardware/rover")
    byproduct["annotations"]["hardware"][0].update(worker="drone-rigs/drone-rigs-2", rig="drone-rigs-2")
    site.resign(TAG, statement)
    assert only_failure(site, "rigs") == (
        "hardware test //integration:rover_hil_test ran on rig drone-rigs-2 of pool drone-rigs, not of its pool "
        "rover-rigs")


def test_hardware_tests_without_a_lab_and_a_lab_error(site):
    statement = site.statement(TAG)
    annotations = next(b["annotations"] for b in statement["predicate"]["runDetails"]["byproducts"]
                       if b["name"] == "stage/hardware/rover")
    del annotations["hardware"]
    annotations["hardware_executor"] = "local"
    site.resign(TAG, statement)
    report = verify_release(site.root, site.config, TAG)
    assert report.ok and lines(report)["rigs"] == (True, "2 hardware tests ran locally (no lab)")
    del annotations["hardware_executor"]
    annotations["hardware_error"] = "the lab did not answer"
    site.resign(TAG, statement)
    assert only_failure(site, "rigs") == (
        "the hardware tests of stage hardware in configuration rover have no record of their rigs: the lab did not "
        "answer")


def test_a_failed_stage(site):
    statement = site.statement(TAG)
    annotations = next(b["annotations"] for b in statement["predicate"]["runDetails"]["byproducts"]
                       if b["name"] == "stage/hardware/rover")
    annotations.update(state="failed", outcome="TESTS_FAILED")
    site.resign(TAG, statement)
    assert only_failure(site, "stages") == "stage hardware failed in configuration rover"


def test_unsigned_releases(site):
    unsigned = dataclasses.replace(site.config, release=dataclasses.replace(site.config.release,
                                                                             signing=SigningSpec()))
    report = verify_release(site.root, unsigned, TAG)
    assert report.ok
    assert lines(report)["signatures"] == (True, "not signed (no release.signing in convoy.yaml): digests only")
    # with signing configured, an unsigned tag or statement fails
    digest = sha256_file(site.releases / TAG / "provenance.intoto.json")
    git(site.root, "tag", "--force", "-a", "-m", f"Release v1\n\n{provenance_line(digest)}\n", TAG, site.commit)
    git(site.root, "push", "--quiet", "--force", "origin", "refs/tags/v1")
    assert only_failure(site, "signatures") == "tag v1 is not signed"
    site.tag(TAG, digest, commit=site.commit)
    (site.releases / TAG / "provenance.intoto.json.sig").unlink()
    assert only_failure(site, "signatures") == (
        "provenance.intoto.json.sig is missing: provenance.intoto.json is not signed")


def test_signed_by_a_key_that_is_not_trusted(site, tmp_path):
    from tests.verify import make_key

    stranger = make_key(tmp_path / "keys", "stranger")
    site.tag(TAG, sha256_file(site.releases / TAG / "provenance.intoto.json"), commit=site.commit, key=stranger)
    assert only_failure(site, "signatures") == f"tag v1 is signed by a key that is not in {site.allowed}"


def test_a_tag_that_is_not_a_release(site):
    with pytest.raises(ConvoyError, match=r"^origin has no tag v9: it is not a release of this repository; "
                                          r"see its tags with: git ls-remote --tags origin$"):
        verify_release(site.root, site.config, "v9")
    git(site.root, "tag", "light", site.commit)
    git(site.root, "push", "--quiet", "origin", "refs/tags/light")
    with pytest.raises(ConvoyError, match="^tag light of origin is a lightweight tag, not a release of convoy"):
        verify_release(site.root, site.config, "light")
    git(site.root, "tag", "-a", "-m", "just a tag", "plain", site.commit)
    git(site.root, "push", "--quiet", "origin", "refs/tags/plain")
    with pytest.raises(ConvoyError, match=r"^release plain is not in the release store .*; run convoy release "
                                          r"list to see the releases it holds$"):
        verify_release(site.root, site.config, "plain")
    with pytest.raises(ConvoyError, match=r"^'--upload-pack=x' is not a tag name"):
        verify_release(site.root, site.config, "--upload-pack=x")


def test_the_command(site, convoy, capsys):
    assert convoy("verify", TAG, f"--repo={site.root}") == 0
    out, err = capsys.readouterr()
    assert [line[:16] for line in out.splitlines()] == [
        "ok   signatures:", "ok   lock: manif", "ok   artifacts: ", "ok   stages: 3 t", "ok   rigs: 1 har"]
    assert err == ""

    (site.releases / TAG / "rover" / "notes.txt").write_bytes(b"changed\n")
    assert convoy("verify", TAG, f"--repo={site.root}") == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[2].startswith("FAIL artifacts: rover/notes.txt does not match SHA256SUMS: ")
    assert err.startswith("convoy verify: v1: artifacts: rover/notes.txt does not match SHA256SUMS: ")
    assert len(err.splitlines()) == 1

    assert convoy("verify", TAG, f"--repo={site.root}", "--json") == 1
    data = json.loads(capsys.readouterr().out)
    assert data["tag"] == TAG and data["ok"] is False
    assert [c["ok"] for c in data["checks"]] == [True, True, False, True, True]
    assert data["first_problem"].startswith("artifacts: rover/notes.txt does not match")

    assert convoy("verify", "v9", f"--repo={site.root}") == 2
    assert capsys.readouterr().err.startswith("convoy: error: origin has no tag v9: it is not a release")
    assert convoy("verify", f"--repo={site.root}") == 2
    assert "convoy verify takes one release tag (got none)" in capsys.readouterr().err


def test_the_real_command_line(site):
    """`convoy verify` as installed runs (and finds the checkout from the current directory)."""
    import sys

    proc = subprocess.run([str(Path(sys.executable).parent / "convoy"), "verify", TAG], cwd=site.root,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 5
