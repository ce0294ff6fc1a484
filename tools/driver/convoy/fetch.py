"""Downloading an archive and looking inside it.

`download` streams an http(s):// or file:// URL (checked with
untrusted.url_problem; a redirect may only lead to http(s)://) into a
temporary file while hashing it; `archive_names` lists the entries of a tar
(any compression Python reads) or zip archive. Both raise FetchError with a
one-line reason.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from convoy import untrusted

DEFAULT_TIMEOUT = 120.0  # seconds without a byte from the server
_CHUNK = 1 << 20


class FetchError(Exception):
    """A download failed or a file is not a readable archive."""


@dataclass(frozen=True)
class Download:
    """A downloaded file and the sha256 (lowercase hex) of its bytes."""

    path: Path
    sha256: str


def download(url: str, directory: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT) -> Download:
    """Downloads `url` into a new temporary file in `directory`.

    The caller owns (and removes) the file. Raises FetchError, leaving no
    file behind, if the URL is refused or cannot be read.
    """
    problem = untrusted.url_problem(url)
    if problem:
        raise FetchError(f"the url {problem}")
    fd, name = tempfile.mkstemp(dir=directory, prefix="download-")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, _OPENER.open(url, timeout=timeout) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as e:
        os.unlink(name)
        raise FetchError(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        os.unlink(name)
        raise FetchError(_reason(e.reason)) from None
    except (OSError, ValueError) as e:  # timeouts, resets, malformed URLs
        os.unlink(name)
        raise FetchError(_reason(e)) from None
    return Download(Path(name), digest.hexdigest())


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to http(s):// (urllib's default also allows ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if untrusted.url_problem(newurl, untrusted.WEBHOOK_SCHEMES):
            raise urllib.error.HTTPError(newurl, code, f"redirect to a refused url ({msg})", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


def archive_names(path: str | os.PathLike[str]) -> list[str]:
    """Returns the entry names of the tar or zip archive at `path`, without a
    leading "./" or trailing "/"."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as archive:
                names = archive.getnames()
        else:
            raise FetchError("not a tar or zip archive")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise FetchError(f"cannot read the archive ({_reason(e)})") from None
    return [_normalize(name) for name in names]


def _normalize(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _reason(error: object) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def has_entries_under(names: list[str], strip_prefix: str) -> bool:
    """Whether archive entry `names` hold anything under the directory `strip_prefix`."""
    prefix = strip_prefix.strip("/")
    return any(name == prefix or name.startswith(prefix + "/") for name in names)
