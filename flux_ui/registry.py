"""The capability registry: what each FLUX model on Foundry can do, declared once.

The UI builds its controls from these entries, the client validates requests against them
and the emulator enforces them, so adding a model is one entry here (plus its tests).
Every fact comes from the service contract, ``docs/service-contract.md``;
``tests/test_registry.py`` parses that page and fails when an entry drifts from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal


class Route(StrEnum):
    """The wire routes a deployment can be reached on (contract §2–§4)."""

    BFL = "bfl"  # /providers/blackforestlabs/v1/<path>
    IMAGES_GENERATIONS = "images/generations"  # OpenAI-compatible Image API
    IMAGES_EDITS = "images/edits"
    AML = "aml"  # Azure ML / Hugging Face inference toolkit endpoint


class Mode(StrEnum):
    """What a model does, declared in its entry: each tab offers the models that have its mode."""

    GENERATE = "generate"  # an image from a prompt alone (Text to image, Compare)
    MULTI_REFERENCE_EDIT = "multi-reference edit"  # several references combined by a prompt (Edit)
    INSTRUCTION_EDIT = "instruction edit"  # one picture changed by a plain instruction (Kontext)


ParamKind = Literal["int", "float", "bool", "choice", "text", "aspect_ratio"]

#: Seeds are 32-bit unsigned in the BFL schema and in diffusers' generators.
SEED_MAX = 2**32 - 1
#: "4 MP" in BFL's and Microsoft's sense is 2048×2048.
FOUR_MP = 2048 * 2048


@dataclass(frozen=True)
class Param:
    """One request parameter as the model's native route names it."""

    name: str
    kind: ParamKind
    label: str
    help: str
    default: object = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    nullable: bool = False  # None is meaningful (seed: let flux-ui pick one)
    advanced: bool = False  # shown folded away in the UI
    # A tighter maximum that applies when reference images are sent (Kontext edits).
    edit_maximum: float | None = None
    # The Image API carries only prompt, size and output_format (contract §3).
    image_api: bool = False


@dataclass(frozen=True)
class PixelSize:
    """Explicit width and height on a grid."""

    multiple: int
    min_side: int
    max_side: int | None  # None: only the pixel budget bounds a side
    max_pixels: int | None
    default: tuple[int, int]
    # How the service treats an off-grid side: FLUX.2 and diffusers floor it [seen];
    # FLUX1.1 [pro] only documents multiples of 32, so flux-ui rounds to the nearest.
    snap: Literal["floor", "nearest"]

    @property
    def side_limit(self) -> int:
        """The largest side any valid size can have (for UI bounds)."""
        if self.max_side is not None:
            return self.max_side
        assert self.max_pixels is not None
        return (self.max_pixels // self.min_side) // self.multiple * self.multiple


@dataclass(frozen=True)
class AspectRatioSize:
    """Size chosen by an aspect ratio at a fixed pixel budget (Kontext)."""

    default: str | None  # None: match the input image, or square without one
    widest: tuple[int, int]
    tallest: tuple[int, int]
    megapixels: float
    multiple: int  # output sides land on this grid
    presets: tuple[str, ...]


@dataclass(frozen=True)
class PromptLimit:
    """How long a prompt may be, in the model's own tokens (contract §6)."""

    max_tokens: int
    tokenizer: Literal["mistral-tekken", "t5-xxl"]
    # What the service does past the limit: "rejected" (400) or "truncated" (silently,
    # as diffusers does for T5 on schnell). A truncating model is never refused.
    over_limit: Literal["rejected", "truncated"]


@dataclass(frozen=True)
class PriceHint:
    """Published list prices, for a cost hint only; the service's own figure wins."""

    usd_per_megapixel: float | None = None
    usd_per_image: float | None = None
    note: str = ""

    def estimate(self, output_pixels: int) -> float | None:
        if self.usd_per_image is not None:
            return self.usd_per_image
        if self.usd_per_megapixel is not None:
            return self.usd_per_megapixel * output_pixels / 1_000_000
        return None


@dataclass(frozen=True, repr=False)
class ModelSpec:
    """Everything flux-ui knows about one FLUX model."""

    id: str  # the model ID, also the default deployment name
    display_name: str
    summary: str
    bfl_path: str | None
    image_api: frozenset[Literal["generations", "edits"]]
    aml: bool
    max_references: int
    max_input_pixels: int | None  # references are downscaled to fit this
    max_output_mp: float
    size: PixelSize | AspectRatioSize
    params: tuple[Param, ...]
    prompt: PromptLimit
    rpm_tiers: Mapping[str, int]
    default_tier: str | None  # None: the quota is the endpoint's own (schnell)
    price: PriceHint
    modes: frozenset[Mode] = frozenset({Mode.GENERATE})
    registration_required: bool = False
    _by_name: Mapping[str, Param] = field(init=False, repr=False, compare=False)

    def __repr__(self) -> str:
        return f"ModelSpec({self.id!r})"

    def __post_init__(self) -> None:
        object.__setattr__(self, "rpm_tiers", MappingProxyType(dict(self.rpm_tiers)))
        object.__setattr__(self, "_by_name", MappingProxyType({p.name: p for p in self.all_params}))
        if not self.modes:
            raise ValueError(f"{self.id}: declare at least one mode")
        if self.does(Mode.MULTI_REFERENCE_EDIT) and self.max_references < 2:
            raise ValueError(f"{self.id}: a multi-reference edit needs max_references of 2 or more")
        if self.does(Mode.INSTRUCTION_EDIT) and self.max_references < 1:
            raise ValueError(f"{self.id}: an instruction edit needs an input image (max_references of 1 or more)")

    @property
    def routes(self) -> tuple[Route, ...]:
        """Routes in order of preference: the native one first."""
        found: list[Route] = []
        if self.bfl_path:
            found.append(Route.BFL)
        if "generations" in self.image_api:
            found.append(Route.IMAGES_GENERATIONS)
        if "edits" in self.image_api:
            found.append(Route.IMAGES_EDITS)
        if self.aml:
            found.append(Route.AML)
        return tuple(found)

    def does(self, mode: Mode) -> bool:
        return mode in self.modes

    @property
    def size_params(self) -> tuple[Param, ...]:
        """The size controls, derived from the size rule so they cannot disagree with it."""
        if isinstance(self.size, AspectRatioSize):
            lo = f"{self.size.tallest[0]}:{self.size.tallest[1]}"
            hi = f"{self.size.widest[0]}:{self.size.widest[1]}"
            return (
                Param(
                    "aspect_ratio",
                    "aspect_ratio",
                    "Aspect ratio",
                    f"Width:height between {lo} and {hi}; the output is about "
                    f"{self.size.megapixels:g} MP. Empty matches the input image (square without one).",
                    default=self.size.default,
                    choices=self.size.presets,
                    nullable=self.size.default is None,
                    image_api=True,
                ),
            )
        s = self.size
        grid = f"multiples of {s.multiple}"
        budget = f", at most {s.max_pixels / 1_048_576:g} MP in all" if s.max_pixels else ""
        return tuple(
            Param(
                name,
                "int",
                name.capitalize(),
                f"Output {name} in pixels, {grid} from {s.min_side}{budget}.",
                default=value,
                minimum=s.min_side,
                maximum=s.side_limit,
                step=s.multiple,
                image_api=True,
            )
            for name, value in (("width", s.default[0]), ("height", s.default[1]))
        )

    @property
    def all_params(self) -> tuple[Param, ...]:
        return self.size_params + self.params

    def param(self, name: str) -> Param | None:
        return self._by_name.get(name)

    @property
    def default_rpm(self) -> int | None:
        return self.rpm_tiers[self.default_tier] if self.default_tier else None


# --- shared parameter declarations ------------------------------------------------------

def _seed() -> Param:
    return Param(
        "seed",
        "int",
        "Seed",
        "The same seed with the same settings gives a similar image; empty picks a random one.",
        default=None,
        minimum=0,
        maximum=SEED_MAX,
        step=1,
        nullable=True,
    )


def _safety(maximum: int, edit_maximum: int | None = None) -> Param:
    return Param(
        "safety_tolerance",
        "int",
        "Safety tolerance",
        f"Moderation strictness: 0 is strictest, {maximum} most permissive"
        + (f" ({edit_maximum} at most when editing an image)." if edit_maximum is not None else "."),
        default=2,
        minimum=0,
        maximum=maximum,
        step=1,
        edit_maximum=edit_maximum,
        advanced=True,
    )


def _output_format(default: str, choices: tuple[str, ...] = ("jpeg", "png")) -> Param:
    return Param(
        "output_format",
        "choice",
        "Output format",
        "File format the service returns: JPEG is smaller, PNG is lossless.",
        default=default,
        choices=choices,
        image_api=True,
    )


def _upsampling(default: bool) -> Param:
    return Param(
        "prompt_upsampling",
        "bool",
        "Prompt upsampling",
        "Let the service expand the prompt with more detail before generating.",
        default=default,
    )


_FLUX2_SIZE = PixelSize(
    multiple=16, min_side=64, max_side=None, max_pixels=FOUR_MP, default=(1024, 1024), snap="floor"
)
_TEKKEN = PromptLimit(32_000, "mistral-tekken", "rejected")
_T5_5000 = PromptLimit(5_000, "t5-xxl", "rejected")


MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        spec.id: spec
        for spec in (
            ModelSpec(
                id="FLUX.2-pro",
                display_name="FLUX.2 [pro]",
                summary="Top image quality; text to image and editing with up to 8 references.",
                bfl_path="flux-2-pro",
                image_api=frozenset(),
                aml=False,
                max_references=8,
                modes=frozenset({Mode.GENERATE, Mode.MULTI_REFERENCE_EDIT}),
                max_input_pixels=FOUR_MP,
                max_output_mp=4,
                size=_FLUX2_SIZE,
                params=(_seed(), _safety(5), _output_format("jpeg")),
                prompt=_TEKKEN,
                rpm_tiers={"low": 15, "medium": 30, "high": 100},
                default_tier="low",
                price=PriceHint(usd_per_megapixel=0.03, note="from $0.03 per megapixel"),
            ),
            ModelSpec(
                id="FLUX.2-flex",
                display_name="FLUX.2 [flex]",
                summary="Fine control (guidance, steps); editing with up to 10 references; "
                "strong with text in images.",
                bfl_path="flux-2-flex",
                image_api=frozenset(),
                aml=False,
                max_references=10,
                modes=frozenset({Mode.GENERATE, Mode.MULTI_REFERENCE_EDIT}),
                max_input_pixels=FOUR_MP,
                max_output_mp=4,
                size=_FLUX2_SIZE,
                params=(
                    _seed(),
                    Param(
                        "guidance",
                        "float",
                        "Guidance",
                        "How closely the image follows the prompt; higher adheres more.",
                        default=4.5,
                        minimum=1.5,
                        maximum=10,
                        step=0.1,
                    ),
                    Param(
                        "steps",
                        "int",
                        "Steps",
                        "Inference steps: more gives finer detail and takes longer.",
                        default=50,
                        minimum=1,
                        maximum=50,
                        step=1,
                    ),
                    _upsampling(True),
                    _safety(5),
                    _output_format("jpeg"),
                ),
                prompt=_TEKKEN,
                rpm_tiers={"low": 5, "medium": 10, "high": 25},
                default_tier="low",
                price=PriceHint(usd_per_megapixel=0.06, note="from $0.06 per megapixel"),
                registration_required=True,
            ),
            ModelSpec(
                id="FLUX.1-Kontext-pro",
                display_name="FLUX.1 Kontext [pro]",
                summary="In-context editing of one image with a plain instruction; keeps "
                "characters consistent across edits.",
                bfl_path="flux-kontext-pro",
                image_api=frozenset({"generations", "edits"}),
                aml=False,
                max_references=1,
                modes=frozenset({Mode.GENERATE, Mode.INSTRUCTION_EDIT}),
                max_input_pixels=FOUR_MP,
                max_output_mp=1,
                size=AspectRatioSize(
                    default=None,
                    widest=(21, 9),
                    tallest=(9, 21),
                    megapixels=1.0,
                    multiple=32,
                    presets=("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9", "9:21"),
                ),
                params=(
                    _seed(), _upsampling(False), _safety(6, edit_maximum=2), _output_format("png", ("png", "jpeg"))
                ),
                prompt=_T5_5000,
                rpm_tiers={"default": 6},
                default_tier="default",
                price=PriceHint(note="see the Foundry pricing page"),
            ),
            ModelSpec(
                id="FLUX-1.1-pro",
                display_name="FLUX1.1 [pro]",
                summary="Fast text to image with strong prompt adherence.",
                bfl_path="flux-pro-1.1",
                image_api=frozenset({"generations"}),
                aml=False,
                max_references=0,
                max_input_pixels=None,
                max_output_mp=1.6,
                size=PixelSize(
                    multiple=32, min_side=256, max_side=1440, max_pixels=None, default=(1024, 768), snap="nearest"
                ),
                params=(_seed(), _upsampling(False), _safety(6), _output_format("jpeg")),
                prompt=_T5_5000,
                rpm_tiers={"default": 6},
                default_tier="default",
                price=PriceHint(usd_per_image=0.04, note="$0.04 per image"),
            ),
            ModelSpec(
                id="FLUX.1-schnell",
                display_name="FLUX.1 [schnell]",
                summary="Open-weights model on your own Azure ML endpoint; 1 to 4 steps, quick drafts.",
                bfl_path=None,
                image_api=frozenset(),
                aml=True,
                max_references=0,
                max_input_pixels=None,
                max_output_mp=4,
                size=PixelSize(
                    multiple=16, min_side=256, max_side=2048, max_pixels=None, default=(1024, 1024), snap="floor"
                ),
                params=(
                    _seed(),
                    Param(
                        "num_inference_steps",
                        "int",
                        "Steps",
                        "schnell is distilled for 1 to 4 steps; 4 gives the cleanest image.",
                        default=4,
                        minimum=1,
                        maximum=4,
                        step=1,
                    ),
                    Param(
                        "guidance_scale",
                        "float",
                        "Guidance scale",
                        "schnell ignores guidance; leave it at 0.",
                        default=0.0,
                        minimum=0,
                        maximum=10,
                        step=0.5,
                        advanced=True,
                    ),
                    Param(
                        "negative_prompt",
                        "text",
                        "Negative prompt",
                        "What to leave out; it has no effect at schnell's default settings.",
                        default="",
                        advanced=True,
                    ),
                    _output_format("png", ("png", "jpeg", "webp")),
                ),
                prompt=PromptLimit(256, "t5-xxl", "truncated"),
                rpm_tiers={},
                default_tier=None,
                price=PriceHint(note="billed as your endpoint's compute"),
            ),
        )
    }
)


def get_model(model_id: str) -> ModelSpec:
    """The spec for a model ID, or a KeyError that lists the known IDs."""
    try:
        return MODELS[model_id]
    except KeyError:
        known = ", ".join(MODELS)
        raise KeyError(f"unknown model {model_id!r}; flux-ui knows {known}") from None


def parse_aspect_ratio(text: str) -> tuple[int, int] | None:
    """'16:9' → (16, 9); None for anything that is not two positive integers."""
    parts = text.strip().split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        return None
    w, h = int(parts[0]), int(parts[1])
    return (w, h) if w > 0 and h > 0 else None


def aspect_ratio_size(rule: AspectRatioSize, ratio: tuple[int, int]) -> tuple[int, int]:
    """The output size for an aspect ratio at the rule's pixel budget, on its grid.

    BFL documents only the ratio range and the ~1 MP budget; flux-ui (and its emulator)
    take the largest grid-aligned size whose area stays within the budget.
    """
    w, h = ratio
    budget = rule.megapixels * 1_048_576
    scale = math.sqrt(budget / (w * h))
    m = rule.multiple
    width = max(m, int(w * scale) // m * m)
    height = max(m, int(h * scale) // m * m)
    return width, height
