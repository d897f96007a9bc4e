"""The shape of a registry entry: routes, modes, parameters, size rules, prompt limits and price
hints, with the rules that tie them together and the arithmetic on sizes (see ``flux_ui.registry``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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
    # What the service itself refuses: the whole range, the minimum only (the maximum is the UI's
    # advice, as schnell's 4 steps), or nothing beyond the kind (a value the model ignores).
    service_checks: Literal["range", "minimum", "kind"] = "range"

    def maximum_for(self, editing: bool) -> float | None:
        """The maximum that applies: the tighter edit maximum when reference images are sent."""
        return self.edit_maximum if editing and self.edit_maximum is not None else self.maximum

    @property
    def widest_maximum(self) -> float | None:
        """The largest value any use of the parameter allows (a control's upper bound)."""
        if self.maximum is None:
            return None
        return max(self.maximum, self.edit_maximum or self.maximum)

    def enforced(self) -> Param:
        """This parameter with only the bounds the service enforces (what the emulator checks)."""
        if self.service_checks == "minimum":
            return replace(self, maximum=None, edit_maximum=None)
        if self.service_checks == "kind":
            return replace(self, minimum=None, maximum=None, edit_maximum=None)
        return self


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

    def on_grid(self, side: int) -> int:
        """A side put on the grid as the service does (floored, or rounded to the nearest)."""
        m = self.multiple
        return side // m * m if self.snap == "floor" else round(side / m) * m

    def fit(self, width: int, height: int, budget: int | None = None) -> tuple[int, int]:
        """The largest on-grid size of about this shape within ``budget`` pixels (the rule's own
        budget by default), no side below the smallest: a size refused as too large, made to fit."""
        limit = budget or self.max_pixels
        w, h = fit_area(width, height, limit) if limit else (width, height)
        m = self.multiple
        return max(self.min_side, w // m * m), max(self.min_side, h // m * m)

    def at_ratio(self, ratio: tuple[int, int]) -> tuple[int, int]:
        """A shape on the grid at about the default pixel count, within the largest side: what a size
        preset (and Compare, for a shape) sends. A side may come out below the smallest; callers decide."""
        target, m = self.default[0] * self.default[1], self.multiple
        w = int((target * ratio[0] / ratio[1]) ** 0.5) // m * m
        h = int((target * ratio[1] / ratio[0]) ** 0.5) // m * m
        if self.max_side and max(w, h) > self.max_side:
            scale = self.max_side / max(w, h)
            w, h = int(w * scale) // m * m, int(h * scale) // m * m
        return w, h

    def admit(self, width: int, height: int) -> tuple[int, int]:
        """A size this rule takes, of about this shape: put on the grid as the service does, no side
        below the smallest, then made to fit the pixel budget and the largest side when over them
        (a size carried over from another model's controls)."""
        w, h = max(self.min_side, self.on_grid(width)), max(self.min_side, self.on_grid(height))
        if self.max_pixels is not None and w * h > self.max_pixels:
            w, h = self.fit(w, h)
        if self.max_side is not None and max(w, h) > self.max_side:
            longest = max(w, h)
            w, h = self.fit(w * self.max_side // longest, h * self.max_side // longest)
        return w, h

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

    @property
    def bounds_text(self) -> tuple[str, str]:
        """The tallest and the widest ratio, written ``w:h``."""
        return f"{self.tallest[0]}:{self.tallest[1]}", f"{self.widest[0]}:{self.widest[1]}"

    def admits(self, width: int, height: int) -> bool:
        """Whether width:height is within the range, compared exactly (whole numbers, no floats)."""
        return (self.tallest[0] * height <= width * self.tallest[1]
                and width * self.widest[1] <= self.widest[0] * height)

    def clamp(self, width: int, height: int) -> tuple[int, int]:
        """width:height, or the nearest end of the range when it is outside (an input image's shape)."""
        if width * self.widest[1] > self.widest[0] * height:
            return self.widest
        if self.tallest[0] * height > width * self.tallest[1]:
            return self.tallest
        return width, height

    def ratio_text(self, width: int, height: int) -> str:
        """width:height as ``w:h``, the nearest end of the range when outside it: written as the preset of
        that ratio writes it ("21:9", not "7:3"), else in lowest terms."""
        w, h = self.clamp(width, height)
        for text in self.presets:
            preset = parse_aspect_ratio(text)
            if preset is not None and preset[0] * h == preset[1] * w:
                return text
        divisor = math.gcd(w, h)
        return f"{w // divisor}:{h // divisor}"

    def size_for(self, ratio: tuple[int, int]) -> tuple[int, int]:
        """The output size for a ratio at the rule's pixel budget, on its grid.

        BFL documents only the ratio range and the ~1 MP budget; flux-ui (and its emulator)
        take the largest grid-aligned size whose area stays within the budget.
        """
        w, h = fit_area(ratio[0], ratio[1], int(self.megapixels * 1_048_576), grow=True)
        m = self.multiple
        return max(m, w // m * m), max(m, h // m * m)


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
    # On its own Azure ML endpoint: the prefix of its settings (PREFIX_ENDPOINT, PREFIX_KEY, PREFIX_RPM).
    endpoint_env: str | None = None
    _by_name: Mapping[str, Param] = field(init=False, repr=False, compare=False)

    def __repr__(self) -> str:
        return f"ModelSpec({self.id!r})"

    def __post_init__(self) -> None:
        object.__setattr__(self, "rpm_tiers", MappingProxyType(dict(self.rpm_tiers)))
        object.__setattr__(self, "_by_name", MappingProxyType({p.name: p for p in self.all_params}))
        if self.aml != bool(self.endpoint_env):
            raise ValueError(f"{self.id}: a model on an Azure ML endpoint (and only one) names its settings' prefix "
                             "in endpoint_env, such as FLUX_SCHNELL")
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
            lo, hi = self.size.bounds_text
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
        limit = f" to {s.max_side}" if s.max_side else ""
        limit += f", at most {s.max_pixels / 1_048_576:g} MP in all" if s.max_pixels else ""
        return tuple(
            Param(
                name,
                "int",
                name.capitalize(),
                f"Output {name} in pixels, {grid} from {s.min_side}{limit}.",
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


def fit_area(width: int, height: int, budget: int, *, grow: bool = False) -> tuple[int, int]:
    """The largest whole size of about this shape whose area is at most ``budget`` pixels.

    A size that already fits is kept, unless ``grow`` asks for it scaled up to the budget. The one
    home of this arithmetic: references scaled to a model's input budget, sizes refused as too
    large, and aspect ratios turned into sizes all come here.
    """
    if width * height <= budget and not grow:
        return width, height
    scale = math.sqrt(budget / (width * height))
    w, h = max(1, int(width * scale)), max(1, int(height * scale))
    while w * h > budget and max(w, h) > 1:  # float rounding; shave the longer side
        w, h = (w - 1, h) if w >= h else (w, h - 1)
    return w, h
