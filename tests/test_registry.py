"""The registry: a strict schema, cross-field rules, and no drift from the wire contract."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, fields

import pytest

from conftest import FOUNDRY_MODELS, REPO
from flux_ui.registry import (
    FOUR_MP,
    MODELS,
    AspectRatioSize,
    ModelSpec,
    Param,
    PixelSize,
    PriceHint,
    PromptLimit,
    Route,
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
            value = getattr(spec, f.name)
            if "None" not in str(f.type):  # only a field declared optional may be left None
                assert value is not None, (spec.id, f.name)
            if isinstance(value, str):
                assert value.strip() == value != "", (spec.id, f.name)  # no empty or padded text


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
        w, h = rule.size_for(ratio)
        assert w % 32 == 0 and h % 32 == 0
        assert 0.85 * 1_048_576 <= w * h <= 1_048_576
        assert math.isclose(w / h, ratio[0] / ratio[1], rel_tol=0.06)
    assert rule.size_for((1, 1)) == (1024, 1024)


def test_price_hint() -> None:
    assert PriceHint(usd_per_image=0.04).estimate(10**6) == 0.04
    assert PriceHint(usd_per_megapixel=0.03).estimate(2_000_000) == pytest.approx(0.06)
    assert PriceHint(note="x").estimate(10**6) is None


# --- drift from docs/service-contract.md ------------------------------------------------
#
# The contract page is part of the repository, so these tests never skip. They parse its
# tables and bullets and compare every fact the registry (and the client's retry and prompt
# rules) take from it; another test makes sure each fact there is tagged and sourced.

CONTRACT = REPO / "docs" / "service-contract.md"
SECTION_TITLES = {
    1: "Models, routes and limits",
    2: "BFL provider route",
    3: "Image API",
    4: "FLUX.1-schnell on Azure ML",
    5: "Retrying",
    6: "Prompt length",
}
TAG = re.compile(r"\*\*\[(doc|seen|open)\]\*\*")
SOURCE = re.compile(r"\*(Sources?): ([^*]+?)\.\*$")
#: The sources the page names in its introduction, spelt as it spells them.
KNOWN_SOURCES = {"Microsoft", "BFL", "Hugging Face", "Azure ML card", "users", "openai-python", "azure-core",
                 "tokenizers"}


@dataclass
class Block:
    """A bullet (with its continuation lines), a table (with the paragraph before it) or a stray paragraph."""

    kind: str  # "bullet", "table" or "text"
    lines: list[str]
    caption: str = ""

    @property
    def text(self) -> str:
        return " ".join(line.strip() for line in self.lines)

    @property
    def cells(self) -> list[list[str]]:
        """Table rows as stripped cells, the separator row left out (the header is row 0)."""
        rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in self.lines]
        return [r for r in rows if not all(set(c) <= set("-: ") for c in r)]


def _contract() -> str:
    return CONTRACT.read_text(encoding="utf-8")


def _sections(text: str) -> dict[int, str]:
    """§1 to §6 by number: each present once, in order, under its expected title."""
    found = re.findall(r"^## (\d+)\. (.+)$", text, flags=re.MULTILINE)
    assert [int(n) for n, _ in found] == list(SECTION_TITLES), "the contract's sections are §1 to §6, in order"
    for number, title in found:
        assert title.startswith(SECTION_TITLES[int(number)]), (number, title)
    bodies = re.split(r"^## \d+\. .*$", text, flags=re.MULTILINE)[1:]
    return dict(zip(SECTION_TITLES, bodies, strict=True))


def _section(number: int) -> str:
    return _sections(_contract())[number]


def _blocks(section: str) -> list[Block]:
    blocks: list[Block] = []
    current: Block | None = None
    for line in section.splitlines():
        if not line.strip():
            current = None
        elif line.startswith("|"):
            if current is None or current.kind != "table":
                caption = blocks.pop().text if blocks and blocks[-1].kind == "text" else ""
                current = Block("table", [], caption)
                blocks.append(current)
            current.lines.append(line)
        elif line.startswith("- "):
            current = Block("bullet", [line[2:]])
            blocks.append(current)
        elif current is not None and current.kind == "text":
            current.lines.append(line)  # a paragraph goes on
        elif current is not None and current.kind == "bullet" and line.startswith("  "):
            current.lines.append(line)  # the bullet's indented continuation
        else:
            current = Block("text", [line])
            blocks.append(current)
    return blocks


def _bullets(number: int) -> list[str]:
    return [b.text for b in _blocks(_section(number)) if b.kind == "bullet"]


def _bullet(number: int, *phrases: str) -> str:
    """The one bullet of a section that holds every phrase."""
    hits = [b for b in _bullets(number) if all(p in b for p in phrases)]
    assert len(hits) == 1, f"§{number}: expected one bullet with {phrases}, found {len(hits)}"
    return hits[0]


def _tables(number: int) -> list[Block]:
    return [b for b in _blocks(_section(number)) if b.kind == "table"]


def _table(number: int, first_header: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the section's table whose first column is ``first_header``; tags unbolded."""
    hits = [t for t in _tables(number) if t.cells[0][0] == first_header]
    assert len(hits) == 1, f"§{number}: one table headed {first_header!r}"
    cells = [[c.replace("**", "") for c in row] for row in hits[0].cells]
    return cells[0], cells[1:]


def _source_names(clause: str) -> list[str]:
    return [name.strip() for name in re.sub(r"\s*\([^)]*\)", "", clause).split(",")]


def _tag_and_source_problems(where: str, tags: list[str], clause: str | None, *, plural: str = "") -> list[str]:
    """What is wrong with one fact's tag(s) and source clause."""
    if not tags:
        return [f"{where}: no tag"]
    if clause is None:
        return [f"{where}: no source"]
    names = _source_names(clause)
    bad = [f"{where}: unknown source {n!r}" for n in names if n not in KNOWN_SOURCES]
    if plural and (plural == "Sources") != (len(names) > 1):
        bad.append(f"{where}: '{plural}:' names {len(names)} source(s)")
    if "seen" in tags and "users" not in names:
        bad.append(f"{where}: a [seen] fact must cite users")
    if "doc" in tags and not set(names) - {"users"}:
        bad.append(f"{where}: a [doc] fact must cite a document")
    return bad


def _tag_problems(number: int, block: Block) -> list[str]:
    where = f"§{number} {block.kind} {block.text[:60]!r}"
    if block.kind == "text":
        return [f"{where}: a paragraph that is neither a tagged bullet nor a table caption"]
    if block.kind == "bullet":
        tags = TAG.findall(block.text)
        if not TAG.match(block.text):
            return [f"{where}: the bullet does not start with its tag"]
        if len(tags) != 1:
            return [f"{where}: one tag per bullet, found {len(tags)}"]
        m = SOURCE.search(block.text)
        return _tag_and_source_problems(where, tags, m.group(2) if m else None, plural=m.group(1) if m else "")
    header, *rows = block.cells
    if "Tag" in header and "Source" in header:
        bad: list[str] = []
        for row in rows:
            tag = TAG.fullmatch(row[header.index("Tag")])
            bad += _tag_and_source_problems(f"{where} row {row[0][:30]!r}", [tag.group(1)] if tag else [],
                                            row[header.index("Source")])
        return bad
    caption_tags = TAG.findall(block.caption)
    if len(caption_tags) != 1:
        return [f"{where}: a table without Tag and Source columns needs a caption with one tag"]
    m = SOURCE.search(block.caption)
    cell_tags = TAG.findall(" ".join(line for line in block.lines))
    return _tag_and_source_problems(where, caption_tags + cell_tags, m.group(2) if m else None,
                                    plural=m.group(1) if m else "")


def _all_tag_problems(text: str) -> list[str]:
    return [problem for number, body in _sections(text).items() for block in _blocks(body)
            for problem in _tag_problems(number, block)]


def test_every_fact_in_the_contract_is_tagged_and_sourced() -> None:
    text = _contract()
    assert "Nothing here was verified against Azure by this project" in text
    assert _all_tag_problems(text) == []
    blocks = [b for body in _sections(text).values() for b in _blocks(body)]
    assert sum(b.kind == "bullet" for b in blocks) >= 50 and sum(b.kind == "table" for b in blocks) == 3


def test_the_tag_check_catches_untagged_facts() -> None:
    """The checker must fail on each way a fact can lose its tag or source."""
    text = _contract()
    good_bullet = "- **[doc]** A FLUX deployment produces a single image per request"
    assert good_bullet in text
    broken = [
        text.replace(good_bullet, "- A FLUX deployment produces a single image per request"),  # no tag
        text.replace(good_bullet, "- **[doc]** **[seen]** A FLUX deployment produces a single image per request"),
        text.replace("- **[seen]** An `api-key: <key>` header is accepted as well. *Source: users.*",
                     "- **[seen]** An `api-key: <key>` header is accepted as well. *Source: Microsoft.*"),
        text.replace("single image per request, whatever the model. *Source:", "single image per request. *From:"),
        text.replace("*Source: tokenizers.*", "*Source: a blog.*"),
        text.replace("## 5. Retrying\n", "## 5. Retrying\n\nRetries are rare.\n"),  # a stray, untagged paragraph
        text.replace("**[doc]** for the four Foundry models", "For the four Foundry models"),  # an untagged table
        text.replace("| 5xx | a passing fault on the service's side | yes | **[doc]** |", "| 5xx | x | yes | doc |"),
    ]
    for variant in broken:
        assert variant != text
        assert _all_tag_problems(variant), "a broken variant passed the tag check"


def test_section_1_models_routes_and_limits_match_the_contract() -> None:
    header, rows = _table(1, "Model ID (body `model`)")
    assert header == ["Model ID (body `model`)", "BFL route path", "Image API", "Refs max", "Max output",
                      "Prompt limit", "RPM tiers"]
    assert [r[0].strip("`") for r in rows] == list(MODELS), "the contract and the registry list different models"
    for model_id, path, image_api, refs, max_out, prompt, tiers in rows:
        spec = MODELS[model_id.strip("`")]
        assert spec.bfl_path == (path.strip("`") if path.startswith("`") else None), spec.id
        expected_api = {"no": set(), "generations": {"generations"}, "generations + edits": {"generations", "edits"},
                        "§4": set()}[image_api]
        assert set(spec.image_api) == expected_api, spec.id
        assert spec.aml == (image_api == "§4"), spec.id
        m = re.match(r"(\d+)( \(text only\))?$", refs)
        assert m is not None and spec.max_references == int(m.group(1)), spec.id
        assert (spec.max_input_pixels is None) == (spec.max_references == 0), spec.id
        if m := re.fullmatch(r"([\d.]+) MP", max_out):
            assert spec.max_output_mp == float(m.group(1)), spec.id
            if isinstance(spec.size, AspectRatioSize):
                assert spec.size.megapixels == float(m.group(1)), spec.id
        else:
            assert max_out == "see §4" and spec.aml, spec.id
        m = re.match(r"([\d,]+) (?:T5 )?tokens", prompt)
        assert m is not None and spec.prompt.max_tokens == int(m.group(1).replace(",", "")), spec.id
        tokenizer = "t5-xxl" if "T5" in prompt else "mistral-tekken" if "Tekken" in prompt else None
        assert spec.prompt.tokenizer == tokenizer, spec.id
        assert spec.prompt.over_limit == ("truncated" if "truncated" in prompt else "rejected"), spec.id
        if pairs := re.findall(r"([A-Za-z]+) (\d+)", tiers):
            assert dict(spec.rpm_tiers) == {k.lower(): int(v) for k, v in pairs}, spec.id
            assert spec.default_tier == pairs[0][0].lower(), spec.id  # the lowest tier, listed first
        elif tiers.isdigit():
            assert dict(spec.rpm_tiers) == {"default": int(tiers)}, spec.id
        else:
            assert "§4" in tiers and spec.aml, spec.id
            assert dict(spec.rpm_tiers) == {} and spec.default_tier is None, spec.id


def test_section_1_facts_match_the_registry() -> None:
    registration = _bullet(1, "registration")
    assert set(re.findall(r"`(FLUX[^`]*)`", registration)) == {s.id for s in SPECS if s.registration_required}
    prices = _bullet(1, "List prices")
    listed = {m[0]: (float(m[1]), m[2]) for m in re.findall(r"`(FLUX[^`]*)` (?:from )?\$([\d.]+) per (megapixel|image)",
                                                           prices)}
    assert listed, "the price bullet lists no prices"
    for spec in SPECS:
        if spec.id in listed:
            amount, unit = listed[spec.id]
            got = spec.price.usd_per_megapixel if unit == "megapixel" else spec.price.usd_per_image
            assert got == amount, spec.id
            assert f"${amount:.2f} per {unit}" in spec.price.note, spec.id
        else:
            assert spec.price.usd_per_image is None and spec.price.usd_per_megapixel is None, spec.id
    flex_fields = _bullet(1, "input_image_9")
    assert "promises 10 references" in flex_fields and MODELS["FLUX.2-flex"].max_references == 10


def test_input_limit_is_the_services_downscale_point() -> None:
    from flux_ui.emulator.references import MAX_REFERENCE_BYTES, MAX_REFERENCE_PIXELS

    limits = _bullet(1, "Input images")
    m = re.search(r"up to (\d+) MB and (\d+) MP", limits)
    assert m is not None
    assert (int(m.group(1)) * 1_048_576, int(m.group(2)) * 1_048_576) == (MAX_REFERENCE_BYTES, MAX_REFERENCE_PIXELS)
    m = re.search(r"larger\s+than (\d+) MP to (\d+) MP", limits)
    assert m is not None and m.group(1) == m.group(2)
    for spec in SPECS:
        if spec.max_references:
            assert spec.max_input_pixels == int(m.group(1)) * 1_048_576 == FOUR_MP, spec.id


def test_section_2_parameters_match_the_contract() -> None:
    header, table = _table(2, "Field")
    assert header[0] == "Field"
    for column, model_id in zip(header[1:], FOUNDRY_MODELS, strict=True):  # a column per model, in order
        assert [m for m in FOUNDRY_MODELS if m.endswith(column)] == [model_id], column  # named by its ID's end
    rows = {r[0].strip("`").split("`")[0]: r[1:] for r in table}
    offered: dict[str, set[str]] = {m: set() for m in FOUNDRY_MODELS}
    checked = 0
    for field_name, cells in rows.items():
        previous = ""
        for model_id, cell in zip(FOUNDRY_MODELS, cells, strict=True):
            spec = MODELS[model_id]
            cell = previous if cell == "same" else cell
            previous = cell
            if field_name == "prompt":
                continue
            if field_name == "width":
                if not cell.startswith("—"):
                    offered[model_id] |= {"width", "height"}
                continue
            p = spec.param(field_name)
            if cell.startswith("—") or "[seen] ignored" in cell:
                assert p is None, f"{model_id} should not offer {field_name}"
                continue
            if cell == "[open]":
                assert p is None, f"{model_id}: {field_name} is open, so the registry must not promise it"
                continue
            assert p is not None, f"{model_id} is missing {field_name}"
            offered[model_id].add(field_name)
            checked += 1
            if cell.startswith("int or null"):
                assert p.kind == "int" and p.nullable and p.default is None, (model_id, field_name)
                continue
            if p.kind in ("int", "float"):
                m = re.search(r"(\d+(?:\.\d+)?)–(\d+(?:\.\d+)?)", cell)
                assert m is not None, (model_id, field_name, "no range in the contract")
                assert (p.minimum, p.maximum) == (float(m.group(1)), float(m.group(2))), (model_id, field_name)
                if m := re.search(r"\((\d+)–(\d+) for edits\)", cell):
                    assert p.edit_maximum == float(m.group(2)), (model_id, field_name)
                else:
                    assert p.edit_maximum is None, (model_id, field_name)
            if cell.startswith("bool"):
                assert p.kind == "bool", (model_id, field_name)
            if m := re.search(r"default (\S+?)[,)]?$", cell) or re.search(r"default:? (\w+(?:\.\d+)?)", cell):
                want = m.group(1).strip("`")
                got = p.default
                if isinstance(got, bool):
                    assert str(got).lower() == want, (model_id, field_name)
                elif isinstance(got, int | float):
                    assert got == float(want), (model_id, field_name)
            elif p.kind in ("int", "float", "bool"):
                raise AssertionError(f"{model_id}.{field_name}: the contract gives no default")
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
                assert f"between {rule.widest[0]}:{rule.widest[1]} and {rule.tallest[0]}:{rule.tallest[1]}" in cell
    assert checked >= 15
    for model_id in FOUNDRY_MODELS:
        assert offered[model_id] == {p.name for p in MODELS[model_id].all_params}, model_id
    sizes = rows["width"]
    flux2 = MODELS["FLUX.2-pro"].size
    assert isinstance(flux2, PixelSize) and MODELS["FLUX.2-flex"].size == flux2 and sizes[1] == "same"
    assert sizes[0].startswith(f"≥{flux2.min_side}, multiples of {flux2.multiple}, ≤4 MP")
    assert flux2.max_pixels == FOUR_MP and flux2.max_side is None
    assert f"floored to {flux2.multiple}" in sizes[0] and flux2.snap == "floor"
    pro11 = MODELS["FLUX-1.1-pro"].size
    assert isinstance(pro11, PixelSize)
    assert sizes[3] == (f"{pro11.min_side}–{pro11.max_side}, multiples of {pro11.multiple}, "
                        f"default {pro11.default[0]}×{pro11.default[1]}")


def test_section_2_route_and_errors_match_the_client() -> None:
    from flux_ui.client.retry import NEVER_RETRY_STATUSES, RETRYABLE_STATUSES
    from flux_ui.client.wire import BFL_ROUTE_PREFIX, REFUSAL_CODES
    from flux_ui.settings import Settings

    route = _bullet(2, "Request line")
    assert f"{BFL_ROUTE_PREFIX}<path>?api-version={Settings.api_version}`" in route
    header, rows = _table(2, "Status and body")
    assert header == ["Status and body", "Meaning", "Retry?", "Tag", "Source"]
    retry: set[int] = set()
    never: set[int] = set()
    for status, _meaning, verdict, _tag, _source in rows:
        codes = {int(c) for c in re.findall(r"(?<![\w\"])([1-5]\d\d)(?![\w\"])", status)}
        assert codes or status == "5xx", status
        (retry if verdict == "yes" else never).update(codes)
        assert verdict in ("yes", "no") or verdict.startswith("no:"), verdict
        if status == "5xx":
            assert verdict == "yes"
    assert retry == set(RETRYABLE_STATUSES) and never == set(NEVER_RETRY_STATUSES)
    # The refusal codes of §2 and §3 (less the asides in brackets) are the ones the client knows.
    refusals = re.sub(r"\([^)]*\)", "", rows[0][0] + " " + _bullet(3, "A refusal is a 400"))
    assert {c.lower() for c in re.findall(r"`([A-Za-z_]+)`", refusals)} == REFUSAL_CODES


def test_section_3_image_api_carries_what_the_registry_marks() -> None:
    body = _bullet(3, "JSON body")
    fields_sent = set(re.findall(r"`(\w+)`", body))
    assert {"prompt", "n", "size"} <= fields_sent
    for spec in SPECS:
        marked = {p.name for p in spec.params if p.image_api}
        if spec.image_api:
            assert marked <= fields_sent, spec.id
            assert all(p.image_api for p in spec.size_params), spec.id  # sizes travel as `size`


def test_section_4_schnell_matches_the_contract() -> None:
    text = _section(4)
    spec = MODELS["FLUX.1-schnell"]
    listed = set(re.search(r'"parameters": \{([^}]*)\}', text).group(1).replace('"', "").replace(" ", "").split(","))  # type: ignore[union-attr]
    assert "scheduler" in listed and spec.param("scheduler") is None  # not accepted by the FLUX pipeline
    assert "scheduler" in _bullet(4, "does not take a `scheduler`")
    assert listed - {"scheduler"} == {p.name for p in spec.all_params} - {"output_format"}
    steps = spec.param("num_inference_steps")
    m = re.search(r"run (\d+) to (\d+) steps, and (\d+) is the sensible\s+default", _bullet(4, "timestep-distilled"))
    assert m is not None and steps is not None
    assert (steps.minimum, steps.maximum, steps.default) == tuple(int(g) for g in m.groups())
    m = re.search(r"guidance scale of (\d+)", _bullet(4, "ignores guidance"))
    assert m is not None and spec.param("guidance_scale").default == int(m.group(1))  # type: ignore[union-attr]
    m = re.search(r"multiples of (\d+); the pipeline floors", _bullet(4, "Width and height"))
    assert m is not None and isinstance(spec.size, PixelSize)
    assert spec.size.multiple == int(m.group(1)) and spec.size.snap == "floor"
    m = re.search(r"sides from (\d+) to (\d+) px on the grid of (\d+)", _bullet(4, "largest output size"))
    assert m is not None
    assert (spec.size.min_side, spec.size.max_side, spec.size.multiple) == tuple(int(g) for g in m.groups())
    m = re.search(r"budget is (\d+) tokens; the pipeline silently cuts", _bullet(4, "T5 prompt budget"))
    assert m is not None
    assert spec.prompt == PromptLimit(int(m.group(1)), "t5-xxl", "truncated")
    formats = re.findall(r"`image/(\w+)`", _bullet(4, "raw bytes"))
    assert set(spec.param("output_format").choices) == set(formats) == {"png", "jpeg", "webp"}  # type: ignore[union-attr]
    assert spec.param("output_format").default == formats[0]  # type: ignore[union-attr]
    assert "no Foundry RPM tiers" in _bullet(4, "RPM") and not spec.rpm_tiers


def test_section_5_retry_numbers_match_the_client() -> None:
    from flux_ui.client import retry

    m = re.search(r"up to (\d+) retries", _bullet(5, "openai-python makes"))
    assert m is not None and int(m.group(1)) == retry.MAX_RETRIES
    m = re.search(r"`min\(([\d.]+)·2ⁿ, ([\d.]+)\)` seconds .* less a random 0 to (\d+) %", _bullet(5, "backs off"))
    assert m is not None
    documented = (float(m.group(1)), float(m.group(2)), int(m.group(3)) / 100)
    assert documented == (retry.INITIAL_BACKOFF_S, retry.MAX_BACKOFF_S, retry.JITTER)
    m = re.search(r"flux-ui's own ceiling is lower, (\d+) s \(`RETRY_AFTER_CAP_S`\)", _bullet(5, "retry-after-ms"))
    assert m is not None and float(m.group(1)) == retry.RETRY_AFTER_CAP_S
    m = re.search(r"never retries ([\d, or]+), and neither does flux-ui", _bullet(5, "not idempotent"))
    assert m is not None
    assert {int(c) for c in re.findall(r"\d+", m.group(1))} == set(retry.NEVER_RETRY_STATUSES)


def test_section_6_tokenizers_and_bounds_match_the_registry() -> None:
    from flux_ui.client.validation import prompt_token_bounds

    assert _bullet(6, "Tekken vocabulary").startswith("**[doc]** FLUX.2's limit")
    m = re.search(r"\*\* (.+) count T5-XXL tokens", _bullet(6, "count T5-XXL tokens"))
    assert m is not None
    t5 = {model_id for name in re.split(r", | and ", m.group(1)) for model_id in MODELS if model_id.endswith(name)}
    for spec in SPECS:
        want = "t5-xxl" if spec.id in t5 else "mistral-tekken"
        assert spec.prompt.tokenizer == want, spec.id
        assert spec.id.startswith("FLUX.2") == (want == "mistral-tekken"), spec.id
    m = re.search(r"no more T5 tokens than NFKC-normalised characters plus (\d+)", _bullet(6, "upper bounds"))
    assert m is not None and "no more Tekken tokens than UTF-8 bytes" in _bullet(6, "upper bounds")
    prompt = "Ｆｕｌｌ-width ﬁ café ☕"
    assert prompt_token_bounds(prompt, "mistral-tekken")[1] == len(prompt.encode("utf-8"))
    assert prompt_token_bounds(prompt, "t5-xxl")[1] == len(unicodedata.normalize("NFKC", prompt)) + int(m.group(1))


# --- modes: what each model does is declared, and the tabs filter on it --------------------------

def test_every_model_declares_its_modes_and_the_rules_on_them_hold() -> None:
    from dataclasses import replace

    from flux_ui.registry import Mode

    for spec in MODELS.values():
        assert spec.modes and spec.does(Mode.GENERATE), spec.id
    assert {m for m, s in MODELS.items() if s.does(Mode.MULTI_REFERENCE_EDIT)} == {"FLUX.2-pro", "FLUX.2-flex"}
    assert {m for m, s in MODELS.items() if s.does(Mode.INSTRUCTION_EDIT)} == {"FLUX.1-Kontext-pro"}
    pro = MODELS["FLUX.2-pro"]
    with pytest.raises(ValueError, match="multi-reference edit needs"):
        replace(pro, max_references=1)
    with pytest.raises(ValueError, match="at least one mode"):
        replace(pro, modes=frozenset())
    with pytest.raises(ValueError, match="instruction edit needs"):
        replace(MODELS["FLUX-1.1-pro"], modes=frozenset({Mode.INSTRUCTION_EDIT}))


def test_tabs_offer_a_model_by_its_declared_modes_not_its_reference_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from flux_ui.registry import Mode
    from flux_ui.ui import compare_run, edit, kontext_edit, text_to_image

    # References it could take, but declared for text to image only; and an editor that cannot generate.
    drawer = replace(MODELS["FLUX.2-flex"], id="FLUX.2-drawer", modes=frozenset({Mode.GENERATE}))
    editor = replace(MODELS["FLUX.1-Kontext-pro"], id="Kontext-editor", modes=frozenset({Mode.INSTRUCTION_EDIT}))
    extended = {**MODELS, drawer.id: drawer, editor.id: editor}
    for module in (compare_run, edit, kontext_edit, text_to_image):
        monkeypatch.setattr(module, "MODELS", extended)
    models = tuple(extended)
    assert drawer.id not in edit.edit_models(models) and "FLUX.2-flex" in edit.edit_models(models)
    assert drawer.id in text_to_image.text_models(models) and drawer.id in compare_run.comparable_models(models)
    assert editor.id in kontext_edit.edit_models(models)
    assert editor.id not in text_to_image.text_models(models) and editor.id not in compare_run.comparable_models(models)
