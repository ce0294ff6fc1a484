"""convoy.signing with the real ssh-keygen and git: sign, verify, tamper, refuse."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from convoy import signing
from convoy.errors import ConvoyError

from tests.verify import PRINCIPAL, allowed_line, git, make_key


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(the release key, a stranger's key, an allowed signers file trusting the release key only)."""
    key = make_key(tmp_path / "keys", "release")
    stranger = make_key(tmp_path / "keys", "stranger")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(allowed_line(PRINCIPAL, key))
    return key, stranger, allowed


@pytest.fixture
def statement(tmp_path: Path) -> Path:
    path = tmp_path / "release" / "provenance.intoto.json"
    path.parent.mkdir()
    path.write_bytes(b'{"_type": "https://in-toto.io/Statement/v1"}\n')
    return path


def test_a_signed_file_verifies(keys, statement):
    key, _, allowed = keys
    signature = signing.sign_file(key, statement)
    assert signature == statement.with_name("provenance.intoto.json.sig")
    assert signature.read_text().startswith("-----BEGIN SSH SIGNATURE-----")
    assert signing.verify_file(allowed, PRINCIPAL, statement, signature) is None
    signing.sign_file(key, statement)  # signing again replaces the signature, without a question
    assert signing.verify_file(allowed, PRINCIPAL, statement, signature) is None


def test_a_changed_file_does_not_verify(keys, statement):
    key, _, allowed = keys
    signature = signing.sign_file(key, statement)
    statement.write_bytes(statement.read_bytes().replace(b"v1", b"v2"))
    problem = signing.verify_file(allowed, PRINCIPAL, statement, signature)
    assert problem.startswith(f"provenance.intoto.json.sig is not a signature of provenance.intoto.json by "
                              f"{PRINCIPAL} (a key in {allowed}): ")


@pytest.mark.parametrize("case", ["stranger", "principal", "namespace", "garbage", "missing"])
def test_a_signature_that_is_not_the_release_keys(keys, statement, case):
    key, stranger, allowed = keys
    signature = signing.sign_file(stranger if case == "stranger" else key, statement,
                                  **({"namespace": "file"} if case == "namespace" else {}))
    if case == "garbage":
        signature.write_text("not a signature\n")
    if case == "missing":
        signature.unlink()
    principal = "someone@example.com" if case == "principal" else PRINCIPAL
    problem = signing.verify_file(allowed, principal, statement, signature)
    if case == "missing":
        assert problem == "provenance.intoto.json.sig is missing: provenance.intoto.json is not signed"
    else:
        assert problem.startswith("provenance.intoto.json.sig is not a signature of provenance.intoto.json by ")


def test_verify_without_the_allowed_signers_file(keys, statement, tmp_path):
    key, _, _ = keys
    signature = signing.sign_file(key, statement)
    problem = signing.verify_file(tmp_path / "nowhere", PRINCIPAL, statement, signature)
    assert problem == (f"the allowed signers file {tmp_path / 'nowhere'} does not exist; fix "
                       "release.signing.allowed_signers in convoy.yaml (a line '<principal> <public key>')")


def test_a_key_others_can_read_is_refused(keys, statement):
    key, _, _ = keys
    key.chmod(0o644)
    with pytest.raises(ConvoyError) as info:
        signing.sign_file(key, statement)
    assert str(info.value) == (f"the release signing key {key} is open to other users (mode 0644); make it "
                               f"private: chmod 600 {key}")
    assert not statement.with_name("provenance.intoto.json.sig").exists()


def test_a_missing_key_is_refused(statement, tmp_path):
    missing = tmp_path / "no-key"
    with pytest.raises(ConvoyError) as info:
        signing.sign_file(missing, statement)
    assert str(info.value) == (f"the release signing key {missing} cannot be read (No such file or directory); "
                               f"create one with ssh-keygen -t ed25519 -N '' -f {missing}, or fix release.signing.key "
                               "in convoy.yaml")


def test_a_key_with_a_passphrase_is_refused_without_a_prompt(statement, tmp_path):
    key = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(key)], check=True, timeout=30)
    with pytest.raises(ConvoyError) as info:
        signing.sign_file(key, statement)
    message = str(info.value)
    assert message.startswith(f"cannot sign provenance.intoto.json with the release signing key {key}: ")
    assert message.endswith(f"it must be an SSH private key without a passphrase (check with: ssh-keygen -y -f {key})")
    assert "\n" not in message


def test_tags_signed_and_verified_with_git(keys, git_repo):
    key, stranger, allowed = keys
    repo = git_repo("integration")
    git(repo.path, *signing.git_sign_args(key), "tag", "-s", "-m", "Release v1", "v1")
    git(repo.path, *signing.git_sign_args(stranger), "tag", "-s", "-m", "Release v2", "v2")
    git(repo.path, "tag", "-a", "-m", "Release v3", "v3")
    assert signing.verify_tag(repo.path, "v1", allowed) is None
    assert signing.verify_tag(repo.path, "refs/tags/v1", allowed, principal=PRINCIPAL) is None
    assert signing.verify_tag(repo.path, "v1", allowed, principal="other") == (
        f"tag v1 is signed, but not by other (see {allowed})")
    assert signing.verify_tag(repo.path, "v2", allowed) == f"tag v2 is signed by a key that is not in {allowed}"
    assert signing.verify_tag(repo.path, "refs/x/v3", allowed, shown="v3").startswith("the signature of tag v3 ")
    assert signing.verify_tag(repo.path, "v3", allowed) == "tag v3 is not signed"


def test_git_sign_args_and_resolve_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert signing.git_sign_args(Path("/keys/release")) == [
        "-c", "gpg.format=ssh", "-c", "user.signingkey=/keys/release"]
    assert signing.resolve_path("~/.ssh/convoy_release", tmp_path / "checkout") == tmp_path / "home/.ssh/convoy_release"
    assert signing.resolve_path(".convoy/allowed_signers", tmp_path / "checkout") == (
        tmp_path / "checkout/.convoy/allowed_signers")
    assert signing.resolve_path("/etc/allowed", tmp_path / "checkout") == Path("/etc/allowed")
