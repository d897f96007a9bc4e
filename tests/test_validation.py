"""Validation before anything is sent: each refusal, size snapping, honest prompt bounds."""

from __future__ import annotations

import random

import pytest

from conftest import TEXT_ONLY_MODELS
from flux_ui.client.validation import GenerationRequest, prompt_token_bounds, snap_size, validate
from flux_ui.errors import ValidationError
from flux_ui.registry import MODELS, Route

REF = b"\xff\xd8 not decoded at this stage"


def check(model: str = "FLUX.2-pro", prompt: str = "a red fox", refs: int = 0, route: Route | None = None,
          **params: object):
    return validate(GenerationRequest(model, prompt, [REF] * refs, params, route), rng=random.Random(7))


def refused(field: str | None = None, **kwargs: object) -> str:
    with pytest.raises(ValidationError) as info:
        check(**kwargs)  # type: ignore[arg-type]
    if field is not None:
        assert info.value.field == field, info.value
    return str(info.value)


def test_defaults_are_filled_and_a_seed_is_chosen() -> None:
    v = check("FLUX.2-flex")
    assert v.params == {"seed": v.params["seed"], "guidance": 4.5, "steps": 50, "prompt_upsampling": True,
                        "safety_tolerance": 2, "output_format": "jpeg", "width": 1024, "height": 1024}
    assert isinstance(v.params["seed"], int)
    assert v.route is Route.BFL and v.size == (1024, 1024) and v.adjustments == ()


def test_a_given_seed_is_kept() -> None:
    assert check(seed=42).params["seed"] == 42
    assert check(seed=42.0).params["seed"] == 42  # what a gradio Number sends


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t "])
def test_empty_prompt(prompt: str) -> None:
    assert "prompt is empty" in refused("prompt", prompt=prompt)


def test_control_characters_are_named() -> None:
    message = refused("prompt", prompt="a fox\x07 in snow")
    assert "U+0007" in message and "position 6" in message
    assert check(prompt="line one\nline two\ttab").prompt.startswith("line one")


@pytest.mark.parametrize("model", [m for m in MODELS if m not in TEXT_ONLY_MODELS])
def test_too_many_references_names_the_model_and_its_limit(model: str) -> None:
    limit = MODELS[model].max_references
    message = refused("references", model=model, refs=limit + 1)
    assert MODELS[model].display_name in message and f"at most {limit}" in message
    assert f"you gave {limit + 1}" in message


@pytest.mark.parametrize("model", TEXT_ONLY_MODELS)
def test_text_only_models_refuse_any_reference(model: str) -> None:
    message = refused("references", model=model, refs=1)
    assert "text only" in message and "FLUX.2 [pro]" in message  # points at a model that can edit


def test_the_limits_themselves_pass() -> None:
    assert len(check("FLUX.2-flex", refs=10).references) == 10
    assert len(check("FLUX.2-pro", refs=8).references) == 8
    assert len(check("FLUX.1-Kontext-pro", refs=1).references) == 1


def test_unknown_parameter_names_what_the_model_takes_and_who_takes_it() -> None:
    message = refused("guidance", guidance=3.0)
    assert "does not take 'guidance'" in message and "FLUX.2 [flex] does" in message
    assert "seed" in message and "width" in message
    assert "nobody" not in refused("scheduler", model="FLUX.1-schnell", scheduler="euler")


def test_unknown_model() -> None:
    assert "FLUX.2-pro" in refused("model", model="FLUX.3-ultra")


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"guidance": 11}, "guidance", "from 1.5 to 10"),
        ({"guidance": 1.4}, "guidance", "from 1.5 to 10"),
        ({"steps": 0}, "steps", "whole number from 1 to 50"),
        ({"steps": 10.5}, "steps", "whole number"),
        ({"steps": "ten"}, "steps", "got 'ten'"),
        ({"steps": True}, "steps", "whole number"),
        ({"guidance": float("nan")}, "guidance", "number"),
        ({"safety_tolerance": 6}, "safety_tolerance", "0 to 5"),
        ({"seed": -1}, "seed", "0 to 4294967295"),
        ({"seed": 2**40}, "seed", "0 to 4294967295"),
        ({"output_format": "gif"}, "output_format", "jpeg, png"),
        ({"prompt_upsampling": "yes"}, "prompt_upsampling", "true or false"),
        ({"steps": None}, "steps", "needs a value"),
    ],
)
def test_out_of_range_and_wrong_type(params: dict[str, object], field: str, words: str) -> None:
    assert words in refused(field, model="FLUX.2-flex", **params)


def test_kontext_safety_tolerance_is_tighter_when_editing() -> None:
    assert check("FLUX.1-Kontext-pro", safety_tolerance=6).params["safety_tolerance"] == 6
    message = refused("safety_tolerance", model="FLUX.1-Kontext-pro", refs=1, safety_tolerance=3)
    assert "0 to 2" in message and "editing" in message


def test_format_alias_and_case() -> None:
    assert check(output_format="JPG").params["output_format"] == "jpeg"
    assert check(output_format="PNG").params["output_format"] == "png"


@pytest.mark.parametrize(
    ("model", "size", "snapped"),
    [
        ("FLUX.2-pro", (1000, 1000), (992, 992)),  # FLUX.2 floors to 16 [seen]
        ("FLUX.2-pro", (1024, 1023), (1024, 1008)),
        ("FLUX.2-pro", (64, 64), (64, 64)),
        ("FLUX-1.1-pro", (1000, 770), (992, 768)),  # 1.1-pro: nearest multiple of 32
        ("FLUX-1.1-pro", (1450, 250), (1440, 256)),
        ("FLUX.1-schnell", (1000, 520), (992, 512)),
    ],
)
def test_sizes_snap_to_the_grid_and_say_so(model: str, size: tuple[int, int], snapped: tuple[int, int]) -> None:
    v = check(model, width=size[0], height=size[1])
    assert (v.params["width"], v.params["height"]) == snapped == v.size
    if snapped != size:
        assert any(f"{snapped[0]}×{snapped[1]}" in note for note in v.adjustments)
    else:
        assert v.adjustments == ()


@pytest.mark.parametrize(
    ("model", "size", "words"),
    [
        ("FLUX.2-pro", (63, 512), "below"),
        ("FLUX.2-pro", (3000, 2000), "Try 2496×1664"),
        ("FLUX.2-pro", (0, 512), "whole number"),
        ("FLUX.2-pro", (512.5, 512), "whole number"),
        ("FLUX-1.1-pro", (1472, 768), "largest side of 1440"),
        ("FLUX-1.1-pro", (200, 768), "smallest side of 256"),
        ("FLUX.1-schnell", (4096, 512), "largest side of 2048"),
    ],
)
def test_sizes_that_cannot_be_snapped(model: str, size: tuple[float, float], words: str) -> None:
    assert words in refused(None, model=model, width=size[0], height=size[1])


def test_the_suggested_size_is_itself_valid() -> None:
    spec = MODELS["FLUX.2-pro"]
    (w, h), notes = snap_size(spec, 2496, 1664)
    assert (w, h) == (2496, 1664) and notes == []


def test_kontext_aspect_ratio() -> None:
    v = check("FLUX.1-Kontext-pro", aspect_ratio="16:9")
    assert v.params["aspect_ratio"] == "16:9" and v.size is not None and v.size[0] > v.size[1]
    assert check("FLUX.1-Kontext-pro").size == (1024, 1024)  # square without an input image
    assert check("FLUX.1-Kontext-pro", refs=1).size is None  # matches the input: unknown until the answer
    assert "21:9" in refused("aspect_ratio", model="FLUX.1-Kontext-pro", aspect_ratio="22:9")
    assert "width:height" in refused("aspect_ratio", model="FLUX.1-Kontext-pro", aspect_ratio="wide")
    assert check("FLUX.1-Kontext-pro", aspect_ratio="9:21").params["aspect_ratio"] == "9:21"


def test_image_api_routes() -> None:
    v = check("FLUX.1-Kontext-pro", refs=1, route=Route.IMAGES_EDITS)
    assert "seed" not in v.params and v.params["output_format"] == "png"
    assert "edits route" in refused("route", model="FLUX.1-Kontext-pro", refs=1, route=Route.IMAGES_GENERATIONS)
    assert "needs an input image" in refused("references", model="FLUX.1-Kontext-pro", route=Route.IMAGES_EDITS)
    assert "BFL route" in refused("seed", model="FLUX-1.1-pro", route=Route.IMAGES_GENERATIONS, seed=5)
    assert "is on bfl" in refused("route", model="FLUX.2-pro", route=Route.IMAGES_GENERATIONS)


def test_prompt_bounds_are_honest() -> None:
    low, high = prompt_token_bounds("héllo", "mistral-tekken")
    assert high == len("héllo".encode()) == 6 and low == 1
    low, high = prompt_token_bounds("ﬁne", "t5-xxl")  # NFKC turns the ligature into two letters
    assert high == 4 + 2 and low == 1


def test_long_prompts_warn_and_are_refused_only_when_certainly_too_long() -> None:
    near = "word " * 7_000  # 35,000 bytes: may pass 32,000 Tekken tokens, almost surely does not
    v = check("FLUX.2-pro", prompt=near)
    assert v.warnings and "may be over" in v.warnings[0]
    certain = "x" * (32_000 * 128 + 1)
    assert "too long" in refused("prompt", prompt=certain)
    assert check("FLUX.2-pro", prompt="short").warnings == ()


def test_schnell_truncates_so_it_refuses_a_long_prompt_only_past_the_text_bound() -> None:
    v = check("FLUX.1-schnell", prompt="word " * 25_600)  # 128,000 bytes: the most any field takes
    assert "first 256 tokens" in v.warnings[0]
    over = "word " * 25_599 + "é" * 3  # 127,998 characters, 128,001 bytes of UTF-8
    assert "too long: 128,001 bytes, and flux-ui takes at most 128,000" in refused("prompt", model="FLUX.1-schnell",
                                                                                  prompt=over)


def test_kontext_limit_uses_t5_bounds() -> None:
    assert check("FLUX.1-Kontext-pro", prompt="a" * 4_990).warnings == ()
    assert check("FLUX.1-Kontext-pro", prompt="a" * 5_000).warnings  # 5,002 may be over 5,000
    assert "too long" in refused("prompt", model="FLUX.1-Kontext-pro", prompt="a" * (5_000 * 16 + 1))
