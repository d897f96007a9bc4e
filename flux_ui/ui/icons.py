"""Icon-only buttons (⬅ ➡ ↻ ✕ …) with a tooltip and an accessible name.

Gradio's buttons take no title or aria-label, so a button is marked with two classes and
``assets/labels.js`` turns them into both attributes on the page, including on buttons that
appear later. One helper, so every tab labels its icons the same way.
"""

from __future__ import annotations

ICON_CLASS = "flux-icon"
LABEL_PREFIX = "flux-label:"


def labelled(label: str, *classes: str) -> list[str]:
    """``elem_classes`` for an icon-only button whose title and aria-label are ``label``."""
    if "_" in label or not label.strip():
        raise ValueError(f"an icon label must be words without underscores: {label!r}")
    return [*classes, ICON_CLASS, LABEL_PREFIX + "_".join(label.split())]
