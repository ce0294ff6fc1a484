"""SSH signatures of a release: its tag (git's own ssh format) and its provenance statement.

    key = resolve_path(config.release.signing.key, checkout)          # "~/.ssh/convoy_release" -> absolute
    sign_file(key, staged / "provenance.intoto.json")                # writes provenance.intoto.json.sig
    git(["tag", ...]) with git_sign_args(key) before "tag -s"       # -c gpg.format=ssh -c user.signingkey=<key>

    allowed = resolve_path(config.release.signing.allowed_signers, checkout)
    verify_file(allowed, "release@example.com", statement, statement_sig)   # None, or one line why not
    verify_tag(checkout, "refs/tags/v2026.12.1", allowed)                   # None, or one line why not

Only OpenSSH's `ssh-keygen -Y sign/verify` and `git verify-tag` do the
cryptography (namespace SIGNING_NAMESPACE for the statement, git's "git" for
tags). The signing key is an unencrypted private key file readable by its
owner alone; ssh-keygen runs without a terminal and never asks for a
passphrase. Failing to sign is a ConvoyError; failing to verify is a
returned line, for `convoy verify` to report.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Optional

from convoy import gitutil
from convoy.errors import ConvoyError
from convoy.release_layout import SIGNING_NAMESPACE
from convoy.untrusted import printable

TIMEOUT = 60.0  # seconds, per ssh-keygen or git call
SIGNATURE_SUFFIX = ".sig"
# ssh-keygen never prompts: no terminal (a new session), no askpass program.
_ENV = {"SSH_ASKPASS_REQUIRE": "never", "DISPLAY": ""}


def resolve_path(value: str, checkout: Path) -> Path:
    """A path of release.signing: `~` expanded, relative to the integration checkout."""
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else Path(checkout) / path


def sign_file(key: Path, path: Path, namespace: str = SIGNING_NAMESPACE) -> Path:
    """Signs `path` with the SSH private key `key`; returns the signature (`path` + ".sig").

    ConvoyError, naming the key and what to do, when the key is missing,
    readable by others, encrypted or not a key, or ssh-keygen cannot run."""
    key, path = Path(key), Path(path)
    shown = printable(key)
    try:
        mode = key.stat().st_mode
    except OSError as e:
        raise ConvoyError(f"the release signing key {shown} cannot be read ({e.strerror}); create one with "
                          f"ssh-keygen -t ed25519 -N '' -f {shown}, or fix release.signing.key in convoy.yaml"
                          ) from None
    if not stat.S_ISREG(mode):
        raise ConvoyError(f"the release signing key {shown} is not a file; fix release.signing.key in convoy.yaml")
    if mode & 0o077:
        raise ConvoyError(f"the release signing key {shown} is open to other users (mode {stat.S_IMODE(mode):04o}); "
                          f"make it private: chmod 600 {shown}")
    signature = path.with_name(path.name + SIGNATURE_SUFFIX)
    signature.unlink(missing_ok=True)  # ssh-keygen would ask before overwriting it
    result = _ssh_keygen(["-Y", "sign", "-f", os.fspath(key), "-n", namespace, os.fspath(path)])
    if result.returncode != 0 or not signature.is_file():
        raise ConvoyError(f"cannot sign {printable(path.name)} with the release signing key {shown}: "
                          f"{_detail(result)}; it must be an SSH private key without a passphrase "
                          f"(check with: ssh-keygen -y -f {shown})")
    return signature


def verify_file(allowed_signers: Path, principal: str, path: Path, signature: Path,
                namespace: str = SIGNING_NAMESPACE) -> Optional[str]:
    """None if `signature` is `principal`'s signature of `path` (a key of
    theirs in `allowed_signers`, in `namespace`); else one line saying why not."""
    allowed_signers, path, signature = Path(allowed_signers), Path(path), Path(signature)
    if not signature.is_file():
        return f"{printable(signature.name)} is missing: {printable(path.name)} is not signed"
    if not allowed_signers.is_file():
        return _no_allowed_signers(allowed_signers)
    try:
        with path.open("rb") as data:
            result = _ssh_keygen(["-Y", "verify", "-f", os.fspath(allowed_signers), "-I", principal,
                                  "-n", namespace, "-s", os.fspath(signature)], stdin=data)
    except OSError as e:
        return f"cannot read {printable(path.name)} ({e.strerror})"
    if result.returncode != 0:
        return (f"{printable(signature.name)} is not a signature of {printable(path.name)} by {printable(principal)} "
                f"(a key in {printable(allowed_signers)}): {_detail(result)}")
    return None


def git_sign_args(key: Path) -> list[str]:
    """The git options, before `tag -s`, that sign a tag with the SSH key `key`."""
    return ["-c", "gpg.format=ssh", "-c", f"user.signingkey={os.path.abspath(os.fspath(key))}"]


def verify_tag(repo: Path, tag: str, allowed_signers: Path, *, principal: Optional[str] = None,
               shown: Optional[str] = None) -> Optional[str]:
    """None if the tag `tag` (a name or ref of `repo`) carries an SSH signature
    by a key of `allowed_signers` (`principal`'s, if given); else one line
    why not, which calls the tag `shown` (default: its name)."""
    allowed_signers = Path(allowed_signers)
    if not allowed_signers.is_file():
        return _no_allowed_signers(allowed_signers)
    shown = printable(shown or tag.removeprefix("refs/tags/"))
    result = gitutil.run(["-c", f"gpg.ssh.allowedSignersFile={os.path.abspath(allowed_signers)}",
                          "verify-tag", "--", tag], cwd=repo, check=False, timeout=TIMEOUT)
    output = result.stderr + result.stdout
    if result.returncode != 0:
        if "no signature found" in output:
            return f"tag {shown} is not signed"
        if "No principal matched" in output:
            return f"tag {shown} is signed by a key that is not in {printable(allowed_signers)}"
        detail = _first_line(output) or "git verify-tag failed"
        return f"the signature of tag {shown} does not verify: {printable(detail)}"
    if principal is not None and f" signature for {principal} with " not in output:
        return f"tag {shown} is signed, but not by {printable(principal)} (see {printable(allowed_signers)})"
    return None


def _ssh_keygen(args: list[str], stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["ssh-keygen", *args], stdin=stdin, capture_output=True, text=True, errors="replace",
                              env={**os.environ, **_ENV}, timeout=TIMEOUT, start_new_session=True, check=False)
    except FileNotFoundError:
        raise ConvoyError("ssh-keygen is not installed; install OpenSSH's client (e.g. apt-get install "
                          "openssh-client)") from None
    except subprocess.TimeoutExpired:
        raise ConvoyError(f"ssh-keygen {args[0]} {args[1]} did not finish in {TIMEOUT:g} s; check the key and "
                          "allowed signers files") from None


def _detail(result: subprocess.CompletedProcess) -> str:
    lines = [line.removeprefix("Enter passphrase: ").strip() for line in (result.stderr + result.stdout).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Could not verify signature")]
    return printable(lines[0] if lines else f"ssh-keygen exited with status {result.returncode}")


def _no_allowed_signers(path: Path) -> str:
    return (f"the allowed signers file {printable(path)} does not exist; fix release.signing.allowed_signers in "
            "convoy.yaml (a line '<principal> <public key>')")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
