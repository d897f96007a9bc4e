"""Keeping Gradio's per-session set-up cheap.

Gradio copies every block's config, API schemas included, when a session makes its first
call, on the server's event loop: while it does, every other user's page waits. With flux-ui's
~270 blocks that copy is the largest cost a new user adds (bench/RESULTS.md, "app under load").
"""

from __future__ import annotations

from typing import Any

import gradio as gr


def cache_upload_schemas(demo: gr.Blocks) -> int:
    """Give each UploadButton a fixed ``api_info``; returns how many were changed.

    Gradio 6.31's ``UploadButton.api_info`` builds a pydantic JSON schema on every call (the
    base component caches its own), and each new session calls it three times per button:
    about 13 ms per button per session on this project's machines, for a schema that never
    changes after the button is built.
    """
    changed = 0
    for block in demo.blocks.values():
        if isinstance(block, gr.UploadButton):
            schema: dict[str, Any] = block.api_info()
            block.api_info = lambda schema=schema: schema  # type: ignore[method-assign]
            changed += 1
    return changed
