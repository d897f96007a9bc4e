"""Bad input through both doors: the tabs' plain handlers (no web server) and the gradio_client API.

REFUSED is the one table of inputs people and programs get wrong. Each case goes through the
function the tab's event calls and through the named endpoint of a running app, and each must be
refused with a message that names the problem and the fix, send nothing to the service, open no
file the request names, and leave the app serving. ACCEPTED lists inputs that look wrong but are
taken as a person expects (converted, turned upright, snapped, sent as text), with what the
service then received; its last rows are ordinary requests, made after every refusal.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
import sys
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pytest
from gradio.utils import get_upload_folder
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from app_fixtures import AppUnderTest
from flux_ui.errors import FluxError
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime
from flux_ui.ui import compare, compare_run, edit, handlers, history_listing, kontext_edit, text_to_image

KONTEXT = "FLUX.1-Kontext-pro"
#: Each endpoint's own arguments; the rest are the registry's parameters, by name.
OWN = {"generate": {"model", "prompt", "randomize_seed"}, "edit": {"model", "prompt", "references", "randomize_seed"},
       "kontext": {"model", "prompt", "image", "route", "randomize_seed"}}


# --- the files people upload ----------------------------------------------------------------

def encoded(img: Image.Image, fmt: str, **options: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def frames(count: int = 3) -> list[Image.Image]:
    return [Image.new("RGB", (32, 32), (80 * i, 40, 200 - 60 * i)) for i in range(count)]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png() -> bytes:
    """A 150-byte PNG whose header promises 100 000 × 100 000 pixels (30 GB decoded)."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(bytes(4096)))
            + png_chunk(b"IEND", b""))


def photo_jpeg() -> bytes:
    return encoded(Image.effect_mandelbrot((256, 256), (-2, -1.5, 1, 1.5), 60).convert("RGB"), "JPEG")


def damaged_header_jpeg() -> bytes:
    data = bytearray(photo_jpeg())
    table = data.find(b"\xff\xc4")  # the Huffman table: the decoder cannot start
    data[table + 5:table + 40] = b"\xff" * 35
    return bytes(data)


def damaged_data_jpeg() -> bytes:
    data = bytearray(photo_jpeg())
    noise = random.Random(1)
    for i in range(data.find(b"\xff\xda") + 20, len(data) - 2):
        data[i] = noise.randrange(256)
    return bytes(data)


def damaged_png() -> bytes:
    data = bytearray(encoded(Image.new("RGB", (64, 48), (10, 200, 30)), "PNG"))
    data[data.find(b"IDAT") + 6] ^= 0xFF  # compressed pixels no longer inflate
    return bytes(data)


def rotated_jpeg() -> bytes:
    """Stored 96 × 48 (landscape) with EXIF orientation 6: upright it is 48 × 96 (portrait)."""
    img = Image.new("RGB", (96, 48), (230, 40, 40))
    exif = img.getexif()
    exif[0x0112] = 6
    return encoded(img, "JPEG", exif=exif.tobytes())


FILES: dict[str, Callable[[], bytes]] = {
    "photo.png": lambda: encoded(Image.new("RGB", (80, 64), (200, 120, 40)), "PNG"),
    "notes.txt": lambda: b"shopping: eggs, flour\n",
    "scan.pdf": lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    "empty.png": lambda: b"",
    "cut.jpg": lambda: photo_jpeg()[:400],
    "cut.png": lambda: encoded(Image.new("RGB", (256, 256), (1, 2, 3)), "PNG")[:100],
    "broken-header.jpg": damaged_header_jpeg,
    "broken-data.jpg": damaged_data_jpeg,
    "broken.png": damaged_png,
    "bomb.png": bomb_png,
    "panorama.png": lambda: encoded(Image.new("L", (20_000, 100), 128), "PNG"),
    "animated.gif": lambda: encoded(frames()[0], "GIF", save_all=True, append_images=frames()[1:], duration=90),
    "animated.png": lambda: encoded(frames()[0], "PNG", save_all=True, append_images=frames()[1:]),
    "animated.webp": lambda: encoded(frames()[0], "WEBP", save_all=True, append_images=frames()[1:], duration=90),
    "pages.tiff": lambda: encoded(frames(2)[0], "TIFF", save_all=True, append_images=frames(2)[1:]),
    "tiny.png": lambda: encoded(Image.new("RGB", (8, 8), (9, 9, 9)), "PNG"),
    "drawing.svg": lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect/></svg>',
    "page.html": lambda: b"<!doctype html><html><body>not a picture</body></html>",
    "archive.zip": lambda: b"PK\x03\x04" + bytes(60),
    "photo.heic": lambda: b"\x00\x00\x00\x18ftypheic" + bytes(64),
    "cmyk.jpg": lambda: encoded(Image.new("CMYK", (64, 48), (0, 200, 255, 20)), "JPEG"),
    "deep.png": lambda: encoded(Image.new("I;16", (64, 48), 40_000), "PNG"),
    "rotated.jpg": rotated_jpeg,
}


@dataclass(frozen=True)
class Upload:
    """A file from FILES, sent as the browser or gradio_client's handle_file sends it (uploaded first)."""

    name: str


@dataclass(frozen=True)
class Outside:
    """A file outside the app's folders named in a request: as ``text`` (its path) or a ``bare`` {"path": …}."""

    shape: str


@dataclass
class Place:
    """Where this module's files are: for the API (any folder), in Gradio's uploads, and outside both."""

    local: Path
    uploaded: Path
    canary: Path


def materialise(value: Any, place: Place, through_api: bool) -> Any:
    """Placeholders replaced by what each door receives: handle_file for the API, Gradio's FileData for handlers."""
    if isinstance(value, dict):
        return {k: materialise(v, place, through_api) for k, v in value.items()}
    if isinstance(value, list):
        return [materialise(v, place, through_api) for v in value]
    if isinstance(value, Upload):
        if through_api:
            return handle_file(str(place.local / value.name))
        return {"path": str(place.uploaded / value.name), "orig_name": value.name, "meta": {"_type": "gradio.FileData"}}
    if isinstance(value, Outside):
        return str(place.canary) if value.shape == "text" else {"path": str(place.canary)}
    return value


# --- the cases ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    endpoint: str  # generate, edit, kontext, compare, history
    args: dict[str, Any]
    problem: str  # words that name the problem
    fix: str  # words that say how to fix it


DEFAULTS = {
    "generate": {"model": "FLUX.2-flex", "prompt": "a lighthouse at dusk"},
    "edit": {"model": "FLUX.2-flex", "prompt": "the fox from image 1 in the snow", "references": [Upload("photo.png")]},
    "kontext": {"model": KONTEXT, "prompt": "make it night", "image": Upload("photo.png")},
    "compare": {"prompt": "a glass teapot", "models": ["FLUX.2-pro", "FLUX-1.1-pro"]},
    "history": {},
}
T5_OVER = "a" * (MODELS["FLUX-1.1-pro"].prompt.max_tokens * 16 + 16)  # over even if every token were 16 characters
TEKKEN_OVER = "a" * (MODELS["FLUX.2-pro"].prompt.max_tokens * 128 + 128)  # over even at 128 bytes a token
FIXED = {"randomize_seed": False}


def case(endpoint: str, id: str, problem: str, fix: str, **args: Any) -> Case:
    return Case(f"{endpoint}-{id}", endpoint, {**DEFAULTS[endpoint], **args}, problem, fix)


def bad_file(id: str, name: str, problem: str, fix: str) -> Case:
    """A reference that is not a usable picture, as image 2 after a good one (the message names the slot)."""
    return case("edit", id, f"image 2 {problem}", fix, references=[Upload("photo.png"), Upload(name)])


UNREADABLE = "upload a JPEG, PNG or WebP"
UNREADABLE_AS = "is not an image file flux-ui can read (it looks like"
STILL = "export one frame as PNG or JPEG"
RESAVE = "re-save it as PNG or JPEG"

REFUSED: list[Case] = [
    # prompts
    case("generate", "empty-prompt", "The prompt is empty", "Describe the image you want", prompt=""),
    case("generate", "whitespace-prompt", "The prompt is empty", "Describe the image you want", prompt=" \n\t  "),
    case("generate", "prompt-none", "must be text, not NoneType", "send it as a string", prompt=None),
    case("generate", "prompt-number", "must be text, not int", "send it as a string", prompt=42),
    case("generate", "prompt-over-t5-limit", "too long for FLUX1.1 [pro]: at least 5,001 tokens", "Shorten it",
         model="FLUX-1.1-pro", prompt=T5_OVER),
    case("generate", "prompt-over-tekken-limit", "The prompt is too long: 4,096,128 characters, and flux-ui takes at "
         "most 128,000 bytes", "Shorten it", model="FLUX.2-pro", prompt=TEKKEN_OVER),
    case("generate", "nul", "invisible control character (U+0000) at position 6", "delete it",
         prompt="a cat\x00 on a mat"),
    case("generate", "escape-sequence", "control character (U+001B) at position 1", "delete it",
         prompt="\x1b[31mred\x1b[0m fox"),
    case("generate", "delete-character", "control character (U+007F)", "delete it", prompt="a fox\x7f"),
    case("generate", "c1-control", "control character (U+009B)", "delete it", prompt="a fox \x9b2J"),
    case("generate", "bidi-override", "bidirectional-text control (right-to-left override, U+202E)", "Delete it",
         prompt="a sign that says \u202eelas rof"),
    case("generate", "bidi-isolate", "bidirectional-text control (left-to-right isolate, U+2066)", "Delete it",
         prompt="a sign \u2066reading\u2069 open"),
    case("generate", "right-to-left-mark", "bidirectional-text control (right-to-left mark, U+200F) at position 9",
         "Delete it", prompt="a sign: \u200fمرحبا"),
    case("generate", "zero-width-space", "ZERO WIDTH SPACE (U+200B), at position 4", "Delete it",
         prompt="red\u200bfox"),
    case("generate", "zero-width-joiner-in-words", "ZERO WIDTH JOINER (U+200D), at position 2", "Delete it",
         prompt="a\u200db fox"),
    case("generate", "tag-characters", "TAG LATIN SMALL LETTER I (U+E0069), at position 6",
         "Tag characters spell words no one sees. Delete it",
         prompt="a fox" + "".join(chr(0xE0000 + ord(c)) for c in "ignore the rules")),
    case("generate", "byte-order-mark", "ZERO WIDTH NO-BREAK SPACE (U+FEFF), at position 1", "Delete it",
         prompt="\ufeffa fox"),
    case("generate", "negative-prompt-zero-width", "Negative prompt contains an invisible character, ZERO WIDTH SPACE",
         "Delete it", model="FLUX.1-schnell", negative_prompt="blur\u200b"),
    # models
    case("generate", "unknown-model", "Unknown model 'FLUX.3-ultra'", "choose one of FLUX.2-pro", model="FLUX.3-ultra"),
    case("generate", "empty-model", "Unknown model ''", "choose one of FLUX.2-pro", model=""),
    case("generate", "model-none", "got NoneType None", "such as 'FLUX.2-pro'", model=None),
    case("generate", "model-list", "got list ['FLUX.2-pro']", "one model ID written as text", model=["FLUX.2-pro"]),
    case("generate", "model-path", "Unknown model '../../etc/passwd'", "choose one of", model="../../etc/passwd"),
    # parameters, each model's own ranges and types
    case("generate", "guidance-high", "got 42", "Guidance must be a number from 1.5 to 10", guidance=42),
    case("generate", "guidance-low", "got 0.5", "Guidance must be a number from 1.5 to 10", guidance=0.5),
    case("generate", "guidance-text", "got 'lots'", "Guidance must be a number from 1.5 to 10", guidance="lots"),
    case("generate", "guidance-nan", "got 'nan'", "Guidance must be a number from 1.5 to 10", guidance="nan"),
    case("generate", "guidance-bool", "got True", "Guidance must be a number", guidance=True),
    case("generate", "steps-zero", "got 0", "Steps must be a whole number from 1 to 50", steps=0),
    case("generate", "steps-over", "got 51", "Steps must be a whole number from 1 to 50", steps=51),
    case("generate", "steps-fraction", "got 2.5", "Steps must be a whole number", steps=2.5),
    case("generate", "steps-list", "got [5]", "Steps must be a whole number", steps=[5]),
    case("generate", "schnell-steps", "got 5", "Steps must be a whole number from 1 to 4 for FLUX.1 [schnell]",
         model="FLUX.1-schnell", num_inference_steps=5),
    case("generate", "schnell-guidance", "got 11", "Guidance scale must be a number from 0 to 10",
         model="FLUX.1-schnell", guidance_scale=11),
    case("generate", "negative-prompt-number", "Negative prompt must be text; got int", "send it as a string",
         model="FLUX.1-schnell", negative_prompt=7),
    case("generate", "negative-prompt-control", "Negative prompt contains an invisible control character",
         "delete it", model="FLUX.1-schnell", negative_prompt="blur\x00"),
    case("generate", "safety-over", "got 6", "Safety tolerance must be a whole number from 0 to 5 for FLUX.2 [pro]",
         model="FLUX.2-pro", safety_tolerance=6),
    case("generate", "safety-negative", "got -1", "Safety tolerance must be a whole number from 0 to 5",
         safety_tolerance=-1),
    case("generate", "format-gif", "got 'gif'", "Output format must be one of jpeg, png", output_format="gif"),
    case("generate", "format-webp-on-pro", "got 'webp'", "must be one of jpeg, png", model="FLUX.2-pro",
         output_format="webp"),
    case("generate", "upsampling-text", "got 'yes'", "Prompt upsampling is on or off (true or false)",
         prompt_upsampling="yes"),
    case("generate", "randomize-text", "got 'maybe'", "randomize_seed is on or off: pass true or false",
         randomize_seed="maybe"),
    # seeds
    case("generate", "seed-negative", "got -1", "Seed must be a whole number from 0 to 4294967295", seed=-1, **FIXED),
    case("generate", "seed-huge", "got 18446744073709551616", "Seed must be a whole number from 0 to 4294967295",
         seed=2**64, **FIXED),
    case("generate", "seed-text", "got 'abc'", "Seed must be a whole number", seed="abc", **FIXED),
    case("generate", "seed-fraction", "got 3.7", "Seed must be a whole number", seed=3.7, **FIXED),
    # sizes
    case("generate", "width-20000", "20000×1024 is 19.5 MP, and FLUX.2 [flex] makes at most 4 MP", "Try 9040×448",
         width=20_000),
    case("generate", "width-below-minimum", "The width 32 is below FLUX.2 [flex]'s smallest side of 64 px",
         "use 64 or more", width=32),
    case("generate", "width-negative", "got -512", "The width must be a whole number of pixels, such as 1024",
         width=-512),
    case("generate", "width-text", "got 'wide'", "must be a whole number of pixels, such as 1024", width="wide"),
    case("generate", "height-fraction", "got 1000.5", "must be a whole number of pixels", height=1000.5),
    case("generate", "side-over-maximum", "The width 1600 is above FLUX1.1 [pro]'s largest side of 1440 px",
         "use 1440 or less", model="FLUX-1.1-pro", width=1600),
    # aspect ratios
    case("generate", "aspect-ratio-text", "got 'wide'", "must be written width:height, such as 16:9", model=KONTEXT,
         aspect_ratio="wide"),
    case("generate", "aspect-ratio-out-of-range", "The aspect ratio 50:1 is outside FLUX.1 Kontext [pro]'s range",
         "pick one in between", model=KONTEXT, aspect_ratio="50:1"),
    case("generate", "aspect-ratio-zero", "got '16:0'", "such as 16:9", model=KONTEXT, aspect_ratio="16:0"),
    case("generate", "aspect-ratio-negative", "got '-16:9'", "such as 16:9", model=KONTEXT, aspect_ratio="-16:9"),
    # references: how many, and for which model
    case("edit", "9-on-flux2-pro", "FLUX.2 [pro] takes at most 8 reference images and there are 9",
         "remove one or switch back to FLUX.2 [flex]", model="FLUX.2-pro", references=[Upload("photo.png")] * 9),
    case("edit", "11-on-flux2-flex", "FLUX.2 [flex] takes at most 10 reference images and there are 11", "remove one",
         references=[Upload("photo.png")] * 11),
    case("edit", "kontext-model", "FLUX.1 Kontext [pro] does not edit with several reference images",
         "choose one of: FLUX.2 [pro], FLUX.2 [flex]", model=KONTEXT, references=[Upload("photo.png")] * 2),
    case("edit", "text-only-model", "FLUX1.1 [pro] does not edit with several reference images",
         "choose one of: FLUX.2 [pro], FLUX.2 [flex]", model="FLUX-1.1-pro"),
    case("edit", "unknown-model", "FLUX.3 does not edit with several reference images", "choose one of",
         model="FLUX.3"),
    case("edit", "no-references", "Add at least one reference image", "use Text to image", references=[]),
    case("edit", "empty-prompt", "The prompt is empty", "Describe the image you want", prompt="  "),
    case("edit", "guidance-text", "got 'lots'", "Guidance must be a number from 1.5 to 10", guidance="lots"),
    case("edit", "width-text", "got 'wide'", "must be a whole number of pixels", width="wide"),
    # references that are not usable pictures
    bad_file("text-file", "notes.txt", f"{UNREADABLE_AS} a text file)", UNREADABLE),
    bad_file("pdf", "scan.pdf", f"{UNREADABLE_AS} a PDF document)", UNREADABLE),
    bad_file("empty-file", "empty.png", "is empty (0 bytes)", "upload the picture again"),
    bad_file("truncated-jpeg", "cut.jpg", "is cut short", "upload the complete file again"),
    bad_file("truncated-png", "cut.png", "is cut short: the PNG file is truncated", "upload the complete file again"),
    bad_file("damaged-jpeg-header", "broken-header.jpg", "is a damaged JPEG file", RESAVE),
    bad_file("damaged-jpeg-data", "broken-data.jpg", "is a damaged or unsupported JPEG file", RESAVE),
    bad_file("damaged-png", "broken.png", "is a damaged or unsupported PNG file", RESAVE),
    bad_file("decompression-bomb", "bomb.png", "is 100000×100000 px (10000 MP); flux-ui reads at most 64 MP",
             "resize it below 64 MP first"),
    bad_file("20000-px-wide", "panorama.png", "is 20000×100 px", "resize it below 16384 px on its longest side"),
    bad_file("animated-gif", "animated.gif", "is an animated GIF with 3 frames", STILL),
    bad_file("animated-png", "animated.png", "is an animated PNG (APNG) with 3 frames", STILL),
    bad_file("animated-webp", "animated.webp", "is an animated WebP with 3 frames", STILL),
    bad_file("multi-page-tiff", "pages.tiff", "is a TIFF file with 2 pages or frames", "export the one you want"),
    bad_file("too-small", "tiny.png", "is only 8×8 px", "use a larger image"),
    bad_file("svg", "drawing.svg", f"{UNREADABLE_AS} an SVG drawing)", UNREADABLE),
    bad_file("html", "page.html", f"{UNREADABLE_AS} a web page (HTML))", UNREADABLE),
    bad_file("zip", "archive.zip", f"{UNREADABLE_AS} a ZIP archive or Office document)", UNREADABLE),
    bad_file("heic", "photo.heic", f"{UNREADABLE_AS} a HEIC/HEIF photo)", UNREADABLE),
    case("edit", "two-bad-files", "2 of 3 reference images cannot be used", "resize it below 64 MP first",
         references=[Upload("notes.txt"), Upload("photo.png"), Upload("bomb.png")]),
    # references named by path instead of sent
    case("edit", "path-as-text", "image 1 must be an uploaded file, not the text '../../etc/passwd'",
         'references=[handle_file("cat.jpg")', references="../../etc/passwd"),
    case("edit", "absolute-path-in-list", "never opens a path named in a request", 'references=[handle_file("cat.jpg")',
         references=[Upload("photo.png"), Outside("text")]),
    case("edit", "bare-path-dict", "image 1 is not a file Gradio received (got dict with keys ['path'])",
         "send the file itself", references=[Outside("bare")]),
    case("edit", "number-as-file", "image 1 is not a file Gradio received (got int)", "send the file itself",
         references=[5]),
    # Kontext: one picture and an instruction
    case("kontext", "no-image", "There is no picture to edit", "drop it into the Input image box", image=None),
    case("kontext", "two-images", "A Kontext edit takes one input image; you sent 2", "Send one",
         image=[Upload("photo.png"), Upload("photo.png")]),
    case("kontext", "text-file", "is not an image file flux-ui can read (it looks like a text file)", UNREADABLE,
         image=Upload("notes.txt")),
    case("kontext", "animated-gif", "is an animated GIF with 3 frames", STILL, image=Upload("animated.gif")),
    case("kontext", "decompression-bomb", "is 100000×100000 px", "resize it below 64 MP first",
         image=Upload("bomb.png")),
    case("kontext", "path-as-text", "The input image must be an uploaded file, not the text '../../etc/passwd'",
         'image=handle_file("street.png")', image="../../etc/passwd"),
    case("kontext", "bare-path-dict", "The input image is not a file Gradio received (got dict with keys ['path'])",
         'image=handle_file("street.png")', image=Outside("bare")),
    case("kontext", "unknown-route", "got 'ftp'", "The route must be one of 'bfl', 'images/edits'", route="ftp"),
    case("kontext", "route-number", "got 5", "The route must be one of", route=5),
    case("kontext", "aspect-ratio-text", "got 'wide'", "must be written width:height", aspect_ratio="wide"),
    case("kontext", "aspect-ratio-out-of-range", "The aspect ratio 50:1 is outside", "pick one in between",
         aspect_ratio="50:1"),
    case("kontext", "safety-over-editing-limit", "got 6",
         "Safety tolerance must be a whole number from 0 to 2 for FLUX.1 Kontext [pro] when editing an image",
         safety_tolerance=6),
    case("kontext", "unknown-model", "'FLUX.3' cannot make a Kontext edit here",
         "choose FLUX.1 Kontext [pro] (FLUX.1-Kontext-pro)", model="FLUX.3"),
    case("kontext", "not-a-kontext-model", "FLUX.2 [pro] cannot make a Kontext edit here",
         "choose FLUX.1 Kontext [pro]", model="FLUX.2-pro"),
    case("kontext", "empty-instruction", "The prompt is empty", "Describe the image you want", prompt=""),
    case("kontext", "instruction-over-limit", "too long for FLUX.1 Kontext [pro]", "Shorten it", prompt=T5_OVER),
    case("kontext", "instruction-escape", "control character (U+001B)", "delete it", prompt="make it \x1b[2J night"),
    case("kontext", "instruction-word-joiner", "WORD JOINER (U+2060), at position 8", "Delete it",
         prompt="make it\u2060 night"),
    case("kontext", "randomize-text", "got 'no'", "randomize_seed is on or off", randomize_seed="no"),
    case("kontext", "seed-negative", "got -5", "Seed must be a whole number from 0", seed=-5, **FIXED),
    # Compare: one prompt on 2-5 models
    case("compare", "one-model", "you picked 1", "Pick 2 to 5 models", models=["FLUX.2-pro"]),
    case("compare", "unknown-model", "FLUX.3-ultra cannot be compared here", "choose from FLUX.2-pro",
         models=["FLUX.2-pro", "FLUX.3-ultra"]),
    case("compare", "models-as-text", "you picked 0", "Pick 2 to 5 models", models="FLUX.2-pro"),
    case("compare", "nested-model-list", "['FLUX.2-pro'] cannot be compared here", "choose from",
         models=[["FLUX.2-pro"], "FLUX-1.1-pro"]),
    case("compare", "shape-text", "got 'wide'", "must be a width:height ratio such as 1:1 or 16:9",
         aspect_ratio="wide"),
    case("compare", "shape-zero", "got '0:1'", "such as 1:1 or 16:9", aspect_ratio="0:1"),
    case("compare", "seed-negative", "got -3", "The seed must be a whole number from 0 to 4294967295", seed=-3,
         **FIXED),
    case("compare", "seed-huge", "got 1099511627776", "whole number from 0 to 4294967295", seed=2**40, **FIXED),
    case("compare", "seed-text", "got 'abc'", "whole number from 0 to 4294967295", seed="abc", **FIXED),
    case("compare", "randomize-text", "got 'maybe'", "randomize_seed is on or off", randomize_seed="maybe"),
    case("compare", "whitespace-prompt", "The prompt is empty", "Write a prompt first", prompt="   "),
    case("compare", "nul-in-prompt", "invisible control character (U+0000)", "delete it", prompt="a teapot\x00"),
    case("compare", "prompt-over-every-limit", "every model refused. FLUX1.1 [pro]: The prompt is too long",
         "Shorten it", prompt=T5_OVER, models=["FLUX-1.1-pro", KONTEXT]),
    # History: filters
    case("history", "unknown-model", "Unknown model 'FLUX.3'", "use one of FLUX.2-pro", model="FLUX.3"),
    case("history", "model-list", "Unknown model ['FLUX.2-pro']", "use one of", model=["FLUX.2-pro"]),
    case("history", "text-number", "got int 5", "Leave it empty to list every prompt", text=5),
    case("history", "limit-text", "got 'abc'", "limit must be a whole number of entries", limit="abc"),
    case("history", "limit-fraction", "got 2.5", "limit must be a whole number of entries", limit=2.5),
    case("history", "limit-bool", "got True", "Leave it out for the newest 50", limit=True),
]


@dataclass(frozen=True)
class Accepted:
    """An input taken as a person expects; ``check`` sees what the service received and the caption."""

    id: str
    endpoint: str
    args: dict[str, Any]
    check: Callable[[list[dict[str, Any]], Answer], None]
    sends: int = 1


def accepted(endpoint: str, id: str, check: Callable[[list[dict[str, Any]], Answer], None], sends: int = 1,
             **args: Any) -> Accepted:
    return Accepted(f"{endpoint}-{id}", endpoint, {**DEFAULTS[endpoint], **args}, check, sends)


def near(rgb: list[float], expected: tuple[float, ...], tolerance: float = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, expected, strict=True))


def converted_cmyk(sent: list[dict[str, Any]], answer: Answer) -> None:
    ref = sent[0]["references"][0]
    expected = Image.open(io.BytesIO(FILES["cmyk.jpg"]())).convert("RGB").getpixel((8, 8))
    assert ref["format"] == "JPEG" and near(ref["mean_rgb"], expected), (ref, expected)
    assert "Image 1: converted from CMYK to RGB." in answer.caption


def converted_16_bit(sent: list[dict[str, Any]], answer: Answer) -> None:
    ref = sent[0]["references"][0]
    grey = 40_000 / 65_535 * 255  # scaled, not clipped to white as Pillow's own I;16 → L would
    assert near(ref["mean_rgb"], (grey, grey, grey), 2), ref
    assert "converted from 16-bit grayscale to grayscale" in answer.caption


def turned_upright(sent: list[dict[str, Any]], answer: Answer) -> None:
    ref = sent[0]["references"][0]
    assert (ref["width"], ref["height"]) == (48, 96), ref  # stored 96×48 landscape, orientation 6: portrait
    assert near(ref["mean_rgb"], (230, 40, 40))
    assert "rotated upright from its EXIF orientation" in answer.caption


def snapped(size: tuple[int, int], note: str) -> Callable[[list[dict[str, Any]], Answer], None]:
    def check(sent: list[dict[str, Any]], answer: Answer) -> None:
        assert (sent[0]["params"]["width"], sent[0]["params"]["height"]) == size
        assert note in answer.caption and f"{size[0]}×{size[1]}" in answer.caption
    return check


def sent_as_text(prompt: str) -> Callable[[list[dict[str, Any]], Answer], None]:
    def check(sent: list[dict[str, Any]], answer: Answer) -> None:
        assert sent[0]["prompt"] == prompt and not sent[0]["references"]
    return check


def read_only_the_start(sent: list[dict[str, Any]], answer: Answer) -> None:
    assert sent[0]["model"] == "FLUX.1-schnell" and len(sent[0]["prompt"]) == 5000
    assert "reads only the first 256 tokens" in answer.caption


def compared(sent: list[dict[str, Any]], answer: Answer) -> None:
    assert sorted(r["model"] for r in sent) == ["FLUX-1.1-pro", "FLUX.2-pro"] and answer.made


def listed(sent: list[dict[str, Any]], answer: Answer) -> None:
    assert answer.made and answer.message == ""


def found_as_text(sent: list[dict[str, Any]], answer: Answer) -> None:
    # the image made above from that prompt: the filter is text matched against prompts, nothing else
    assert answer.found and all(PASSWD in prompt for prompt in answer.found), answer


def made(sent: list[dict[str, Any]], answer: Answer) -> None:
    assert answer.made and sent[0]["status"] == 200


PASSWD = "../../etc/passwd"
#: A zero-width non-joiner inside a Persian word, and the flag of Wales (its tag characters spell gbwls).
PERSIAN_AND_FLAG = "یک گربه می\u200cخوابد 🏴" + "".join(chr(0xE0000 + ord(c)) for c in "gbwls") + "\U000e007f"
ACCEPTED: list[Accepted] = [
    accepted("edit", "cmyk-jpeg-converted", converted_cmyk, references=[Upload("cmyk.jpg")]),
    accepted("edit", "16-bit-png-scaled", converted_16_bit, references=[Upload("deep.png")]),
    accepted("kontext", "exif-rotated-turned-upright", turned_upright, image=Upload("rotated.jpg")),
    accepted("generate", "off-grid-size-rounded", snapped((992, 768), "rounded to 992×768"), model="FLUX-1.1-pro",
             width=1000, height=770),
    accepted("generate", "off-grid-size-rounded-down", snapped((992, 1008), "rounded down to 992×1008"),
             model="FLUX.2-pro", width=1000, height=1015),
    accepted("generate", "path-as-prompt-sent-as-text", sent_as_text(PASSWD), prompt=PASSWD),
    accepted("generate", "rtl-text-and-emoji", sent_as_text("لافتة مكتوب عليها مرحبا 👩\u200d🚀"),
             prompt="لافتة مكتوب عليها مرحبا 👩\u200d🚀"),
    accepted("generate", "persian-zwnj-and-a-flag", sent_as_text(PERSIAN_AND_FLAG), prompt=PERSIAN_AND_FLAG),
    accepted("generate", "newlines-and-tabs", sent_as_text("a fox\n\tin snow"), prompt="a fox\n\tin snow"),
    accepted("generate", "schnell-prompt-over-its-limit", read_only_the_start, model="FLUX.1-schnell",
             prompt="w" * 5000),
    accepted("history", "path-as-text-filter", found_as_text, sends=0, text=PASSWD),
    # ordinary requests, after every refusal: the app still serves each endpoint
    accepted("generate", "still-serves", made),
    accepted("edit", "still-serves", made),
    accepted("kontext", "still-serves", made),
    accepted("compare", "still-serves", compared, sends=2),
    accepted("history", "still-serves", listed, sends=0),
]


# --- the two doors ----------------------------------------------------------------------------

@dataclass
class Answer:
    """What came back: whether anything was made (an image, or History entries), the message, the caption."""

    made: bool
    message: str
    caption: str = ""
    found: list[str] = field(default_factory=list)  # the prompts History listed


async def last_step(steps: AsyncIterator[Any]) -> Any:
    return [step async for step in steps][-1]


async def through_handlers(runtime: Runtime, endpoint: str, args: dict[str, Any]) -> Answer:
    """The plain function the tab's event calls, with the values as Gradio hands them over."""
    get = args.get
    values = {k: v for k, v in args.items() if k not in OWN.get(endpoint, ())}
    try:
        if endpoint == "generate":
            done = await last_step(text_to_image.handle_generate(runtime, get("model"), get("prompt"),
                                                                 get("randomize_seed"), values))
            return Answer(True, "", handlers.caption(done.result))
        if endpoint == "edit":
            done = await last_step(edit.handle_edit(runtime, edit.edit_models(runtime.models), get("model"),
                                                    get("prompt"), get("references"), get("randomize_seed"), values))
            return Answer(True, "", handlers.caption(done.result))
        if endpoint == "kontext":
            done = await last_step(kontext_edit.handle_kontext(
                runtime, kontext_edit.edit_models(runtime.models), get("model"), get("prompt"), get("image"),
                get("route"), get("randomize_seed"), values, []))
            return Answer(True, "", handlers.caption(done.generated.result))
        if endpoint == "compare":
            gallery, _, message = await compare.handle_compare(
                runtime, compare_run.comparable_models(runtime.models), get("prompt"), get("models"),
                get("aspect_ratio", "1:1"), get("randomize_seed", True), get("seed"))
            return Answer(bool(gallery), message)
        records, _ = history_listing.api_entries(runtime.history, get("model"), get("text"), get("limit", 50))
        return Answer(bool(records), "", found=[r["prompt"] for r in records])
    except FluxError as err:
        return Answer(False, str(err))
    except gr.Error as err:
        return Answer(False, str(err.message))


def through_api(client: Client, endpoint: str, args: dict[str, Any]) -> Answer:
    """The named endpoint, as gradio_client users call it."""
    if endpoint == "history":
        try:
            entries, _ = client.predict(**args, api_name="/history")
        except AppError as err:
            return Answer(False, str(err))
        return Answer(bool(entries), "", found=[e["prompt"] for e in entries])
    out = client.predict(**args, api_name=f"/{endpoint}")
    if endpoint == "compare":
        gallery, _, message = out
        return Answer(bool(gallery), message)
    image, caption, message = out[:3]
    made_image = isinstance(image, str) and Path(image).is_file()
    return Answer(made_image, "" if endpoint == "kontext" and made_image else message, caption if made_image else "")


# --- watching for files opened --------------------------------------------------------------

class OpenWatch:
    """Every open() in this process (the app under test runs in it) of a watched file, by real path."""

    def __init__(self) -> None:
        self.watched: frozenset[str] = frozenset()
        self.opened: list[str] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event != "open" or not self.watched or not isinstance(args[0], str | bytes | os.PathLike):
            return
        path = os.path.realpath(os.fsdecode(args[0]))
        if path in self.watched:
            self.opened.append(path)


WATCH = OpenWatch()
sys.addaudithook(WATCH)  # for the rest of the process (hooks cannot be removed): idle while nothing is watched


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    local = tmp_path_factory.mktemp("files")
    uploaded = Path(get_upload_folder()) / f"bad-input-{os.getpid()}"  # where Gradio keeps what it received
    uploaded.mkdir(parents=True, exist_ok=True)
    for name, build in FILES.items():
        data = build()
        (local / name).write_bytes(data)
        (uploaded / name).write_bytes(data)
    canary = tmp_path_factory.mktemp("outside") / "canary.png"
    canary.write_bytes(FILES["photo.png"]())
    WATCH.watched = frozenset(os.path.realpath(p) for p in (canary, PASSWD, "/etc/passwd"))
    yield Place(local, uploaded, canary)
    WATCH.watched = frozenset()
    shutil.rmtree(uploaded, ignore_errors=True)


@pytest.fixture(scope="module")
def client(app: AppUnderTest) -> Client:
    # The app is plain HTTP on loopback: no TLS either way. gradio_client opens a new httpx client per call,
    # and with verification on each one loads the CA bundle, which took three quarters of this module's time.
    return Client(app.url, verbose=False, ssl_verify=False)


def assert_refused(answer: Answer, bad: Case, sent: int, opened: list[str]) -> None:
    assert not answer.made, f"{bad.id} was accepted"
    assert bad.problem in answer.message, f"the problem is not named: {answer.message!r}"
    assert bad.fix in answer.message, f"the fix is not said: {answer.message!r}"
    assert "Traceback" not in answer.message and "upstream Gradio app" not in answer.message
    assert sent == 0, f"{sent} request(s) reached the service"
    assert opened == [], f"opened {opened}"


# --- the tests --------------------------------------------------------------------------------

def test_the_tables_are_distinct_and_big_enough() -> None:
    ids = [c.id for c in REFUSED] + [a.id for a in ACCEPTED]
    assert len(ids) == len(set(ids))
    assert len(REFUSED) >= 60
    assert len({(c.endpoint, repr(c.args)) for c in REFUSED}) == len(REFUSED)  # no input tried twice


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("bad", REFUSED, ids=lambda c: c.id)
async def test_handlers_refuse(bad: Case, module_runtime: Runtime, place: Place) -> None:
    before = len(module_runtime.emulator.requests())  # type: ignore[union-attr]
    WATCH.opened.clear()
    answer = await through_handlers(module_runtime, bad.endpoint, materialise(bad.args, place, through_api=False))
    sent = len(module_runtime.emulator.requests()) - before  # type: ignore[union-attr]
    assert_refused(answer, bad, sent, list(WATCH.opened))


@pytest.mark.parametrize("bad", REFUSED, ids=lambda c: c.id)
def test_api_refuses(bad: Case, app: AppUnderTest, client: Client, place: Place) -> None:
    before = len(app.emulator.requests())
    WATCH.opened.clear()
    answer = through_api(client, bad.endpoint, materialise(bad.args, place, through_api=True))
    assert_refused(answer, bad, len(app.emulator.requests()) - before, list(WATCH.opened))


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("good", ACCEPTED, ids=lambda a: a.id)
async def test_handlers_accept(good: Accepted, module_runtime: Runtime, place: Place) -> None:
    emulator = module_runtime.emulator
    assert emulator is not None
    before = len(emulator.requests())
    WATCH.opened.clear()
    answer = await through_handlers(module_runtime, good.endpoint, materialise(good.args, place, through_api=False))
    sent = emulator.requests()[before:]
    assert len(sent) == good.sends and WATCH.opened == [], (answer, sent)
    good.check(sent, answer)


@pytest.mark.parametrize("good", ACCEPTED, ids=lambda a: a.id)
def test_api_accepts(good: Accepted, app: AppUnderTest, client: Client, place: Place) -> None:
    before = len(app.emulator.requests())
    WATCH.opened.clear()
    answer = through_api(client, good.endpoint, materialise(good.args, place, through_api=True))
    sent = app.emulator.requests()[before:]
    assert len(sent) == good.sends and WATCH.opened == [], (answer, sent)
    good.check(sent, answer)


# --- what the page keeps, and what Gradio refuses before flux-ui -------------------------------

RUN_EVENTS = {"generate": "t2i-prompt", "edit": "edit-prompt", "kontext": "kontext-prompt", "run_ui": "compare-prompt"}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("name", RUN_EVENTS)
async def test_a_refusal_leaves_the_persons_inputs_as_they_were(name: str, module_runtime: Runtime,
                                                                 demo: gr.Blocks) -> None:
    event = next(f for f in demo.fns.values() if f.api_name == name or getattr(f.fn, "__name__", "") == name)
    args = [" " if c.elem_id == RUN_EVENTS[name] else getattr(c, "value", None) for c in event.inputs]
    before = len(module_runtime.emulator.requests())  # type: ignore[union-attr]
    outputs = [out async for out in event.fn(*args)]
    assert len(outputs) == 1 and len(module_runtime.emulator.requests()) == before  # type: ignore[union-attr]
    shown = dict(zip(event.outputs, outputs[0], strict=True))
    assert any(isinstance(v, str) and v.startswith("⚠️") for v in shown.values()), shown  # the reason, shown
    kept = [c for c in event.inputs if c in shown]  # inputs the event also writes: the seed box
    assert kept or name == "kontext", shown  # Kontext's trail is written by the page-only step after it
    assert all(shown[c] == {"__type__": "update"} for c in kept), shown


@pytest.mark.asyncio(loop_scope="module")
async def test_handlers_refuse_file_payloads_outside_the_app_folders(module_runtime: Runtime, place: Place) -> None:
    """What Gradio would never hand over (it refuses such payloads itself), refused again by flux-ui unread:
    a file payload naming a file outside the uploads and outputs, directly or through a link inside them."""
    link = place.uploaded / "link.png"
    link.unlink(missing_ok=True)
    link.symlink_to(place.canary)
    before = len(module_runtime.emulator.requests())  # type: ignore[union-attr]
    WATCH.opened.clear()
    for path in (place.canary, link):
        payload = {"path": str(path), "meta": {"_type": "gradio.FileData"}}
        for endpoint, args in (("edit", {"references": [payload]}), ("kontext", {"image": payload})):
            answer = await through_handlers(module_runtime, endpoint, {**DEFAULTS[endpoint], **args})
            assert not answer.made and "(canary.png) is not a file uploaded to this app" in answer.message
            assert "handle_file(" in answer.message
    assert len(module_runtime.emulator.requests()) == before and WATCH.opened == []  # type: ignore[union-attr]


def test_raw_http_file_payloads_outside_the_uploads_are_refused_unread(app: AppUnderTest, place: Place) -> None:
    """Only a hand-made request can name a server file as a Gradio file (gradio_client uploads it instead):
    Gradio refuses it before any flux-ui code runs, in flux-ui's words (Gradio's own are {"error": null}),
    and the file is never opened."""
    before = len(app.emulator.requests())
    WATCH.opened.clear()
    payload = {"path": str(place.canary), "meta": {"_type": "gradio.FileData"}}
    with httpx.Client(base_url=f"{app.url}/gradio_api/call", timeout=10) as http:
        for api, data in (("edit", ["FLUX.2-flex", "x", [payload], True]), ("kontext", [KONTEXT, "x", payload])):
            inputs = next(f for f in app.demo.fns.values() if f.api_name == api).inputs
            event = http.post(f"/{api}", json={"data": data + [None] * (len(inputs) - len(data))}).json()["event_id"]
            stream = http.get(f"/{api}/{event}").text
            assert "event: error" in stream and "canary" not in stream, stream
            assert "was not uploaded to this app" in stream and 'handle_file(\\"cat.jpg\\")' in stream, stream
    assert len(app.emulator.requests()) == before and WATCH.opened == []
