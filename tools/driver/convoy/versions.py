"""Version strings and release tag formats: what makes one valid.

    version_problem("v1.2.3")                   # None: a valid version
    version_problem("1..2")                     # "'1..2' is not a valid version (...)"
    tag_format_problem("v{year}.{month}.{n}")   # None: it makes valid, unique release tags
    tag_format_spec_problem("{n:>99999999}")    # why formatting it could be costly (or None)

A version (a component's `version`, a pin, a release tag) must be safe as a
git ref name. A tag format (`release.tag_format` of the manifest or of
convoy.yaml) is a str.format template over {year}, {month}, {day} and {n};
it must make a valid, bounded tag before anything formats it. The manifest
(convoy.manifest_check), convoy.yaml (convoy.config), the lock (convoy.lock)
and the release tag (convoy.release) share these rules.
"""

from __future__ import annotations

import re
import string
from typing import Optional

from convoy import untrusted

DEFAULT_TAG_FORMAT = "v{year}.{month}.{n}"
_TAG_FIELDS = {"year": 2024, "month": 5, "day": 17, "n": 3}  # sample values, to try a format
MAX_TAG = 100  # characters of a tag format, and of a tag it makes
MAX_FIELD_WIDTH = 20  # of a field's width or precision ({n:03d}, not {n:>20000000000})
# A field's format spec, [[fill]align][sign][#][0][width][grouping][.precision][type], with the types of an int.
_FORMAT_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?#?0?(?P<width>[0-9]*)[,_]?(?:\.(?P<precision>[0-9]*))?[bcdoxXneEfFgG%]?",
                          re.S)
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+/-]*")


def version_problem(version: str) -> Optional[str]:
    """Why `version` is not a git-ref-safe version string, or None if it is."""
    if not _VERSION.fullmatch(version) or ".." in version or version.endswith((".lock", "/")):
        return (
            f"'{version}' is not a valid version (letters, digits and . _ + / -, starting with a letter "
            "or digit; no '..'; not ending in '.lock' or '/')"
        )
    return None


def tag_format_spec_problem(tag_format: str) -> Optional[str]:
    """Why formatting `tag_format` could be costly or fail to parse, or None.

    Looks at the text and at each field's format spec before anything is
    formatted: at most MAX_TAG characters, no nested fields, no width or
    precision above MAX_FIELD_WIDTH. Formatting a format that passes makes a
    string of at most a few thousand characters, whatever the field values.
    """
    shown = untrusted.printable(tag_format)
    if len(tag_format) > MAX_TAG:
        return f"'{shown[:MAX_TAG]}...' is longer than {MAX_TAG} characters"
    try:
        parsed = list(string.Formatter().parse(tag_format))
    except ValueError as e:
        return f"'{shown}' is not a valid format ({e})"
    for _, name, spec, _ in parsed:
        if name is None or not spec:
            continue
        name = untrusted.printable(name)
        if "{" in spec or "}" in spec:
            return f"'{shown}' has a field inside the format of {{{name}}} (nested fields are not supported)"
        match = _FORMAT_SPEC.fullmatch(spec)
        if match is None:
            return f"'{shown}' has an invalid format ':{untrusted.printable(spec)}' for {{{name}}}"
        for size in (match.group("width"), match.group("precision")):
            if size and (len(size) > 2 or int(size) > MAX_FIELD_WIDTH):
                return (f"'{shown}' gives {{{name}}} a width or precision of {size[:12]}"
                        f"{'...' if len(size) > 12 else ''} (at most {MAX_FIELD_WIDTH})")
    return None


def tag_format_problem(tag_format: str) -> Optional[str]:
    """Why `tag_format` cannot make release tags, or None."""
    problem = tag_format_spec_problem(tag_format)
    if problem:
        return problem
    shown = untrusted.printable(tag_format)
    fields = {f for _, f, _, _ in string.Formatter().parse(tag_format) if f is not None}
    unknown = fields - set(_TAG_FIELDS)
    if unknown:
        names = ", ".join("{" + untrusted.printable(f) + "}" for f in sorted(unknown))
        return f"'{shown}' uses unknown fields {names} (only {{year}}, {{month}}, {{day}}, {{n}} exist)"
    if "n" not in fields:
        return f"'{shown}' has no {{n}} (the release number that keeps tags unique)"
    try:
        sample = tag_format.format(**_TAG_FIELDS)
    except (ValueError, IndexError, KeyError, TypeError) as e:
        return f"'{shown}' is not a valid format ({e})"
    if len(sample) > MAX_TAG:
        return f"'{shown}' gives a tag longer than {MAX_TAG} characters"
    if version_problem(sample):
        return f"'{shown}' gives '{untrusted.printable(sample)}', which is not a valid git tag"
    return None
