"""Text flux-ui did not write is inert on the page: hostile prompts, instructions, metadata values and the
error messages that quote them render, with Gradio's own Markdown renderer, to exactly their characters and
to no element, link or fetch; flux-ui's own bold labels and code spans still render.

Gradio's renderer is the marked set-up in its server build, run with node (GFM: raw HTML, images, links,
bare URLs and e-mail addresses linkified, $$ LaTeX, mermaid blocks), before its sanitiser: stricter than
the page. Without node, CommonMark (markdown-it) renders and the source is checked for what GFM would
linkify. The browser test at the end runs a hostile Kontext edit in Chromium and watches its requests.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from gradio.utils import get_upload_folder

from app_fixtures import AppUnderTest
from conftest import SAMPLES, solid_image
from flux_ui.client.core import ProgressEvent
from flux_ui.errors import ValidationError
from flux_ui.history import Entry
from flux_ui.images import embed_metadata
from flux_ui.runtime import Runtime
from flux_ui.tally import Tally
from flux_ui.ui import (
    compare_view,
    handlers,
    history_listing,
    history_reuse,
    kontext_trail,
    progress,
    references,
)
from flux_ui.ui.common import TabHandle, error_text
from flux_ui.ui.compare_view import Blindness
from flux_ui.ui.kontext_edit import EditDone, done_status, handle_kontext
from flux_ui.ui.text import inert, inert_code, inert_html

PIXEL = "http://127.0.0.1:9/"
HOSTILE = [
    f"<img src={PIXEL}pixel>",
    "<form action=//evil><input name=pw></form>",
    f"![x]({PIXEL}p.png)",
    "[click](javascript:alert(1))",
    "<script>alert(1)</script>",
    "**bold** _em_ ~~gone~~ `code`",
    f"<{PIXEL}auto> {PIXEL}bare www.evil.example pw@evil.example",
    "$$\\href{javascript:alert(1)}{x}$$",
    "# heading\n> quote\n- item\n1. one\n\n---",
    "| a | b |\n|---|---|\n| c | d |",
    "```mermaid\ngraph TD; A-->B\n```",
    "&lt;img src=x&gt; &amp; \\*escaped\\*",
    "<svg onload=alert(1)><iframe src=//evil></iframe>",
]
#: What flux-ui's own Markdown renders to; anything else came from the text.
OWN_TAGS = {"p", "strong", "em", "ul", "li", "code", "br", "table", "thead", "tbody", "tr", "th", "td"}
OWN_ATTRIBUTES = {"align"}
KONTEXT = "FLUX.1-Kontext-pro"


# --- rendering as Gradio does -----------------------------------------------------------------

RUNNER = """
import { readFileSync } from 'node:fs';
import { makeMarked } from './marked.mjs';
const sources = JSON.parse(readFileSync(0, 'utf8'));
const md = makeMarked({header_links: false, line_breaks: false,
                       latex_delimiters: [{left: '$$', right: '$$', display: true}]});
const out = [];
for (const source of sources) out.push(await md.parse(source));
console.log(JSON.stringify(out));
"""


def gradio_marked(folder: Path) -> Path | None:
    """A runner for the marked instance Gradio's Markdown component builds, or None if not reachable."""
    chunks = Path(gr.__file__).parent / "templates" / "node" / "build" / "server" / "chunks"
    found = sorted(chunks.glob("markdown-code-*.js"))
    if not shutil.which("node") or not found:
        return None
    source = found[0].read_text()
    maker = re.search(r"function (\w+)\(\{header_links:", source)
    exports = re.search(r"export \{([^}]*)\};", source)
    if not maker or not exports:
        return None
    source = re.sub(r"""((?:from|import)\s*)(['"`])\./""", lambda m: f"{m[1]}{m[2]}{chunks.as_uri()}/", source)
    source = source.replace(exports[0], f"export {{{exports[1]}, {maker[1]} as makeMarked}};")
    (folder / "marked.mjs").write_text(source)
    (folder / "run.mjs").write_text(RUNNER)
    return folder / "run.mjs"


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> Callable[[list[str]], list[str]]:
    runner = gradio_marked(tmp_path_factory.mktemp("marked"))
    if runner is None:
        from markdown_it import MarkdownIt

        commonmark = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")
        return lambda sources: [commonmark.render(s) + linkified(s) for s in sources]

    def run(sources: list[str]) -> list[str]:
        done = subprocess.run(["node", str(runner)], input=json.dumps(sources), capture_output=True, text=True,
                              timeout=60, check=True, cwd=runner.parent)
        return json.loads(done.stdout)

    return run


def linkified(source: str) -> str:
    """What GFM alone would make a link of, as a fake element (for the markdown-it fallback)."""
    bare = re.search(r"(?:https?|ftp)://|www\.|[\w.+-]+@[\w-]+\.\w", re.sub(r"`[^`]*`", "", source))
    return "<a>" if bare else ""


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> Elements:
    elements = Elements()
    elements.feed(html)
    return elements


def squeeze(text: str) -> str:
    return " ".join(text.split())


def assert_inert(render: Callable[[list[str]], list[str]], shown: list[tuple[str, str, str | None]]) -> None:
    """Each (where, Markdown, text it must show) renders to flux-ui's own elements only, and shows the text."""
    for (where, markdown, text), html in zip(shown, render([m for _, m, _ in shown]), strict=True):
        elements = parsed(html)
        foreign = [(t, a) for t, a in elements.tags if t not in OWN_TAGS or set(a) - OWN_ATTRIBUTES]
        assert not foreign, f"{where}: {foreign} in {html!r} from {markdown!r}"
        assert "127.0.0.1:9" not in "".join(str(a) for _, a in elements.tags), where
        if text is not None:
            assert squeeze(text) in squeeze("".join(elements.text)), f"{where}: {text!r} not shown in {html!r}"


# --- the helper itself ------------------------------------------------------------------------

def test_inert_text_renders_to_exactly_its_characters(render: Callable[[list[str]], list[str]]) -> None:
    assert_inert(render, [(f"inert {i}", inert(h), h) for i, h in enumerate(HOSTILE)])
    assert_inert(render, [(f"code {i}", inert_code(h), " ".join(h.split("\n"))) for i, h in enumerate(HOSTILE)])
    assert_inert(render, [("backticks", inert_code("a `` b ` c"), "a `` b ` c")])


def test_inert_html_and_plain_places() -> None:
    assert inert_html("<b>&'\"") == "&lt;b&gt;&amp;&#39;&quot;"
    assert inert("a, b; c? 100%") == "a, b; c? 100%"  # prose punctuation stays readable


def test_flux_uis_own_formatting_still_renders(render: Callable[[list[str]], list[str]]) -> None:
    step = kontext_trail.Step("/x.png", "d", "**not bold**")
    html = render([kontext_trail.trail_text([kontext_trail.Step("/o.png", "o"), step], 1),
                   history_listing.details_of(entry(prompt="x"), "Text to image")])
    trail, details = parsed(html[0]), parsed(html[1])
    assert ("strong", {}) in trail.tags and "**not bold**" in "".join(trail.text)
    assert [t for t, _ in trail.tags].count("strong") == 1  # "input now", not the instruction
    assert ("strong", {}) in details.tags and ("code", {}) in details.tags


# --- every place such text reaches the page -----------------------------------------------------

def entry(prompt: str = "a fox", model: str = "FLUX.2-pro", settings: dict[str, Any] | None = None,
          path: str = "/out/2026-01-01/x.png") -> Entry:
    return Entry("x", 0.0, "text-to-image", model, prompt, 7, 64, 64, "png", Path(path), settings or {})


def event(demo: gr.Blocks, name: str) -> Any:
    return next(f for f in demo.fns.values() if f.api_name == name or getattr(f.fn, "__name__", "") == name)


async def status_of(demo: gr.Blocks, name: str, status_id: str, **values: Any) -> str:
    """The status a run event shows, with these inputs (by elem_id) and the others as the page has them."""
    fn = event(demo, name)
    args = [values.get(str(c.elem_id), getattr(c, "value", None)) for c in fn.inputs]
    outputs = [out async for out in fn.fn(*args)]
    return outputs[-1][[c.elem_id for c in fn.outputs].index(status_id)]


@pytest.mark.asyncio(loop_scope="module")
async def test_every_tabs_error_messages(demo: gr.Blocks, render: Callable[[list[str]], list[str]]) -> None:
    shown = []
    for h in HOSTILE:
        for name, status, field in (("generate", "t2i-status", "t2i-model"), ("edit", "edit-status", "edit-model"),
                                    ("kontext", "kontext-status", "kontext-model")):
            text = await status_of(demo, name, status, **{field: h})
            shown.append((f"{name} model {h!r}", text, None))
            assert text.startswith("⚠️") and (inert(repr(h)) in text or inert(h) in text), text
        text = await status_of(demo, "generate", "t2i-status", **{"param-output_format": h})
        shown.append((f"output format {h!r}", text, None))
        text = await status_of(demo, "run_ui", "compare-status", **{"compare-prompt": "x",
                                                                    "compare-models": [h, "FLUX.2-pro"]})
        shown.append((f"compare models {h!r}", text, h))
        shown.append(("error_text", error_text(ValidationError(f"got {h!r}")), repr(h)))
    assert_inert(render, shown)


def upload(name: str = "astronaut.png") -> dict[str, Any]:
    """A picture as Gradio hands a received file to a handler."""
    folder = Path(get_upload_folder()) / "text-inert"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLES / name, folder / name)
    return {"path": str(folder / name), "orig_name": name, "meta": {"_type": "gradio.FileData"}}


async def kontext_edit(runtime: Runtime, instruction: str, image: Any,
                       trail: list[kontext_trail.Step]) -> EditDone:
    steps = handle_kontext(runtime, [KONTEXT], KONTEXT, instruction, image, None, True, {}, trail)
    return [s async for s in steps][-1]


@pytest.mark.asyncio(loop_scope="module")
async def test_the_kontext_trail(module_runtime: Runtime, render: Callable[[list[str]], list[str]]) -> None:
    shown = []
    original = upload()
    for h in HOSTILE:
        done = await kontext_edit(module_runtime, h, original, [])
        branch = await kontext_edit(module_runtime, "make it night", original, done.trail)  # drops edit 1: named
        label = kontext_trail.step_label(1, done.trail[1], kontext_trail.CAPTION_CHARS)
        assert inert(label) in done_status(branch, None)
        shown += [(f"trail {h!r}", kontext_trail.trail_text(done.trail, 1), h),
                  (f"trail, own picture {h!r}", kontext_trail.trail_text(done.trail, None), h),
                  (f"step back {h!r}", kontext_trail.step_back_text(done.trail, 1), None),
                  (f"branch {h!r}", done_status(branch, None), None)]
        assert kontext_trail.trail_gallery(done.trail)[1][1] == label  # a gallery caption: plain text, shown as such
    assert_inert(render, shown)


def hostile_settings(h: str) -> list[dict[str, Any]]:
    """Saved settings (a dropped file's) with the hostile text in each field a tab reads."""
    base = {"generator": "flux-ui", "tab": "text-to-image", "model": "FLUX.2-pro", "prompt": "a fox", "seed": 5,
            "params": {}}
    return [{**base, "model": h}, {**base, "seed": h}, {**base, "params": {"guidance": h}},
            {**base, "params": {"output_format": h}}, {**base, "params": [h]}, {**base, "tab": h},
            {**base, "route": [h]}, {**base, "prompt": {"text": h}}]


def test_history_details_list_and_restore(render: Callable[[list[str]], list[str]]) -> None:
    ready = TabHandle("t2i", "text-to-image", outputs=[gr.Textbox(render=False)], apply=lambda s: [gr.update()])
    shown = []
    for h in HOSTILE:
        odd = {"params": {h: h, "guidance": h, "steps": 20}, "route": h, "deployment": h, "references": [h]}
        details = history_listing.details_of(entry(h, h, odd, path=f"/out/{h}.png"), h)
        shown.append((f"details {h!r}", details, None))
        assert history_listing.caption_of(entry(h)).startswith("FLUX.2 [pro] · ")  # a gallery caption: plain text
        for settings in hostile_settings(h):
            _, message = history_reuse.reuse_updates(settings, [ready], ("FLUX.2-pro",), {"t2i": "Text to image"})
            shown.append((f"restore {settings}", message, None))
    assert_inert(render, shown)


def png_with(settings: dict[str, Any], folder: Path) -> str:
    path = folder / "dropped.png"
    path.write_bytes(embed_metadata(solid_image((9, 99, 199), (32, 32)), settings))
    return str(path)


def test_a_dropped_file_with_hostile_metadata(demo: gr.Blocks, tmp_path: Path,
                                              render: Callable[[list[str]], list[str]]) -> None:
    drop = event(demo, "on_drop")
    shown = []
    for h in HOSTILE[:6]:
        for settings in hostile_settings(h):
            message = drop.fn(png_with(settings, tmp_path))[-1]
            assert message.startswith("⚠️") or message.startswith("Loaded"), message
            shown.append((f"drop {settings}", message, None))
    assert_inert(render, shown)


def test_captions_notes_and_status_lines(tmp_path: Path, render: Callable[[list[str]], list[str]]) -> None:
    tally = Tally(tmp_path)
    shown = []
    for h in HOSTILE:
        view = {"model": "FLUX.2-pro", "label": "A", "path": None, "caption": None, "error": f"refused {h}"}
        tally.record(h, [h, "FLUX.2-pro"])
        retry = ProgressEvent(stage="retrying", message=h, attempt=1, elapsed_s=0.0, wait_s=2.0)
        shown += [(f"compare caption {h!r}", compare_view.caption_text(view, Blindness.OPEN), h),
                  (f"references {h!r}", references.summary(["/a.png", "/b.png"], h, ["FLUX.2-pro"]), None),
                  (f"size note {h!r}", handlers.size_note("FLUX.2-pro", h, 1024), None),
                  (f"retrying {h!r}", progress.status_line("FLUX.2-pro", retry, 1.0), h)]
    shown.append(("tally", compare_view.tally_table(tally), None))
    assert_inert(render, shown)


# --- in a real browser ---------------------------------------------------------------------------

BROWSER_INSTRUCTION = (f"<img src={PIXEL}pixel.png> <form action={PIXEL}form><input name=pw></form> "
                       f"![x]({PIXEL}p.png) [click](javascript:alert(1)) <script>fetch('{PIXEL}s')</script> "
                       f"**bold** {PIXEL}bare make it night")
FOREIGN = "img, form, a, script, input, iframe, svg"


@pytest.fixture
def watched(page: Any) -> Iterator[list[str]]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    yield seen


@pytest.mark.browser
def test_a_hostile_kontext_instruction_stays_text_in_the_browser(app: AppUnderTest, page: Any,
                                                                 watched: list[str]) -> None:
    page.goto(app.url)
    page.get_by_role("tab", name="Kontext edit").click()
    page.set_input_files("#kontext-input input[type=file]", str(SAMPLES / "astronaut.png"))
    page.wait_for_selector("#kontext-input img")
    page.fill("#kontext-prompt textarea", BROWSER_INSTRUCTION)
    page.click("#kontext-run")
    page.wait_for_function("document.querySelector('#kontext-status').innerText.includes('Added edit 1')")
    page.wait_for_function("document.querySelector('#kontext-trail-list').innerText.includes('make it night')")
    page.click("#kontext-trail .thumbnail-item >> nth=1")  # step back to the edit: its label in the status
    page.wait_for_function("document.querySelector('#kontext-status').innerText.includes('is the input now')")
    trail = page.inner_text("#kontext-trail-list")
    assert squeeze(BROWSER_INSTRUCTION) in squeeze(trail)  # shown as typed
    for where in ("#kontext-trail-list", "#kontext-status", "#kontext-info"):
        assert page.eval_on_selector(where, f"e => e.querySelectorAll('{FOREIGN}').length") == 0, where
    pointing = page.evaluate("() => document.querySelectorAll('[src*=\"127.0.0.1:9/\"], [href*=\"127.0.0.1:9/\"], "
                             "[action*=\"127.0.0.1:9/\"], [href^=\"javascript\"]').length")
    assert pointing == 0
    page.wait_for_timeout(500)  # anything the page would fetch has been asked for by now
    assert not [url for url in watched if "127.0.0.1:9/" in url], watched
