"""HTML built from elements, every text and attribute value escaped: the pages' only way to write markup.

    el("td", {"class": "what"}, request["version"])          # <td class="what">v1.6.0&lt;script&gt;...</td>
    el("a", {"href": f"/requests/{rid}"}, "#", str(rid))
    page = document("convoy", body, scripts=["/static/page.js"])

`el` escapes every string child and every attribute value
(`html.escape(..., quote=True)`); only what `el` (or `document`) itself
returned, a `Markup`, goes in as markup. So a version, a reason, a log line
or a note from a webhook is text wherever it lands, and a page cannot be
written any other way. Tag and attribute names are this code's constants,
never data. `token` turns a state into a safe CSS class word.
"""

from __future__ import annotations

import html
import re
from typing import Iterable, Mapping, Optional, Union

Child = Union["Markup", str, int, float, None, Iterable]

VOID = {"meta", "link", "br", "img", "input"}
_NAME = re.compile(r"[a-z][a-z0-9-]*")


class Markup(str):
    """HTML that `el` made: its escaping is done."""


def el(tag: str, attrs: Optional[Mapping[str, object]] = None, *children: Child) -> Markup:
    """`<tag attrs>children</tag>`: strings escaped, Markup kept, None and False left out, lists flattened."""
    assert _NAME.fullmatch(tag), tag
    parts = [f"<{tag}"]
    for name, value in (attrs or {}).items():
        assert _NAME.fullmatch(name), name
        if value is None or value is False:
            continue
        parts.append(f" {name}" if value is True else f' {name}="{html.escape(str(value), quote=True)}"')
    parts.append(">")
    if tag in VOID:
        assert not children, f"<{tag}> has no children"
        return Markup("".join(parts))
    parts.extend(_children(children))
    parts.append(f"</{tag}>")
    return Markup("".join(parts))


def _children(children: Iterable[Child]) -> Iterable[str]:
    for child in children:
        if child is None or child is False:
            continue
        if isinstance(child, Markup):
            yield child
        elif isinstance(child, (str, int, float)):
            yield html.escape(str(child), quote=True)
        else:
            yield from _children(child)


def token(value: object) -> str:
    """A state (or any value) as one CSS class word: lower-case letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", str(value).lower())[:40] or "none"


def document(title: str, body: Markup, *, body_attrs: Optional[Mapping[str, object]] = None,
             scripts: Iterable[str] = (), styles: Iterable[str] = ()) -> str:
    """A whole page: no inline script or style (the Content-Security-Policy forbids them)."""
    head = el("head", None,
              el("meta", {"charset": "utf-8"}),
              el("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
              el("title", None, title),
              [el("link", {"rel": "stylesheet", "href": href}) for href in styles],
              [el("script", {"src": src, "defer": True}) for src in scripts])
    return "<!doctype html>\n" + el("html", {"lang": "en"}, head, el("body", body_attrs, body)) + "\n"
