"""Examples for every tab, as the official FLUX Spaces have: the data, then the small builders.

Every example is Gradio's own ``gr.Examples`` with no function: a click fills the form and
nothing more. Nothing is sent, cached or run on page load (``cache_examples=False``, and no
function to cache, whatever ``GRADIO_CACHE_EXAMPLES`` says), and the click events are private, so
the API lists the same named endpoints as before. Gradio copies the photos into its cache when
the app is built and serves them from there. A tab offers only the examples whose models are deployed here.

Each builder lays out the table where the tab calls it; after a click, the tab's own wiring
follows (``follow_*``, wired once that exists), as when a person picks a model: ``follow(event)``
chains the tab's model-change step after ``event``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from gradio.events import Dependency

from flux_ui.assets import example_photo
from flux_ui.registry import MODELS
from flux_ui.ui import references
from flux_ui.ui.common import model_choices
from flux_ui.ui.controls import preset_sizes

#: Chains a tab's model-change step (controls shown, bounded, reset) after an event.
Follow = Callable[[Dependency], Dependency]
#: No function, no cache, no run on click, nothing on load, no API endpoint.
QUIET: dict[str, Any] = {"fn": None, "cache_examples": False, "run_on_click": False, "preload": False,
                         "api_visibility": "private"}
PRIVATE: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
IMAGE_NUMBER = re.compile(r"\bimages? (\d+)\b", re.IGNORECASE)


@dataclass(frozen=True)
class PromptExample:
    """Text to image: a prompt for one model, maybe with a shape (a size preset) and parameters."""

    model: str
    prompt: str
    shape: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EditExample:
    """Edit with references: photos (names in assets/examples/), added in order as image 1…N."""

    model: str
    prompt: str
    photos: tuple[str, ...]


@dataclass(frozen=True)
class KontextExample:
    model: str
    photo: str
    prompt: str


@dataclass(frozen=True)
class CompareExample:
    prompt: str
    models: tuple[str, ...]
    shape: str = "1:1"


PROMPTS = (
    PromptExample("FLUX.2-flex", 'A hand-painted wooden shop sign above a corner bakery that reads exactly '
                  '"BREAD & BUTTER · EST. 1962", cream serif letters on deep green, brick wall, morning sun',
                  shape="3:2", params={"guidance": 5.0}),
    PromptExample("FLUX.2-pro", "A fisherman mending nets on a wooden pier at dawn, mist over the harbour, "
                  "weathered hands in sharp focus, 50 mm lens, natural light, photorealistic", shape="16:9"),
    PromptExample("FLUX.2-pro", 'A travel poster: "LISBON" in tall art-deco capitals across the top, a yellow '
                  'tram climbing a steep street in the middle, "Summer Festival · 12–20 June" in small type at '
                  "the bottom, flat colours, clean grid layout", shape="2:3"),
    PromptExample("FLUX-1.1-pro", "A cosy isometric living room, a cat asleep on a green sofa, plants on the "
                  "shelves, warm lamp light, soft 3D render"),
    PromptExample("FLUX.1-schnell", "Quick concept sketch: a floating island city with waterfalls spilling "
                  "into the clouds, loose pencil lines, grey wash", params={"num_inference_steps": 2}),
)

EDITS = (
    EditExample("FLUX.2-pro", "The astronaut from image 1 holding the cat from image 2 in their arms, standing "
                "on the Moon, Earth rising behind them, photorealistic", ("astronaut.png", "chelsea.png")),
    EditExample("FLUX.2-flex", "The cat from image 1 sitting at a café table beside the coffee cup from image 2, "
                "watching the rocket launch from image 3 through the window",
                ("chelsea.png", "coffee.png", "rocket.jpg")),
    EditExample("FLUX.2-pro", "The astronaut from image 2 riding a horse shaped like the silhouette in image 1 "
                "across a red desert at sunset, cinematic", ("horse.png", "astronaut.png")),
)

KONTEXT = (
    KontextExample("FLUX.1-Kontext-pro", "chelsea.png", "Give the cat a tiny wizard hat; keep the rest as it is"),
    KontextExample("FLUX.1-Kontext-pro", "coffee.png", "Turn the coffee into a matcha latte with a leaf in the foam"),
    KontextExample("FLUX.1-Kontext-pro", "astronaut.png", "Make it a watercolour painting; keep the face and "
                   "the pose"),
)

COMPARISONS = (
    CompareExample("A lighthouse on a cliff in a storm, waves breaking, oil painting",
                   ("FLUX.2-pro", "FLUX-1.1-pro", "FLUX.1-schnell")),
    CompareExample('A neon sign that says "OPEN LATE" in a rainy alley at night, reflections on the cobbles',
                   ("FLUX.2-pro", "FLUX.2-flex"), shape="16:9"),
    CompareExample("A red fox curled up asleep in fresh snow, watercolour",
                   ("FLUX.2-pro", "FLUX.2-flex", "FLUX-1.1-pro", "FLUX.1-schnell"), shape="4:3"),
)


# --- which examples a tab offers ------------------------------------------------------------

def prompt_examples(models: Sequence[str]) -> list[PromptExample]:
    return [e for e in PROMPTS if e.model in models]


def edit_examples(models: Sequence[str]) -> list[EditExample]:
    return [e for e in EDITS if e.model in models and len(e.photos) <= references.limit_of(e.model)]


def kontext_examples(models: Sequence[str]) -> list[KontextExample]:
    return [e for e in KONTEXT if e.model in models]


def compare_examples(models: Sequence[str], minimum: int) -> list[CompareExample]:
    """Each comparison on its deployed models, kept while at least ``minimum`` of them are."""
    kept = [CompareExample(e.prompt, tuple(m for m in e.models if m in models), e.shape) for e in COMPARISONS]
    return [e for e in kept if len(e.models) >= minimum]


def image_numbers(prompt: str) -> list[int]:
    """The reference numbers a prompt names ("the cat from image 2" → [2])."""
    return [int(n) for n in IMAGE_NUMBER.findall(prompt)]


def photo_paths(names: Sequence[str]) -> list[str]:
    return [str(example_photo(name)) for name in names]


# --- what a click does after Gradio filled the form --------------------------------------------

def clicked(value: Any) -> int:
    """The index of the example clicked, from the Dataset's value (type "tuple": (index, sample))."""
    index = value[0] if isinstance(value, list | tuple) else value
    return index if isinstance(index, int) else 0


def shape_size(model: str, shape: str | None) -> tuple[str, int, int] | None:
    """The model's size preset for a shape: ("WxH", width, height), or None."""
    for label, value in preset_sizes(MODELS[model]):
        if label.split()[0] == shape:
            width, height = (int(v) for v in value.split("x"))
            return value, width, height
    return None


def extra_updates(example: PromptExample, names: Sequence[str]) -> list[Any]:
    """[preset, *controls] for an example's shape and parameters, after the model's own reset."""
    values = dict(example.params)
    size = shape_size(example.model, example.shape)
    if size:
        values.update(width=size[1], height=size[2])
    preset = gr.update(value=example.shape) if size else gr.update()  # the preset's value is its shape
    return [preset, *(gr.update(value=values[n]) if n in values else gr.update() for n in names)]


def gallery_paths(value: Any) -> list[str]:
    """The files of a Gallery's value as Gradio hands it over ((path, caption) pairs), in order."""
    items = value or []
    return [str(item[0] if isinstance(item, list | tuple) else item) for item in items]


def _examples(rows: list[list[Any]], inputs: Sequence[Any], elem_id: str, button: str = "Generate") -> gr.Examples:
    return gr.Examples(rows, list(inputs), label=f"Examples: a click fills the form; nothing is sent until you press "
                       f"{button}", elem_id=elem_id, **QUIET)


# --- the builders: the table where the tab lays it out, then its steps once the tab's exist -----

def text_to_image(models: Sequence[str], prompt: gr.Textbox, model: gr.Dropdown) -> gr.Examples | None:
    """The prompt examples, filling the prompt and the model."""
    offered = prompt_examples(models)
    if not offered:
        return None
    return _examples([[e.prompt, e.model] for e in offered], [prompt, model], "t2i-examples")


def follow_text_to_image(shown: gr.Examples | None, models: Sequence[str], follow: Follow, presets: gr.Dropdown,
                         controls: Mapping[str, Any]) -> None:
    """After a click: the model's controls (``follow``), then the example's size preset and parameters."""
    if shown is None:
        return
    offered, names = prompt_examples(models), list(controls)
    follow(shown.load_input_event).then(lambda value: extra_updates(offered[clicked(value)], names),
                                        shown.dataset, [presets, *controls.values()], **PRIVATE)


def edit(models: Sequence[str]) -> gr.Examples | None:
    """The reference examples, which fill hidden fields: :func:`follow_edit` moves them into the form."""
    offered = edit_examples(models)
    if not offered:
        return None
    fields = [gr.Textbox(label="Prompt", visible=False),
              gr.Dropdown(model_choices(models), value=models[0], label="Model", visible=False),
              gr.Gallery(label="References: image 1, image 2, …", type="filepath", visible=False)]
    return _examples([[e.prompt, e.model, photo_paths(e.photos)] for e in offered], fields, "edit-examples")


def follow_edit(shown: gr.Examples | None, prompt: gr.Textbox, model: gr.Dropdown,
                add: Callable[[list[str], Any, str], list[Any]], add_outputs: Sequence[Any], follow: Follow,
                **listener: Any) -> None:
    """After a click: the prompt, the model and the photos, which replace the references through the
    tab's own ``add`` (its ``add_outputs``), in one step; then the model's controls (``follow``).

    One step, because the tab redraws its cards when the model changes, from the references it
    reads then: those must already be the example's.
    """
    if shown is None:
        return

    def load(text: str, model_id: str, files: Any) -> list[Any]:
        return [text, gr.update(value=model_id), *add([], gallery_paths(files), model_id)]

    follow(shown.load_input_event.then(load, shown.inputs, [prompt, model, *add_outputs], **listener))


def kontext(models: Sequence[str], image: gr.Image, prompt: gr.Textbox, model: gr.Dropdown) -> gr.Examples | None:
    """A photo, an instruction and the model; the tab chains its steps after ``load_input_event``."""
    offered = kontext_examples(models)
    if not offered:
        return None
    rows = [[str(example_photo(e.photo)), e.prompt, e.model] for e in offered]
    return _examples(rows, [image, prompt, model], "kontext-examples")


def compare(models: Sequence[str], prompt: gr.Textbox, picked: gr.CheckboxGroup, shape: gr.Dropdown,
            minimum: int) -> gr.Examples | None:
    """A prompt, a set of deployed models and a shape."""
    offered = compare_examples(models, minimum)
    if not offered:
        return None
    return _examples([[e.prompt, list(e.models), e.shape] for e in offered], [prompt, picked, shape],
                     "compare-examples", button="Compare")
