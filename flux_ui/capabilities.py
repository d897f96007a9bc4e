"""The shape of a registry entry: routes, modes, parameters, size rules, prompt limits and price
hints, with the rules that tie them together and the arithmetic on sizes (see ``flux_ui.registry``)."""

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
