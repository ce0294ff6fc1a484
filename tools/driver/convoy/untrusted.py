"""Checks for values convoy does not trust: where they enter, and where they leave.

A manifest, a lock, a `convoy submit` argument or a webhook body is data
written by someone who may not be allowed to run commands on the CI host.
Every such value is checked here before it reaches git, Bazel, a URL opener,
the store or a terminal:

    problem = remote_problem(remote)           # None, or why it is refused
    problem = url_problem(url, ARCHIVE_SCHEMES)
    problem = text_problem(requested_by)        # control characters
    problem = local_path_problem(path)          # inside the integration repository
    COMMIT_ID.fullmatch(commit)                 # a full commit id (40 lowercase hex digits)
    print(printable(request.requested_by))      # escaped for a terminal
    event_data["url"] = redact_userinfo(url)    # no password in an event

Each `*_problem` function returns None for an acceptable value, or a short
reason ("starts with '-'") that the caller puts into its own one-line error
with the fix. `GIT_ENV` is the environment every git call gets: only the
transports convoy means (never `ext::` or `fd::`).

See docs/security.md for what convoy trusts and what it never does.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Optional

# The transports a remote may use. Everything else (ext, fd, and any remote
# helper "<transport>::<address>") is refused by git itself with this set.
ALLOWED_PROTOCOLS = ("https", "http", "ssh", "git", "file")
GIT_ENV = {"GIT_ALLOW_PROTOCOL": ":".join(ALLOWED_PROTOCOLS)}

ARCHIVE_SCHEMES = ("https", "http", "file")  # archives, downloaded by Python and by Bazel
WEBHOOK_SCHEMES = ("https", "http")

MAX_URL = 4096  # characters; longer is not a remote anyone types

# A full git commit id, as convoy stores and compares it: 40 lowercase hex
# digits (never an abbreviation, a ref or an option). The manifest, the lock
# and `convoy submit --commit` check theirs with it.
COMMIT_ID = re.compile(r"[0-9a-f]{40}")

# C0 controls, DEL, C1 controls, and the Unicode controls that reorder or hide
# text on a terminal (bidi overrides and isolates, zero-width joiners aside).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_HELPER = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*::")
# git's scp-like syntax: [user@]host:path, with no slash before the colon.
_SCP = re.compile(r"(?:(?P<user>[A-Za-z0-9._~%+-]+)@)?(?P<host>[A-Za-z0-9][A-Za-z0-9._-]*|\[[0-9A-Fa-f:.]+\]):"
                  r"(?P<path>[^/].*|/.+)")


def control_characters(text: str) -> list[str]:
    """The control characters in `text`, escaped (e.g. ['\\n', '\\x1b'])."""
    return sorted({_escape(m.group()) for m in _CONTROL.finditer(text)})


def text_problem(text: str) -> Optional[str]:
    """Why free text (a name, a requester, a reason) is refused, or None."""
    found = control_characters(text)
    if found:
        return f"contains control characters ({', '.join(found)})"
    return None


def printable(text: object) -> str:
    """`text` with every control character escaped, safe to print on a
    terminal or in a one-line message (a newline shows as \\n)."""
    return _CONTROL.sub(lambda m: _escape(m.group()), str(text))


def remote_problem(remote: str) -> Optional[str]:
    """Why `remote` is not a git remote convoy will fetch from, or None.

    Accepted: https://, http://, ssh://, git://, file:// URLs, scp-like
    `user@host:path`, and absolute local paths. Refused: a leading '-' (git
    would read an option), control characters, remote helpers (`ext::`,
    `fd::`, any `<transport>::`), other schemes, relative paths.
    """
    problem = _form_problem(remote)
    if problem:
        return problem
    if remote.startswith("-"):
        return "starts with '-' (git would read it as an option)"
    if remote != remote.strip():
        return "has leading or trailing white space"
    scheme = _SCHEME.match(remote)
    if scheme:
        name = scheme.group(1).lower()
        if name not in ALLOWED_PROTOCOLS:
            return f"uses the scheme '{name}://' (allowed: {', '.join(p + '://' for p in ALLOWED_PROTOCOLS)})"
        rest = remote[scheme.end():]
        if name != "file" and (not rest or rest.startswith(("/", "-"))):
            return "has no host"
        user, _, host = rest.split("/", 1)[0].rpartition("@")
        if name != "file" and (user.startswith("-") or host.startswith("-") or not host):
            return "has a user or host starting with '-' (ssh would read it as an option)"
        if name == "file" and not rest.startswith("/"):
            return "is a file:// URL without an absolute path (write file:///path/to/repo.git)"
        return None
    if _HELPER.match(remote):
        return f"uses a git remote helper ('{remote.split('::', 1)[0]}::'), which can run commands"
    if remote.startswith("/"):
        return None
    scp = _SCP.fullmatch(remote)
    if scp and not scp.group("path").startswith("-"):
        return None
    return ("is neither a URL (https://, ssh://, git://, file://), scp-like user@host:path, nor an absolute path "
            "(a relative path would mean something else in every checkout)")


def url_problem(url: str, schemes: tuple[str, ...] = ARCHIVE_SCHEMES) -> Optional[str]:
    """Why `url` is not a URL of one of `schemes` that convoy will open, or None."""
    problem = _form_problem(url)
    if problem:
        return problem
    if any(c.isspace() for c in url):
        return "contains white space (percent-encode it as %20)"
    scheme = _SCHEME.match(url)
    if not scheme or scheme.group(1).lower() not in schemes:
        return f"must start with {', '.join(s + '://' for s in schemes)}"
    parsed = urllib.parse.urlsplit(url)
    if scheme.group(1).lower() == "file":
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            return "is a file:// URL without an absolute path (write file:///path/to/file)"
    elif not parsed.hostname:
        return "has no host"
    return None


def local_path_problem(path: str) -> Optional[str]:
    """Why `path` (of a `local` component, relative to the integration
    repository) is refused, or None: it must stay inside that repository,
    so it is relative and never climbs above it with '..'."""
    problem = _form_problem(path)
    if problem:
        return problem
    if path.startswith("/"):
        return "is absolute (it must be relative to the integration repository)"
    depth = 0
    for part in path.split("/"):
        depth += -1 if part == ".." else 0 if part in ("", ".") else 1
        if depth < 0:
            return "leaves the integration repository ('..')"
    return None


def redact_userinfo(url: str) -> str:
    """`url` without a password or token in its userinfo
    (https://user:secret@host/x -> https://user:***@host/x; a lone
    token before '@' becomes ***)."""
    scheme = _SCHEME.match(url) if isinstance(url, str) else None
    if not scheme:
        return url
    start = scheme.end()
    end = len(url)
    for stop in "/?#":
        index = url.find(stop, start)
        if index != -1:
            end = min(end, index)
    authority = url[start:end]
    if "@" not in authority:
        return url
    userinfo, host = authority.rsplit("@", 1)
    user, has_password, _ = userinfo.partition(":")
    shown = f"{user}:***" if has_password else "***"
    return f"{url[:start]}{shown}@{host}{url[end:]}"


def _form_problem(value: object) -> Optional[str]:
    """What every remote, URL and path must be: a non-empty string of at
    most MAX_URL characters without control characters."""
    if not isinstance(value, str) or not value:
        return "is empty"
    if len(value) > MAX_URL:
        return f"is longer than {MAX_URL} characters"
    found = control_characters(value)
    if found:
        return f"contains control characters ({', '.join(found)})"
    return None


def _escape(char: str) -> str:
    code = ord(char)
    if char == "\n":
        return "\\n"
    if char == "\r":
        return "\\r"
    if char == "\t":
        return "\\t"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"
