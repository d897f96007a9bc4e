"""The capability registry: what each FLUX model on Foundry can do, declared once.

The UI builds its controls from these entries, the client validates requests against them
and the emulator enforces them, so adding a model is one entry here (plus its tests).
Every fact comes from the service contract, ``docs/service-contract.md``;
``tests/test_registry.py`` parses that page and fails when an entry drifts from it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from flux_ui.capabilities import (
    FOUR_MP,
    SEED_MAX,
    AspectRatioSize,
    Mode,
    ModelSpec,
    Param,
    PixelSize,
    PriceHint,
    PromptLimit,
    Route,
    fit_area,
    parse_aspect_ratio,
)

#: The registry is where callers take every model fact from: the entries below, and the shape of
#: an entry (defined in flux_ui.capabilities) with them.
__all__ = ["FOUR_MP", "MODELS", "SEED_MAX", "AspectRatioSize", "Mode", "ModelRegistry", "ModelSpec", "Param",
           "PixelSize", "PriceHint", "PromptLimit", "Route", "fit_area", "get_model", "parse_aspect_ratio"]


class ModelRegistry(Mapping[str, ModelSpec]):
    """The models flux-ui knows, by ID, in the order the UI offers them.

    Read-only for the app. A test may lay extra entries over it for a while (:meth:`including`),
    and every module that holds ``MODELS`` sees them, because it holds this one object: that is how
    a test shows that a new entry, and nothing else, reaches the client, the emulator, the tabs and
    the README.
    """

    def __init__(self, specs: Iterable[ModelSpec]) -> None:
        self._base = {spec.id: spec for spec in specs}
        self._entries = dict(self._base)
        self._lock = threading.Lock()

    def __getitem__(self, model_id: str) -> ModelSpec:
        return self._entries[model_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def on_route(self, route: Route) -> tuple[ModelSpec, ...]:
        """The models reachable on a route, in registry order."""
        return tuple(spec for spec in self._entries.values() if route in spec.routes)

    def by_bfl_path(self, path: str) -> ModelSpec | None:
        """The model a BFL provider path (``flux-2-pro``, …) serves."""
        return next((spec for spec in self._entries.values() if spec.bfl_path == path), None)

    @property
    def foundry(self) -> tuple[str, ...]:
        """The IDs of the models a Foundry resource deploys (every one not on its own endpoint)."""
        return tuple(spec.id for spec in self._entries.values() if not spec.aml)

    @contextmanager
    def including(self, *specs: ModelSpec) -> Iterator[ModelRegistry]:
        """The registry with ``specs`` added (after the built-in entries) until the block ends."""
        with self._lock:
            clash = [spec.id for spec in specs if spec.id in self._entries]
            if clash:
                raise ValueError(f"the registry already has {', '.join(clash)}")
            self._entries = {**self._entries, **{spec.id: spec for spec in specs}}
        try:
            yield self
        finally:
            with self._lock:
                self._entries = {k: v for k, v in self._entries.items() if k not in {s.id for s in specs}}

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


def _flux2(**entry: object) -> ModelSpec:
    """A FLUX.2 entry: what the family shares (BFL route only, generate and multi-reference edit,
    4 MP in and out, the Tekken prompt window, the low tier by default), with the entry's own facts."""
    shared: dict[str, object] = {
        "image_api": frozenset(), "aml": False, "modes": frozenset({Mode.GENERATE, Mode.MULTI_REFERENCE_EDIT}),
        "max_input_pixels": FOUR_MP, "max_output_mp": 4, "size": _FLUX2_SIZE, "prompt": _TEKKEN,
        "default_tier": "low",
    }
    return ModelSpec(**{**shared, **entry})  # type: ignore[arg-type]
_T5_5000 = PromptLimit(5_000, "t5-xxl", "rejected")


MODELS = ModelRegistry(
    (
        _flux2(
            id="FLUX.2-pro",
            display_name="FLUX.2 [pro]",
            summary="Top image quality; text to image and editing with up to 8 references.",
            bfl_path="flux-2-pro",
            max_references=8,
            params=(_seed(), _safety(5), _output_format("jpeg")),
            rpm_tiers={"low": 15, "medium": 30, "high": 100},
            price=PriceHint(usd_per_megapixel=0.03, note="from $0.03 per megapixel"),
        ),
        _flux2(
            id="FLUX.2-flex",
            display_name="FLUX.2 [flex]",
            summary="Fine control (guidance, steps); editing with up to 10 references; "
            "strong with text in images.",
            bfl_path="flux-2-flex",
            max_references=10,
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
            rpm_tiers={"low": 5, "medium": 10, "high": 25},
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
            endpoint_env="FLUX_SCHNELL",
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
                    service_checks="minimum",  # the pipeline runs any positive number of steps
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
                    service_checks="kind",  # ignored by schnell, so any number runs
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
)


def get_model(model_id: str) -> ModelSpec:
    """The spec for a model ID, or a KeyError that lists the known IDs."""
    try:
        return MODELS[model_id]
    except KeyError:
        known = ", ".join(MODELS)
        raise KeyError(f"unknown model {model_id!r}; flux-ui knows {known}") from None

