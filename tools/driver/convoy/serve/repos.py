"""Which manifest component a forge's repository is: its URLs, compared in a normal form.

    same_repository("https://GitHub.com/acme/messages.git/", "git@github.com:acme/messages")   # True
    components_of(manifest, ["https://github.com/acme/messages.git", ...])   # ("messages",)

A forge names a repository several ways (GitHub: clone_url, ssh_url,
html_url, git_url; GitLab: git_http_url, git_ssh_url, web_url), and a
manifest's `remote` is any one of them. Two URLs are the same repository
when their host (without user or port, in any case) and their path (without
a trailing slash or `.git`, case kept) are the same, whatever the scheme:
`https://github.com/acme/messages`, `ssh://git@github.com/acme/messages.git`
and `git@github.com:acme/messages.git` are one repository. A local path or
`file://` URL is compared by its path. Pure functions: nothing here reads
a file or the network.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Iterable, Optional

from convoy.manifest import Manifest

_SCP = re.compile(r"(?:[^@/:]+@)?(?P<host>[A-Za-z0-9][A-Za-z0-9._-]*):(?P<path>[^/].*|/.+)")


def normal_repository(url: str) -> Optional[str]:
    """`host/path` of a repository URL (see the module docstring); None for
    something that is not a URL or path of a repository."""
    if not isinstance(url, str) or not url.strip() or len(url) > 4096:
        return None
    url = url.strip()
    if "://" in url:
        try:
            parts = urllib.parse.urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            return None
        path = urllib.parse.unquote(parts.path)
    elif url.startswith("/"):
        host, path = "", url
    else:
        match = _SCP.fullmatch(url)
        if match is None:
            return None
        host, path = match.group("host").lower(), match.group("path")
    path = re.sub(r"/+", "/", path).strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")].rstrip("/")
    return f"{host}/{path}" if path else None


def same_repository(a: str, b: str) -> bool:
    first = normal_repository(a)
    return first is not None and first == normal_repository(b)


def components_of(manifest: Manifest, urls: Iterable[str]) -> tuple[str, ...]:
    """The git components whose remote is one of the repository's `urls`, by name."""
    wanted = {n for n in (normal_repository(u) for u in urls) if n}
    return tuple(sorted(name for name, component in manifest.components.items()
                        if component.source == "git" and component.remote
                        and normal_repository(component.remote) in wanted))
