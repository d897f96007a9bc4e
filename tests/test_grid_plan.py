"""The Grid tab's planning core: typed axis values, planned cells, variations and estimates (no I/O)."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from flux_ui.errors import ValidationError
from flux_ui.grid import (
    MAX_CELLS,
    MAX_VALUES,
    PSEUDO_AXES,
    RANDOM_SEED_MAX,
    Cell,
    GridAxis,
    GridBase,
    axis_kinds,
    axis_label,
    estimate,
    format_duration,
    format_value,
    parse_values,
    plan_grid,
    plan_variations,
    split_values,
)
from flux_ui.pacing import Quota
from flux_ui.registry import MODELS, SEED_MAX, AspectRatioSize, Mode, PixelSize

DEPLOYED = tuple(spec.id for spec in MODELS.values() if spec.does(Mode.GENERATE))
PRO, FLEX = "FLUX.2-pro", "FLUX.2-flex"
#: Models by what they are, from the registry: one with an aspect-ratio size, one billed per image, one unpriced.
KONTEXT = next(s.id for s in MODELS.values() if isinstance(s.size, AspectRatioSize))
PER_IMAGE = next(s.id for s in MODELS.values() if s.price.usd_per_image is not None)
UNPRICED = next(s.id for s in MODELS.values() if s.price.estimate(1_000_000) is None and s.does(Mode.GENERATE))


def refused(kind: str, text: str, models: tuple[str, ...] = DEPLOYED) -> str:
    with pytest.raises(ValidationError) as info:
        parse_values(kind, text, models)
    return str(info.value)


def plan(*axes: tuple[str, str], model: str = PRO, prompt: str = "a cat on a sofa", rng_seed: int = 7,
         deployed: tuple[str, ...] = DEPLOYED, **params: object):
    grid_axes = [GridAxis.parse(kind, text, deployed) for kind, text in axes]
    return plan_grid(GridBase(prompt, model, params), grid_axes, deployed, random.Random(rng_seed))


def default_quotas() -> dict[str, Quota | None]:
    return {m: Quota.from_rpm(spec.default_rpm) if spec.default_rpm else None for m, spec in MODELS.items()}


# --- the axis kinds ---------------------------------------------------------------------------------------

def test_axis_kinds_are_the_pseudo_axes_and_every_parameter_the_registry_has() -> None:
    kinds = axis_kinds()
    assert kinds[:len(PSEUDO_AXES)] == ("model", "seed", "prompt", "style", "size")
    names = {p.name for spec in MODELS.values() for p in spec.all_params} - {"seed", "width", "height"}
    assert set(kinds[len(PSEUDO_AXES):]) == names
    assert "guidance" in axis_kinds([FLEX]) and "guidance" not in axis_kinds([PRO])


def test_labels_come_from_the_registry_and_tell_twins_apart() -> None:
    assert axis_label("guidance") == MODELS[FLEX].param("guidance").label  # type: ignore[union-attr]
    assert axis_label("prompt") == "Prompt S/R"
    # FLUX.2 [flex]'s steps and schnell's num_inference_steps are both labelled "Steps"
    assert axis_label("steps") != axis_label("num_inference_steps")


@pytest.mark.parametrize("kind", ["colour", "width", "height", ""])
def test_an_unknown_axis_lists_the_kinds(kind: str) -> None:
    message = refused(kind, "1")
    assert "Unknown axis" in message and "guidance" in message and "size" in message


# --- lists and ranges -------------------------------------------------------------------------------------

def test_a_list_of_numbers_takes_the_parameter_kind() -> None:
    assert parse_values("guidance", "1.5, 3, 4.5", DEPLOYED) == [1.5, 3.0, 4.5]
    values = parse_values("steps", "20,30 , 40", DEPLOYED)
    assert values == [20, 30, 40] and all(type(v) is int for v in values)


def test_an_evenly_spaced_range_includes_both_ends() -> None:
    values = parse_values("guidance", "1.5-10 (4 values)", DEPLOYED)
    assert len(values) == 4 and values[0] == 1.5 and values[-1] == 10
    gaps = [b - a for a, b in itertools.pairwise(values)]
    assert all(math.isclose(g, 8.5 / 3, rel_tol=1e-9) for g in gaps)
    assert parse_values("guidance", "2-4 [3]", DEPLOYED) == [2, 3, 4]


def test_a_stepped_range_and_an_integer_range() -> None:
    assert parse_values("steps", "20-50 (+10)", DEPLOYED) == [20, 30, 40, 50]
    assert parse_values("steps", "20 - 45 (+10)", DEPLOYED) == [20, 30, 40]  # the end is not passed
    assert parse_values("steps", "1-3", DEPLOYED) == [1, 2, 3]
    assert parse_values("steps", "3-1", DEPLOYED) == [3, 2, 1]
    assert parse_values("guidance", "1.5-2 (+0.1)", DEPLOYED) == [1.5, 1.6, 1.7, 1.8, 1.9, 2.0]  # no float noise


def test_an_evenly_spaced_integer_range_rounds_to_distinct_whole_numbers() -> None:
    assert parse_values("steps", "1-50 (4 values)", DEPLOYED) == [1, 17, 34, 50]
    assert parse_values("seed", "1-4 (4 values)", DEPLOYED) == [1, 2, 3, 4]
    assert parse_values("steps", "1-4 (3 values)", DEPLOYED) == [1, 3, 4]  # 2.5 rounds up, not to even
    assert "only 3" in refused("steps", "1-3 (5 values)")


def test_ranges_and_lists_mix() -> None:
    assert parse_values("steps", "1-3, 10, 20-40 (+20)", DEPLOYED) == [1, 2, 3, 10, 20, 40]


@pytest.mark.parametrize("text", ["-1-3", "3--1", "-1 - 3 (+1)"])
def test_negative_range_ends_are_refused_clearly(text: str) -> None:
    message = refused("guidance", text)
    assert "negative" in message and "list the values" in message


@pytest.mark.parametrize("text", ["abc", "1.5-", "4 values", "1..2", "1-3 (+)", "1e999"])
def test_what_is_not_a_number_says_how_to_write_one(text: str) -> None:
    message = refused("guidance", text)
    assert repr(text) in message and ("20-50 (+10)" in message or "finite" in message)


def test_whole_number_parameters_refuse_fractions() -> None:
    assert "whole numbers" in refused("steps", "2.5")
    assert "whole numbers" in refused("steps", "1-10 (+1.5)")
    assert "whole numbers" in refused("seed", "1.5")


def test_a_range_needs_two_values_and_a_positive_step() -> None:
    assert "at least 2" in refused("guidance", "2-4 (1 values)")
    assert "step above 0" in refused("guidance", "2-4 (+0)")


def test_an_axis_takes_at_most_sixteen_values() -> None:
    assert len(parse_values("seed", f"1-{MAX_VALUES}", DEPLOYED)) == MAX_VALUES
    message = refused("steps", "1-50")
    assert "makes 50 values" in message and f"at most {MAX_VALUES}" in message
    listed = ", ".join(str(n) for n in range(MAX_VALUES + 1))
    assert f"{MAX_VALUES + 1} values" in refused("seed", listed)
    assert "makes 1000001 values" in refused("seed", "0-1000000")  # counted, never built


def test_empty_and_repeated_values_are_refused() -> None:
    assert "at least one" in refused("guidance", " , ,")
    assert "lists 3 twice" in refused("guidance", "3, 4, 3.0")
    assert "twice" in refused("model", f"{PRO}, {MODELS[PRO].display_name.upper()}")


def test_control_characters_are_refused_as_values() -> None:
    assert "not a number" in refused("guidance", "2, 3\x00")
    cat, dog = plan(("prompt", "cat, d\x00g")).cells  # the client's own text checks apply to each cell
    assert cat.sent and not dog.sent and "U+0000" in (dog.na or "")


def test_blank_items_are_dropped_and_quotes_keep_a_comma() -> None:
    assert parse_values("guidance", "2, , 3,", DEPLOYED) == [2.0, 3.0]
    assert split_values('cat, "red dog, blue", fox') == ["cat", "red dog, blue", "fox"]
    assert parse_values("prompt", 'cat, "dog, wet"', DEPLOYED) == ["cat", "dog, wet"]


# --- bounds from the registry -----------------------------------------------------------------------------

def test_a_value_above_every_models_range_names_the_widest_and_the_fix() -> None:
    g = MODELS[FLEX].param("guidance")
    assert g is not None and g.maximum is not None and g.minimum is not None
    takers = [s for s in MODELS.values() if s.param("guidance") is not None]
    assert [s.id for s in takers] == [FLEX], "the expected message names FLUX.2 [flex] alone"
    above = g.maximum + 2
    lo, hi = f"{g.minimum:g}", f"{g.maximum:g}"
    assert refused("guidance", f"{above:g}") == (
        f"guidance {above:g} is above {hi}, the largest any chosen model takes "
        f"({MODELS[FLEX].display_name}: {lo} to {hi}); use a value from {lo} to {hi}.")
    below = refused("guidance", "1.5-10 (4 values), 0.5")
    assert f"below {lo}, the smallest" in below


def test_the_widest_range_of_the_models_in_play_wins() -> None:
    maxima = {m: p.maximum for m in DEPLOYED if (p := MODELS[m].param("safety_tolerance")) is not None}
    widest, narrowest = max(maxima.values()), min(maxima.values())
    assert widest > narrowest
    assert parse_values("safety_tolerance", f"0, {widest:g}", DEPLOYED) == [0, int(widest)]
    narrow = tuple(m for m, v in maxima.items() if v == narrowest)
    message = refused("safety_tolerance", f"{widest:g}", narrow)
    assert f"above {narrowest:g}" in message and MODELS[narrow[0]].display_name in message


def test_a_parameter_no_chosen_model_takes_names_the_ones_that_do() -> None:
    message = refused("guidance", "3", (PRO,))
    assert "No chosen model takes guidance" in message and MODELS[FLEX].display_name in message


def test_seeds_are_whole_numbers_up_to_seed_max() -> None:
    assert parse_values("seed", f"0, {SEED_MAX}", DEPLOYED) == [0, SEED_MAX]
    message = refused("seed", str(SEED_MAX + 1))
    assert f"above {SEED_MAX}" in message and "e+" not in message
    assert "below 0" in refused("seed", "-5")


def test_switches_and_choices() -> None:
    assert parse_values("prompt_upsampling", "yes, off", DEPLOYED) == [True, False]
    assert parse_values("prompt_upsampling", "TRUE, no", DEPLOYED) == [True, False]
    assert "on or off" in refused("prompt_upsampling", "maybe")
    assert parse_values("output_format", "PNG, jpeg", DEPLOYED) == ["png", "jpeg"]
    choices = {c for m in DEPLOYED for c in MODELS[m].param("output_format").choices}  # type: ignore[union-attr]
    message = refused("output_format", "gif")
    assert all(c in message for c in choices)


def test_aspect_ratios_and_sizes() -> None:
    assert parse_values("aspect_ratio", "16:9, 1:1", DEPLOYED) == ["16:9", "1:1"]
    rule = MODELS[KONTEXT].size
    assert isinstance(rule, AspectRatioSize)
    assert "outside" in refused("aspect_ratio", f"{rule.widest[0] * 2}:{rule.widest[1]}")
    assert "width:height" in refused("aspect_ratio", "wide")
    assert parse_values("size", "1024x768, 768×1024, 512 X 512", DEPLOYED) == [(1024, 768), (768, 1024), (512, 512)]
    assert "width×height" in refused("size", "1024")
    assert "suits no chosen model" in refused("size", "8192x8192") and "MP" in refused("size", "8192x8192")
    assert "aspect ratio" in refused("size", "1024x1024", (KONTEXT,))


def test_models_by_id_or_display_name_in_any_case() -> None:
    text = f"{MODELS[FLEX].display_name.lower()}, {PRO.upper()}"
    assert parse_values("model", text, DEPLOYED) == [FLEX, PRO]
    assert format_value("model", FLEX) == MODELS[FLEX].display_name
    assert "not deployed here" in refused("model", MODELS[FLEX].display_name, (PRO,))
    message = refused("model", "FLUX.3 [ultra]")
    assert "Unknown model" in message and MODELS[PRO].display_name in message


# --- planning a grid --------------------------------------------------------------------------------------

def test_prompt_search_and_replace() -> None:
    grid = plan(("prompt", "cat, dog, red fox"))
    assert [c.prompt for c in grid.cells] == ["a cat on a sofa", "a dog on a sofa", "a red fox on a sofa"]
    assert [c.shown for c in grid.cells] == [("cat",), ("dog",), ("red fox",)]
    with pytest.raises(ValidationError, match="does not contain it"):
        plan(("prompt", "dog, cat"))
    with pytest.raises(ValidationError, match="case-sensitive"):
        plan(("prompt", "Cat, dog"))


def test_a_model_that_does_not_take_the_axis_parameter_is_na() -> None:
    grid = plan(("guidance", "2, 5.5"), ("model", f"{PRO}, {MODELS[FLEX].display_name}"))
    assert grid.shape == (2, 2, 1)
    for x in range(2):
        na = grid.cell(x, 0)
        assert na.model == PRO and not na.sent and na.request is None
        assert na.na == f"{MODELS[PRO].display_name} takes no guidance"
        sent = grid.cell(x, 1)
        assert sent.model == FLEX and sent.na is None and sent.request is not None
        assert sent.request.params["guidance"] == [2.0, 5.5][x] == sent.params["guidance"]
    assert estimate(grid.cells, default_quotas()).images == 2


def test_base_params_a_cells_model_does_not_take_are_dropped() -> None:
    grid = plan(("model", f"{PRO}, {FLEX}"), model=FLEX, guidance=3.5, steps=20)
    pro, flex = grid.cells
    assert pro.sent and "guidance" not in pro.params and "steps" not in pro.params
    assert flex.params["guidance"] == 3.5 and flex.params["steps"] == 20


def test_other_refusals_become_na_with_the_clients_message() -> None:
    small = next(s for s in MODELS.values() if isinstance(s.size, PixelSize) and s.size.max_side)
    assert isinstance(small.size, PixelSize) and small.size.max_side is not None
    side = small.size.max_side + small.size.multiple * 4
    grid = plan(("size", f"1024x1024, {side}x{side // 2}"), ("model", f"{FLEX}, {small.id}, {KONTEXT}"))
    too_big = grid.cell(1, 1)
    assert not too_big.sent and too_big.na is not None
    assert small.display_name in too_big.na and f"largest side of {small.size.max_side}" in too_big.na
    assert grid.cell(1, 0).sent and grid.cell(1, 0).size == (side, side // 2)
    assert all("aspect ratio" in (grid.cell(x, 2).na or "") for x in range(2))


def test_a_value_no_model_in_play_takes_fails_the_grid() -> None:
    with pytest.raises(ValidationError, match="No chosen model takes guidance"):
        plan(("guidance", "3"), model=PRO)
    deployed = (PRO, FLEX)
    axes = [GridAxis("guidance", (3.0,)), GridAxis("model", (PRO,))]  # built in code, not parsed
    with pytest.raises(ValidationError, match="No chosen model takes guidance"):
        plan_grid(GridBase("a fox", FLEX), axes, deployed, random.Random(1))
    with pytest.raises(ValidationError, match="not deployed here"):
        plan_grid(GridBase("a fox", KONTEXT), [GridAxis("seed", (1, 2))], deployed, random.Random(1))


def test_a_grid_of_only_na_cells_is_refused() -> None:
    with pytest.raises(ValidationError, match="every cell is n/a"):
        plan(("seed", "1, 2"), prompt="   ")


def test_more_than_a_hundred_cells_is_refused() -> None:
    assert len(plan(("seed", "1-10"), ("steps", "1-10"), model=FLEX).cells) == MAX_CELLS
    with pytest.raises(ValidationError) as info:
        plan(("seed", "1-16"), ("steps", "1-7"), model=FLEX)
    assert "16 × 7 = 112 cells" in str(info.value) and f"at most {MAX_CELLS}" in str(info.value)
    with pytest.raises(ValidationError, match="5 × 5 × 5 = 125"):
        plan(("seed", "1-5"), ("steps", "1-5"), ("guidance", "2-6"), model=FLEX)


def test_axes_are_one_to_three_and_each_kind_once() -> None:
    with pytest.raises(ValidationError, match="one to 3 axes"):
        plan_grid(GridBase("a fox", PRO), [], DEPLOYED, random.Random(1))
    with pytest.raises(ValidationError, match="one to 3 axes"):
        plan(("seed", "1"), ("steps", "2"), ("guidance", "3"), ("prompt_upsampling", "on"), model=FLEX)
    with pytest.raises(ValidationError, match="on two axes"):
        plan(("seed", "1, 2"), ("seed", "3, 4"))


def test_every_cell_shares_one_seed_picked_once() -> None:
    grid = plan(("guidance", "2, 4, 6"), ("steps", "10, 20"), model=FLEX, rng_seed=11)
    seeds = {c.params["seed"] for c in grid.cells}
    assert seeds == {grid.seed} and grid.seed == random.Random(11).randint(0, RANDOM_SEED_MAX)
    assert plan(("steps", "10, 20"), model=FLEX, rng_seed=11).seed == grid.seed  # the same rng, the same seed
    given = plan(("steps", "10, 20"), model=FLEX, seed=1234)
    assert given.seed == 1234 and {c.params["seed"] for c in given.cells} == {1234}


def test_a_seed_axis_sets_each_cells_seed() -> None:
    grid = plan(("seed", "5, 6"), ("model", f"{PRO}, {FLEX}"))
    assert grid.seed is None
    assert [(c.model, c.params["seed"]) for c in grid.cells] == [(PRO, 5), (PRO, 6), (FLEX, 5), (FLEX, 6)]


def test_cells_run_z_then_y_then_x() -> None:
    grid = plan(("seed", "1, 2"), ("steps", "10, 20, 30"), ("guidance", "2, 3"), model=FLEX)
    assert grid.shape == (2, 3, 2)
    assert [c.coords for c in grid.cells[:4]] == [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0)]
    assert grid.cells[6].coords == (0, 0, 1)
    c = grid.cell(1, 2, 1)
    assert c.coords == (1, 2, 1) and c.shown == ("2", "30", "3")
    assert (c.params["seed"], c.params["steps"], c.params["guidance"]) == (2, 30, 3.0)
    with pytest.raises(IndexError):
        grid.cell(2, 0, 0)


def test_the_manifest_describes_axes_and_cells_without_secrets() -> None:
    grid = plan(("guidance", "2, 5"), ("model", f"{PRO}, {FLEX}"))
    data = json.loads(json.dumps(grid.to_json()))
    assert [a["axis"] for a in data["axes"]] == ["x", "y"]
    assert data["axes"][1]["values"] == [PRO, FLEX]
    assert data["axes"][1]["shown"] == [MODELS[PRO].display_name, MODELS[FLEX].display_name]
    assert len(data["cells"]) == 4 and data["seed"] == grid.seed
    na, sent = data["cells"][0], data["cells"][2]
    assert na["na"] and na["size"] is None
    assert sent["na"] is None and sent["size"] == [1024, 1024] and sent["params"]["guidance"] == 2.0
    text = json.dumps(data).lower()
    assert "key" not in text and "endpoint" not in text and "references" not in text


# --- variations -------------------------------------------------------------------------------------------

def test_consecutive_variations_count_on_from_the_seed() -> None:
    cells = plan_variations(GridBase("a fox", FLEX, {"guidance": 3, "seed": 1}), 4, 100, True, random.Random(1))
    assert [c.params["seed"] for c in cells] == [100, 101, 102, 103]
    assert [c.x for c in cells] == [0, 1, 2, 3] and {c.model for c in cells} == {FLEX}
    assert all(c.sent and c.params["guidance"] == 3 for c in cells)
    start = plan_variations(GridBase("a fox", PRO), 3, None, True, random.Random(5))
    first = start[0].params["seed"]
    assert [c.params["seed"] for c in start] == [first, first + 1, first + 2]


def test_random_variations_have_distinct_seeds() -> None:
    cells = plan_variations(GridBase("a fox", PRO), 8, None, False, random.Random(2))
    seeds = [c.params["seed"] for c in cells]
    assert len(set(seeds)) == 8 and all(0 <= s <= RANDOM_SEED_MAX for s in seeds)
    assert seeds == [c.params["seed"] for c in plan_variations(GridBase("a fox", PRO), 8, None, False,
                                                                 random.Random(2))]
    given = plan_variations(GridBase("a fox", PRO), 3, 42, False, random.Random(2))
    assert given[0].params["seed"] == 42 and len({c.params["seed"] for c in given}) == 3


@pytest.mark.parametrize("count", [0, 9])
def test_variations_are_one_to_eight(count: int) -> None:
    with pytest.raises(ValidationError, match="1 to 8"):
        plan_variations(GridBase("a fox", PRO), count, None, True, random.Random(1))


def test_variations_refuse_seeds_past_the_largest_and_a_bad_request() -> None:
    with pytest.raises(ValidationError, match=f"start at {SEED_MAX - 3}"):
        plan_variations(GridBase("a fox", PRO), 4, SEED_MAX - 2, True, random.Random(1))
    with pytest.raises(ValidationError, match="guidance"):
        plan_variations(GridBase("a fox", PRO, {"guidance": 3}), 2, None, True, random.Random(1))


# --- estimates --------------------------------------------------------------------------------------------

def test_cost_and_time_for_one_deployment() -> None:
    grid = plan(("seed", "1-12"), ("size", "1024x1024, 1024x768"), model=FLEX)
    spec = MODELS[FLEX]
    assert spec.default_rpm is not None and spec.default_tier is not None
    quota = Quota.from_rpm(spec.default_rpm)
    est = estimate(grid.cells, {FLEX: quota}, 12.0, {FLEX: spec.default_tier})
    n = len(grid.cells)
    cost = sum(spec.price.estimate(w * h) or 0 for w, h in [(1024, 1024)] * 12 + [(1024, 768)] * 12)
    seconds = (math.ceil(n / quota.requests) - 1) * quota.window_s + 12.0
    assert est.images == n and est.skipped == 0
    assert est.cost_usd == pytest.approx(cost) and est.seconds == pytest.approx(seconds)
    assert est.text == (f"{n} images · ≈ ${cost:.2f} · ≈ {format_duration(seconds)} "
                        f"({spec.display_name} {spec.default_tier} tier: {spec.default_rpm} per minute)")
    assert est.needs_confirmation()


def test_deployments_run_side_by_side_and_the_slowest_is_named() -> None:
    grid = plan(("seed", "1-6"), ("model", f"{PRO}, {FLEX}, {PER_IMAGE}"))
    quotas = default_quotas()
    est = estimate(grid.cells, quotas, {PRO: 20.0, FLEX: 30.0})
    expected = {}
    for model in (PRO, FLEX, PER_IMAGE):
        q = quotas[model]
        assert q is not None
        expected[model] = (math.ceil(6 / q.requests) - 1) * q.window_s + {PRO: 20.0, FLEX: 30.0}.get(model, 12.0)
    assert {load.model: load.seconds for load in est.loads} == pytest.approx(expected)
    slowest = max(expected, key=lambda m: expected[m])
    assert est.seconds == pytest.approx(expected[slowest]) and est.slowest is not None
    assert est.slowest.model == slowest and MODELS[slowest].display_name in est.text
    per_image = MODELS[PER_IMAGE].price.usd_per_image
    assert per_image is not None
    cost = 6 * (MODELS[PRO].price.estimate(1024 * 1024) or 0) + 6 * (MODELS[FLEX].price.estimate(1024 * 1024) or 0)
    assert est.cost_usd == pytest.approx(cost + 6 * per_image)


def test_na_cells_send_nothing_and_cost_nothing() -> None:
    grid = plan(("guidance", "2, 4, 6"), ("model", f"{PRO}, {FLEX}"))
    est = estimate(grid.cells, default_quotas())
    assert est.images == 3 and est.skipped == 3 and [load.model for load in est.loads] == [FLEX]
    assert est.cost_usd == pytest.approx(3 * (MODELS[FLEX].price.estimate(1024 * 1024) or 0))
    assert "(3 cells n/a)" in est.text


def test_an_unpriced_model_says_its_cost_is_unknown() -> None:
    spec = MODELS[UNPRICED]
    only = estimate(plan(("seed", "1-3"), model=UNPRICED).cells, {UNPRICED: None})
    note = f"cost unknown for {spec.display_name} ({spec.price.note})"
    assert only.cost_usd is None and only.unknown_cost == (note,)
    assert only.seconds == 12.0  # unpaced: all at once, one request's time
    assert only.text == f"3 images · {note} · ≈ 12 s ({spec.display_name}: not paced)"
    mixed = estimate(plan(("seed", "1-2"), ("model", f"{PRO}, {UNPRICED}")).cells, default_quotas(), 5.0)
    assert mixed.cost_usd == pytest.approx(2 * (MODELS[PRO].price.estimate(1024 * 1024) or 0))
    assert f"≈ ${mixed.cost_usd:.2f} + {note}" in mixed.text


def test_a_quota_without_a_tier_name_is_described_as_itself() -> None:
    quota = Quota(20, 5.0)
    est = estimate(plan(("seed", "1-16"), ("steps", "1-4"), model=FLEX).cells, {FLEX: quota}, 10.0)
    assert est.seconds == pytest.approx((math.ceil(64 / 20) - 1) * 5.0 + 10.0)
    assert est.text.endswith(f"({MODELS[FLEX].display_name}: {quota.describe()})")


def test_confirmation_thresholds() -> None:
    def cells(n: int) -> tuple[Cell, ...]:
        return plan(("seed", f"1-{n}"), model=PER_IMAGE).cells

    price = MODELS[PER_IMAGE].price.usd_per_image
    assert price is not None
    est = estimate(cells(10), default_quotas())
    assert est.cost_usd == pytest.approx(10 * price)
    assert not est.needs_confirmation(threshold_images=10, threshold_usd=10 * price + 0.01)
    assert est.needs_confirmation(threshold_images=9, threshold_usd=100)
    assert est.needs_confirmation(threshold_images=100, threshold_usd=10 * price - 0.01)
    assert estimate([], {}).text == "0 images · nothing to send" and not estimate([], {}).needs_confirmation()


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (0.3, "1 s"), (45, "45 s"), (59.4, "59 s"), (59.6, "1 min"), (110, "1 min 50 s"),
    (120, "2 min"), (3599, "59 min 59 s"), (3600, "1 h"), (3900, "1 h 5 min"), (7170, "2 h"), (90_000, "25 h"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1, float("inf"), float("nan")])
def test_format_duration_refuses_nonsense(seconds: float) -> None:
    with pytest.raises(ValueError):
        format_duration(seconds)


def test_a_style_axis_wraps_each_cells_prompt_and_sets_what_the_model_takes() -> None:
    from flux_ui.styles import Style

    styles = {"Noir": Style("Noir", "{prompt}, film noir", {"guidance": 7.0}),
              "Pastel": Style("Pastel", "pastel drawing of {prompt}", {})}
    base = GridBase("a cat", "FLUX.2-flex", {}, styles)
    axes = [GridAxis.parse("style", "noir, Pastel", ["FLUX.2-flex"]),
            GridAxis.parse("model", "FLUX.2-flex, FLUX.2-pro", ["FLUX.2-flex", "FLUX.2-pro"])]
    plan = plan_grid(base, axes, ["FLUX.2-flex", "FLUX.2-pro"], random.Random(2))
    flex_noir, pastel = plan.cell(0, 0), plan.cell(1, 0)
    assert flex_noir.prompt == "a cat, film noir" and flex_noir.params["guidance"] == 7.0
    assert pastel.prompt == "pastel drawing of a cat" and pastel.params["guidance"] != 7.0  # the model's default
    pro_noir = plan.cell(0, 1)
    assert pro_noir.sent and "guidance" not in pro_noir.params  # pro takes no guidance: the style's is left out
    with pytest.raises(ValidationError, match="No saved style is called Sketch; saved styles: Noir, Pastel"):
        plan_grid(base, [GridAxis.parse("style", "Sketch", ["FLUX.2-flex"])], ["FLUX.2-flex"], random.Random(2))
