"""Synthetic images: deterministic, visibly different per request, and showing the references in order."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat

from conftest import solid_image
from emulator_fixtures import *  # noqa: F403  (fixtures: emu, http, module_emulator)
from emulator_fixtures import b64, bearer, bfl_url, decode_image
from flux_ui.emulator import Emulator
from flux_ui.emulator.references import decode_reference_bytes
from flux_ui.emulator.render import RenderRequest, reference_tiles, render, render_image

COLOURS = [(220, 30, 30), (30, 60, 220), (30, 200, 60), (240, 220, 20), (200, 40, 200),
           (20, 200, 210), (250, 140, 0), (120, 70, 20), (250, 250, 250), (90, 90, 90)]


def request(**changes: object) -> RenderRequest:
    fields: dict[str, object] = {"model_id": "FLUX.2-pro", "model_name": "FLUX.2 [pro]",
                                 "prompt": "a heron in the reeds", "seed": 42, "width": 512, "height": 512,
                                 "output_format": "png"}
    fields.update(changes)
    return RenderRequest(**fields)  # type: ignore[arg-type]


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0–255."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def tile_colour(img: Image.Image, count: int, k: int) -> tuple[int, ...]:
    """The colour in the middle of tile k's picture (below its label)."""
    _, (x0, y0, x1, y1) = reference_tiles(img.width, img.height, count)[k]
    return img.convert("RGB").getpixel(((x0 + x1) // 2, (y0 + y1) // 2))  # type: ignore[return-value]


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def test_same_request_same_bytes_over_http(emu: Emulator, http: httpx.Client) -> None:
    body = {"model": "FLUX.2-pro", "prompt": "a heron in the reeds", "seed": 7, "width": 640, "height": 480,
            "input_image": b64(solid_image((200, 10, 10)))}
    first = http.post(bfl_url(emu.base_url, "flux-2-pro"), json=body, headers=bearer()).json()
    second = http.post(bfl_url(emu.base_url, "flux-2-pro"), json=body, headers=bearer()).json()
    assert first["data"][0]["b64_json"] == second["data"][0]["b64_json"]


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_render_is_deterministic_in_every_format(fmt: str) -> None:
    assert render(request(output_format=fmt)) == render(request(output_format=fmt))
    assert decode_image(render(request(output_format=fmt))).format == {"jpeg": "JPEG", "png": "PNG",
                                                                          "webp": "WEBP"}[fmt]


@pytest.mark.parametrize("change", [{"prompt": "a blue whale"}, {"seed": 43},
                                    {"model_id": "FLUX.2-flex", "model_name": "FLUX.2 [flex]"}],
                         ids=["prompt", "seed", "model"])
def test_prompt_seed_and_model_change_the_picture(change: dict[str, object]) -> None:
    base = render_image(request())
    other = render_image(request(**change))
    assert difference(base, other) > 12  # the whole background moves, not a few text pixels


def test_seed_differs_over_http(emu: Emulator, http: httpx.Client) -> None:
    images = []
    for seed in (1, 2):
        r = http.post(bfl_url(emu.base_url, "flux-2-pro"), json={"model": "FLUX.2-pro", "prompt": "p", "seed": seed,
                                                                  "output_format": "png", "width": 256,
                                                                  "height": 256}, headers=bearer())
        images.append(decode_image(r.json()["data"][0]["b64_json"]).convert("RGB"))
    assert difference(*images) > 12


def test_references_arrive_in_order(emu: Emulator, http: httpx.Client) -> None:
    red, blue = (220, 30, 30), (30, 60, 220)
    body = {"model": "FLUX.2-pro", "prompt": "swap them", "width": 1024, "height": 768, "output_format": "png",
            "input_image": b64(solid_image(red)), "input_image_2": b64(solid_image(blue))}
    r = http.post(bfl_url(emu.base_url, "flux-2-pro"), json=body, headers=bearer())
    assert r.status_code == 200
    refs = emu.requests()[-1]["references"]
    assert [ref["mean_rgb"] for ref in refs] == [list(map(float, red)), list(map(float, blue))]
    img = decode_image(r.json()["data"][0]["b64_json"])
    assert tile_colour(img, 2, 0) == red and tile_colour(img, 2, 1) == blue


def test_ten_references_on_flex_in_order(emu: Emulator, http: httpx.Client) -> None:
    body: dict[str, object] = {"model": "FLUX.2-flex", "prompt": "a collage", "width": 1600, "height": 1200}
    for i, colour in enumerate(COLOURS, start=1):
        body["input_image" if i == 1 else f"input_image_{i}"] = b64(solid_image(colour))
    r = http.post(bfl_url(emu.base_url, "flux-2-flex"), json=body, headers=bearer())
    assert r.status_code == 200, r.text
    img = decode_image(r.json()["data"][0]["b64_json"])  # JPEG: colours within a tolerance
    for k, colour in enumerate(COLOURS):
        assert close(tile_colour(img, 10, k), colour), (k, tile_colour(img, 10, k), colour)


def test_tile_labels_are_drawn() -> None:
    ref = decode_reference_bytes("input_image", 1, solid_image((0, 200, 0)))
    img = render_image(request(references=(ref,)))
    (label_box, _), = reference_tiles(img.width, img.height, 1)
    strip = img.crop(label_box).convert("L")
    lo, hi = strip.getextrema()
    assert lo < 30 and hi > 220  # white text on a black strip


def test_transparent_reference_is_laid_over_white() -> None:
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    out = io.BytesIO()
    clear.save(out, "PNG")
    ref = decode_reference_bytes("input_image", 1, out.getvalue())
    assert ref.mean_rgb == (255.0, 255.0, 255.0) and ref.format == "PNG"


@pytest.mark.parametrize("size", [(64, 64), (2048, 64), (256, 2048), (2048, 2048)])
def test_extreme_sizes_render(size: tuple[int, int]) -> None:
    refs = tuple(decode_reference_bytes("input_image" if i == 1 else f"input_image_{i}", i, solid_image(COLOURS[i]))
                 for i in range(1, 4))
    img = decode_image(render(request(width=size[0], height=size[1], output_format="jpeg", references=refs,
                                      prompt="word " * 3000)))
    assert img.size == size
