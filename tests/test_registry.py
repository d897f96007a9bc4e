"""The registry: a strict schema, cross-field rules, and no drift from the wire contract."""

from __future__ import annotations

import math
import re
from dataclasses import fields

import pytest

from conftest import SHARED, require_shared
from flux_ui.registry import (
    FOUR_MP,
    MODELS,
    AspectRatioSize,
    ModelSpec,
    Param,
    PixelSize,
    PriceHint,
    Route,
    aspect_ratio_size,
    get_model,
    parse_aspect_ratio,
)

KINDS = {"int", "float", "bool", "choice", "text", "aspect_ratio"}
SPECS = list(MODELS.values())


def check_param(spec: ModelSpec, p: Param) -> list[str]:
    """Every rule a parameter declaration must satisfy; returns the broken ones."""
    bad: list[str] = []
    where = f"{spec.id}.{p.name}"
    if not re.fullmatch(r"[a-z][a-z0-9_]*", p.name):
        bad.append(f"{where}: name is not a wire identifier")
    if p.kind not in KINDS:
        bad.append(f"{where}: unknown kind {p.kind}")
    if not p.label or not p.help or not p.help.endswith("."):
        bad.append(f"{where}: needs a label and one sentence of help")
    if "\n" in p.help or len(p.help) > 160:
        bad.append(f"{where}: help is one short line")
    if p.kind in ("int", "float"):
        if p.minimum is None or p.maximum is None or p.step is None:
            bad.append(f"{where}: numbers need minimum, maximum and step")
        elif not p.minimum < p.maximum or p.step <= 0:
            bad.append(f"{where}: empty range or bad step")
        elif p.default is None:
            if not p.nullable:
                bad.append(f"{where}: no default and not nullable")
        elif isinstance(p.default, bool) or not isinstance(p.default, int | float):
            bad.append(f"{where}: default is not a number")
        elif not p.minimum <= p.default <= p.maximum:
            bad.append(f"{where}: default {p.default} outside {p.minimum}..{p.maximum}")
        elif p.kind == "int" and not isinstance(p.default, int):
            bad.append(f"{where}: int parameter with a non-int default")
        if p.edit_maximum is not None and p.maximum is not None and not (
            p.minimum is not None and p.minimum <= p.edit_maximum <= p.maximum
        ):
            bad.append(f"{where}: edit maximum outside the range")
    else:
        if p.minimum is not None or p.maximum is not None or p.step is not None or p.edit_maximum is not None:
            bad.append(f"{where}: bounds on a non-number")
    if p.kind == "bool" and not isinstance(p.default, bool):
        bad.append(f"{where}: bool default must be True or False")
    if p.kind == "choice" and (len(p.choices) < 2 or p.default not in p.choices):
        bad.append(f"{where}: choice default must be one of at least two choices")
    if p.kind == "text" and not isinstance(p.default, str):
        bad.append(f"{where}: text default must be a string")
    if p.kind == "aspect_ratio":
        if p.default is not None and parse_aspect_ratio(str(p.default)) is None:
            bad.append(f"{where}: default is not W:H")
        if any(parse_aspect_ratio(c) is None for c in p.choices):
            bad.append(f"{where}: a preset is not W:H")
    if p.kind != "choice" and p.kind != "aspect_ratio" and p.choices:
        bad.append(f"{where}: choices on a non-choice")
    return bad


def check_spec(spec: ModelSpec) -> list[str]:
    bad: list[str] = []
    names = [p.name for p in spec.all_params]
    if len(names) != len(set(names)):
        bad.append(f"{spec.id}: a parameter is declared twice")
    for p in spec.all_params:
        bad.extend(check_param(spec, p))
    if not spec.routes:
        bad.append(f"{spec.id}: no route")
    if spec.bfl_path is not None and not re.fullmatch(r"[a-z0-9.-]+", spec.bfl_path):
        bad.append(f"{spec.id}: BFL path is not a URL segment")
    if spec.aml and (spec.bfl_path or spec.image_api):
        bad.append(f"{spec.id}: an Azure ML endpoint model is on no Foundry route")
    if "edits" in spec.image_api and spec.max_references < 1:
        bad.append(f"{spec.id}: Image API edits without reference images")
    if not 0 <= spec.max_references <= 16:
        bad.append(f"{spec.id}: implausible reference count")
    if spec.max_references and not spec.max_input_pixels:
        bad.append(f"{spec.id}: takes references but has no input limit")
    if spec.max_references == 0 and spec.max_input_pixels is not None:
        bad.append(f"{spec.id}: input limit on a text-only model")
    if any(not isinstance(v, int) or v < 1 for v in spec.rpm_tiers.values()):
        bad.append(f"{spec.id}: RPM must be a positive whole number")
    if spec.default_tier is not None and spec.default_tier not in spec.rpm_tiers:
        bad.append(f"{spec.id}: default tier is not a tier")
    elif spec.rpm_tiers and spec.default_tier is None:
        bad.append(f"{spec.id}: tiers but no default")
    elif spec.rpm_tiers and spec.default_rpm != min(spec.rpm_tiers.values()):
        bad.append(f"{spec.id}: the default tier should be the lowest (safe before configuration)")
    if spec.prompt.max_tokens < 1:
        bad.append(f"{spec.id}: prompt limit")
    size = spec.size
    if isinstance(size, PixelSize):
        w, h = size.default
        if w % size.multiple or h % size.multiple or min(w, h) < size.min_side:
            bad.append(f"{spec.id}: default size off the grid")
        if size.max_side is not None and max(w, h) > size.max_side:
            bad.append(f"{spec.id}: default size over the largest side")
        if size.max_pixels is not None and w * h > size.max_pixels:
            bad.append(f"{spec.id}: default size over the pixel budget")
        if w * h > spec.max_output_mp * 1_048_576:
            bad.append(f"{spec.id}: default size over the model's output maximum")
        if size.min_side % size.multiple:
            bad.append(f"{spec.id}: smallest side off the grid")
    else:
        if size.default is not None and parse_aspect_ratio(size.default) is None:
            bad.append(f"{spec.id}: default ratio")
        if size.megapixels > spec.max_output_mp:
            bad.append(f"{spec.id}: ratio budget over the output maximum")
    if spec.price.usd_per_image is None and spec.price.usd_per_megapixel is None and not spec.price.note:
        bad.append(f"{spec.id}: a price hint needs a price or a note")
    if not spec.display_name or not spec.summary:
        bad.append(f"{spec.id}: display name and summary")
    return bad


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_every_entry_passes_the_schema(spec: ModelSpec) -> None:
    assert check_spec(spec) == []


def test_the_schema_catches_broken_entries() -> None:
    """The checker itself must fail on each kind of mistake, or the test above proves nothing."""
    good = MODELS["FLUX.2-flex"]
    guidance = good.param("guidance")
    assert guidance is not None
    broken_params = [
        Param("guidance", "float", "Guidance", "Help.", default=11.0, minimum=1.5, maximum=10, step=0.1),
        Param("steps", "int", "Steps", "Help.", default=None, minimum=1, maximum=50, step=1),
        Param("fmt", "choice", "Format", "Help.", default="gif", choices=("jpeg", "png")),
        Param("flag", "bool", "Flag", "Help.", default="yes"),
        Param("Bad Name", "text", "X", "Help.", default=""),
        Param("n", "int", "N", "no full stop", default=1, minimum=1, maximum=2, step=1),
    ]
    for p in broken_params:
        assert check_param(good, p), p
    from dataclasses import replace

    assert check_spec(replace(good, default_tier="ultra"))
    assert check_spec(replace(good, max_input_pixels=None))
    assert check_spec(replace(good, size=PixelSize(16, 64, None, FOUR_MP, (1000, 1024), "floor")))
    assert check_spec(replace(good, params=(*good.params, good.params[0])))


def test_dataclass_fields_are_all_set() -> None:
    for spec in SPECS:
        for f in fields(spec):
            if f.name.startswith("_"):
                continue
            assert hasattr(spec, f.name)


def test_routes_in_preference_order() -> None:
    assert MODELS["FLUX.2-pro"].routes == (Route.BFL,)
    assert MODELS["FLUX.1-Kontext-pro"].routes == (Route.BFL, Route.IMAGES_GENERATIONS, Route.IMAGES_EDITS)
    assert MODELS["FLUX-1.1-pro"].routes == (Route.BFL, Route.IMAGES_GENERATIONS)
    assert MODELS["FLUX.1-schnell"].routes == (Route.AML,)


def test_size_params_follow_the_size_rule() -> None:
    pro = MODELS["FLUX.2-pro"]
    width = pro.param("width")
    assert width is not None and width.step == 16 and width.minimum == 64 and width.default == 1024
    assert width.maximum == FOUR_MP // 64  # a 64-px-tall strip is the widest 4 MP image
    assert MODELS["FLUX-1.1-pro"].param("height").default == 768  # type: ignore[union-attr]
    assert MODELS["FLUX-1.1-pro"].param("width").maximum == 1440  # type: ignore[union-attr]
    kontext = MODELS["FLUX.1-Kontext-pro"]
    assert kontext.param("width") is None and kontext.param("aspect_ratio") is not None


def test_get_model_names_the_known_ids() -> None:
    assert get_model("FLUX.2-pro").bfl_path == "flux-2-pro"
    with pytest.raises(KeyError, match=r"FLUX\.2-flex"):
        get_model("flux-2-pro")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("16:9", (16, 9)), (" 1:1 ", (1, 1)), ("16/9", None), ("0:1", None), ("a:b", None), ("1:2:3", None), ("", None)],
)
def test_parse_aspect_ratio(text: str, expected: tuple[int, int] | None) -> None:
    assert parse_aspect_ratio(text) == expected


def test_aspect_ratio_size_is_about_one_megapixel_on_the_grid() -> None:
    rule = MODELS["FLUX.1-Kontext-pro"].size
    assert isinstance(rule, AspectRatioSize)
    for ratio in [(1, 1), (16, 9), (9, 16), (21, 9), (9, 21), (4, 3)]:
        w, h = aspect_ratio_size(rule, ratio)
        assert w % 32 == 0 and h % 32 == 0
        assert 0.85 * 1_048_576 <= w * h <= 1_048_576
        assert math.isclose(w / h, ratio[0] / ratio[1], rel_tol=0.06)
    assert aspect_ratio_size(rule, (1, 1)) == (1024, 1024)


def test_price_hint() -> None:
    assert PriceHint(usd_per_image=0.04).estimate(10**6) == 0.04
    assert PriceHint(usd_per_megapixel=0.03).estimate(2_000_000) == pytest.approx(0.06)
    assert PriceHint(note="x").estimate(10**6) is None


# --- drift from ../shared/foundry-flux-contract.md ----------------------------------------

def _contract() -> str:
    return require_shared(SHARED / "foundry-flux-contract.md").read_text()


def _table_after(text: str, heading: str) -> list[list[str]]:
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header


def test_section_1_models_routes_and_limits_match_the_contract() -> None:
    rows = _table_after(_contract(), "## 1. Models, routes and limits")
    assert {r[0].strip("`") for r in rows} == set(MODELS), "the contract and the registry list different models"
    for model_id, path, image_api, refs, max_out, prompt, tiers in rows:
        spec = MODELS[model_id.strip("`")]
        assert spec.bfl_path == (path.strip("`") if path.startswith("`") else None), spec.id
        expected_api = {"no": set(), "generations": {"generations"}, "generations + edits": {"generations", "edits"},
                        "§4": set()}[image_api]
        assert set(spec.image_api) == expected_api, spec.id
        assert spec.aml == (image_api == "§4"), spec.id
        assert spec.max_references == int(re.match(r"\d+", refs).group()), spec.id  # type: ignore[union-attr]
        if m := re.match(r"([\d.]+) MP", max_out):
            assert spec.max_output_mp == float(m.group(1)), spec.id
        assert spec.prompt.max_tokens == int(re.match(r"[\d,]+", prompt).group().replace(",", "")), spec.id  # type: ignore[union-attr]
        if "T5" in prompt:
            assert spec.prompt.tokenizer == "t5-xxl"
        pairs = re.findall(r"([A-Za-z]+) (\d+)", tiers)
        if pairs:
            assert dict(spec.rpm_tiers) == {k.lower(): int(v) for k, v in pairs}, spec.id
        elif tiers.isdigit():
            assert dict(spec.rpm_tiers) == {"default": int(tiers)}, spec.id
        else:
            assert dict(spec.rpm_tiers) == {} and spec.default_tier is None, spec.id


def test_section_2_parameters_match_the_contract() -> None:
    rows = {r[0].strip("`").split("`")[0]: r[1:] for r in _table_after(_contract(), "Parameters by model")}
    columns = ["FLUX.2-pro", "FLUX.2-flex", "FLUX.1-Kontext-pro", "FLUX-1.1-pro"]
    checked = 0
    for field_name, cells in rows.items():
        if field_name in ("prompt", "width"):
            continue
        previous = ""
        for model_id, cell in zip(columns, cells, strict=True):
            spec = MODELS[model_id]
            cell = previous if cell == "same" else cell
            previous = cell
            p = spec.param(field_name)
            if cell in ("—", "-") or "[seen] ignored" in cell:
                assert p is None, f"{model_id} should not offer {field_name}"
                continue
            if cell == "[open]":
                continue  # unknown: the registry leaves it out rather than promise it
            assert p is not None, f"{model_id} is missing {field_name}"
            checked += 1
            if m := re.search(r"(\d+(?:\.\d+)?)–(\d+(?:\.\d+)?)", cell):
                assert (p.minimum, p.maximum) == (float(m.group(1)), float(m.group(2))), (model_id, field_name)
            if m := re.search(r"\((\d+)–(\d+) for edits\)", cell):
                assert p.edit_maximum == float(m.group(2)), (model_id, field_name)
            if m := re.search(r"default (\S+?)[,)]?$", cell) or re.search(r"default:? (\w+(?:\.\d+)?)", cell):
                want = m.group(1).strip("`")
                got = p.default
                if isinstance(got, bool):
                    assert str(got).lower() == want, (model_id, field_name)
                elif isinstance(got, int | float):
                    assert got == float(want), (model_id, field_name)
            if "BFL default true" in cell:
                assert p.default is True
            if m := re.search(r"`(\w+)` \(default\)", cell):
                assert p.default == m.group(1), (model_id, field_name)
            if field_name == "output_format":
                assert set(re.findall(r"`(\w+)`", cell)) == set(p.choices), model_id
                if "(default)" not in cell:
                    assert p.default == re.findall(r"`(\w+)`", cell)[0], model_id
            if field_name == "aspect_ratio":
                rule = spec.size
                assert isinstance(rule, AspectRatioSize)
                assert f"{rule.widest[0]}:{rule.widest[1]}" in cell and f"{rule.tallest[0]}:{rule.tallest[1]}" in cell
    assert checked >= 15
    sizes = rows["width"]
    flux2 = MODELS["FLUX.2-pro"].size
    assert isinstance(flux2, PixelSize)
    assert f"≥{flux2.min_side}" in sizes[0] and f"multiples of {flux2.multiple}" in sizes[0] and "4 MP" in sizes[0]
    assert flux2.max_pixels == FOUR_MP and flux2.snap == "floor"
    pro11 = MODELS["FLUX-1.1-pro"].size
    assert isinstance(pro11, PixelSize)
    assert f"{pro11.min_side}–{pro11.max_side}" in sizes[3] and f"multiples of {pro11.multiple}" in sizes[3]
    assert f"default {pro11.default[0]}×{pro11.default[1]}" in sizes[3]


def test_section_4_schnell_matches_the_contract() -> None:
    text = _contract().split("## 4.", 1)[1].split("## 5.", 1)[0]
    spec = MODELS["FLUX.1-schnell"]
    listed = set(re.search(r'"parameters": \{([^}]*)\}', text).group(1).replace('"', "").replace(" ", "").split(","))  # type: ignore[union-attr]
    assert "scheduler" in listed and spec.param("scheduler") is None  # not accepted by the FLUX pipeline
    assert listed - {"scheduler"} <= {p.name for p in spec.all_params}
    steps = spec.param("num_inference_steps")
    assert steps is not None and (steps.minimum, steps.maximum, steps.default) == (1, 4, 4)
    assert spec.param("guidance_scale").default == 0  # type: ignore[union-attr]
    assert isinstance(spec.size, PixelSize) and spec.size.multiple == 16
    assert spec.prompt.max_tokens == 256 and spec.prompt.over_limit == "truncated"
    assert set(spec.param("output_format").choices) == {"png", "jpeg", "webp"}  # type: ignore[union-attr]


def test_input_limit_is_the_services_downscale_point() -> None:
    assert "downscaled by the service\n  to 4 MP" in _contract() or "to 4 MP" in _contract()
    for spec in SPECS:
        if spec.max_references:
            assert spec.max_input_pixels == FOUR_MP, spec.id
