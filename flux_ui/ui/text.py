"""One rule for text flux-ui did not write: it is inert on the page.

Gradio renders ``gr.Markdown`` with marked (GitHub-flavoured: raw HTML, images, links, bare URLs and
e-mail addresses made into links, ``$$…$$`` LaTeX) and sanitises the HTML afterwards, which still lets
images, links and forms through. So every prompt, instruction, metadata value, file name and error
message (errors quote what they refuse) goes through :func:`inert` before it joins flux-ui's own
Markdown, and flux-ui's bold labels and code spans stay outside it; a path shown as code goes through
:func:`inert_code`. ``gr.HTML`` and toasts (``gr.Info``, ``gr.Warning``, ``gr.Error``) render HTML,
not Markdown: :func:`inert_html`.

Gallery captions, component labels and textbox values are plain text in Gradio (escaped by the
page): they take the text as it is, and escaping them would show the escapes.
"""

from __future__ import annotations

import re

_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
# Backslash-escaped, which CommonMark shows as the character itself: what starts emphasis (* _ ~), code
# (`), an image or link ([ ]), a heading (#), a list (+ - and . or ) after a number), a table (|), a
# setext heading (=), LaTeX ($), and, by breaking "http:", "www." and "a@b.c", what GFM would turn into
# a link on its own (: . @). Commas, question marks and the like stay as they are.
_MARKDOWN = {c: "\\" + c for c in "\\`*_~[]()#+-.!|=$:@{}"}
_INERT = str.maketrans({**_MARKDOWN, **_HTML})
_INERT_HTML = str.maketrans(_HTML)


def inert(text: object) -> str:
    """``text`` as Markdown that renders to exactly these characters: no element, no link, no fetch."""
    return str(text).translate(_INERT)


def inert_html(text: object) -> str:
    """``text`` for a place that renders HTML (gr.HTML, toasts): every tag shown as text."""
    return str(text).translate(_INERT_HTML)


def inert_code(text: object) -> str:
    """``text`` as a Markdown code span: shown verbatim (a path, say), however many backticks it holds.

    Gradio's LaTeX block (``$$…$$``) is found before code spans and emits its content as raw HTML, so
    text holding ``$$`` is shown escaped instead, outside a code span.
    """
    value = " ".join(str(text).split("\n"))
    if "$$" in value:
        return inert(value)
    fence = "`" * (max(map(len, re.findall("`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"
