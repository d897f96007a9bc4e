"""Variations: one form sent as 1–8 requests at once, each with its own seed, shown as they arrive.

The seeds are planned by :func:`flux_ui.grid.plan_variations` (seed, seed+1, … from the chosen seed, or
random and distinct), the requests go through the one fan-out loop (:mod:`flux_ui.ui.fanout`), each
within its deployment's quota, and each image is saved to History with its group
(``{"group": {"kind": "variations", "id": …, "index": i}}``). After a run, a contact sheet and a ZIP
(:mod:`flux_ui.exports`) are written where exports go and registered with the file gate
(:mod:`flux_ui.ui.downloads`), so the page can offer them. Plain values only: Text to image and Edit
wire these (``image_form``).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from flux_ui.client import GenerationRequest, GenerationResult, finite
from flux_ui.errors import FluxError, ValidationError
from flux_ui.exports import Axis
from flux_ui.grid import MAX_VARIATIONS, GridBase, plan_variations
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime
from flux_ui.ui import downloads, handlers
from flux_ui.ui.fanout import Fanout, Slot, check_budget, in_group, run_fanout
from flux_ui.ui.quota_gate import QuotaGate
from flux_ui.ui.text import inert

KIND = "variations"
#: Where each run's contact sheet and ZIP go (a folder of their own in it), under the outputs folder.
EXPORTS = downloads.EXPORTS
#: At most this many failures are spelled out in a status line; the rest are counted.
SHOWN_FAILURES = 3


def parse_count(value: Any) -> int:
    """How many images a run makes: a whole number from 1 to 8 (None: 1); ValidationError otherwise."""
    if value is None or value == "":
        return 1
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None or not finite(number) or number != int(number):
        raise ValidationError(f"Images per run (count) must be a whole number from 1 to {MAX_VARIATIONS}; got "
                              f"{value!r}.", field="count")
    if not 1 <= number <= MAX_VARIATIONS:
        raise ValidationError(f"Images per run (count) is 1 to {MAX_VARIATIONS}; got {int(number)}. Each image is "
                              "its own request, billed on its own.", field="count")
    return int(number)


@dataclass(kw_only=True)
class Variations(Fanout):
    """A running (then finished, or stopped) run of variations: one slot per image, in seed order."""

    id: str
    tab: str
    model: str
    prompt: str
    stopped: bool = False

    @property
    def count(self) -> int:
        return len(self.slots)

    @property
    def seeds(self) -> list[int]:
        return [int(slot.params["seed"]) for slot in self.slots]

    @property
    def made(self) -> list[handlers.Generated]:
        """The images made so far, in seed order."""
        return [s.generated for s in self.slots if s.generated is not None]

    @property
    def failed(self) -> list[int]:
        return [i for i, s in enumerate(self.slots) if s.error is not None]


def prepare(runtime: Runtime, model: str, prompt: str, params: Mapping[str, Any], references: Sequence[bytes],
            count: int, consecutive: bool, tab: str, rng: random.Random | None = None) -> Variations:
    """The run to send, its seeds planned; ValidationError (nothing sent) for what a click would refuse,
    BudgetError (one) for a run whose estimate would pass a daily cap.

    ``params`` are the form's (a seed among them only when the person chose one); ``consecutive`` runs
    the seeds on from it, otherwise they are random and distinct (the first keeps a chosen seed).
    """
    checked = runtime.client.validate(GenerationRequest(model, prompt, tuple(references), params))
    seed = checked.params.get("seed") if "seed" in params else None
    base = GridBase(prompt, model, {k: v for k, v in params.items() if k != "seed"})
    cells = plan_variations(base, count, seed, consecutive, rng or random.SystemRandom())
    group = uuid.uuid4().hex
    slots = [Slot(model, prompt, {**params, "seed": cell.params["seed"]},
                  extra=in_group(KIND, group, index=i)) for i, cell in enumerate(cells)]
    run = Variations(slots=slots, id=group, tab=tab, model=model, prompt=prompt)
    check_budget(runtime, run, tab, references)  # past a daily cap the run is refused whole, up front
    return run


async def run(runtime: Runtime, variations: Variations, references: Sequence[bytes] = (),
              gate: QuotaGate | None = None) -> AsyncIterator[Variations]:
    """Send every image at once; yield the run (updated in place) whenever one arrives, and every tick.

    Closing the generator (Stop) sends nothing more; what was sent is still awaited and saved to
    History by its job. With ``gate``, the images past the first (which the endpoint counts) count
    against the deployment's requests in progress too.
    """
    extra = [variations.model] * (variations.count - 1)
    with gate.admitted_all(extra) if gate is not None else nullcontext():
        try:
            async for _ in run_fanout(runtime, variations, variations.tab, references):
                yield variations
        except (asyncio.CancelledError, GeneratorExit):
            variations.stopped = True
            raise


async def finished(steps: AsyncIterator[Any]) -> Variations:
    """The last run a stream of steps yields (the API's way: the same requests, without the ticks)."""
    last = None
    async for step in steps:
        last = step
    assert isinstance(last, Variations), "a run of variations yields itself"
    return last


# --- what the page and the API say about a run ------------------------------------------------------

def caption_line(result: GenerationResult) -> str:
    """A gallery caption: the seed, then the caption's line (what differs between the images first), without
    the model, which the caption under the gallery names."""
    _, size, *rest = handlers.caption(result).splitlines()[0].replace("**", "").split(" · ")
    return " · ".join([f"seed {result.seed}", *(p for p in rest if not p.startswith("seed ")), size])


def gallery(variations: Variations) -> list[tuple[str, str]]:
    """(file, caption) for each image made so far, in seed order."""
    return [(g.path, caption_line(g.result)) for g in variations.made]


def seeds_text(seeds: Sequence[int]) -> str:
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def label(variations: Variations) -> str:
    """The gallery's label: which model, how many so far, which seeds."""
    name = MODELS[variations.model].display_name if variations.model in MODELS else variations.model
    return f"{name} · {variations.images} of {variations.count} images · {seeds_text(variations.seeds)}"


def progress_line(variations: Variations) -> str:
    """The status while a run goes on: time, images so far, requests sent, and any waiting for quota."""
    v = variations
    parts = [f"⏳ {v.elapsed:.1f} s", f"{v.images} of {v.count} images", f"{v.sent} sent"]
    paced = sum(1 for s in v.slots if not s.finished and s.event is not None and s.event.stage == "paced")
    if paced:
        parts.append(f"{paced} waiting for a quota slot")
    if v.failed:
        parts.append(f"{len(v.failed)} failed")
    return " · ".join(parts)


def failures(variations: Variations, markdown: bool = True) -> str:
    """Each failed image with its seed and why (the first few), inert for the page."""
    shown = []
    for i in variations.failed[:SHOWN_FAILURES]:
        slot = variations.slots[i]
        shown.append(f"image {i + 1} (seed {slot.params['seed']}): {inert(slot.error) if markdown else slot.error}")
    more = len(variations.failed) - len(shown)
    return " ".join(shown) + (f" And {more} more." if more else "")


def finished_line(variations: Variations, markdown: bool = True) -> str:
    """The status after a run: empty when every image arrived, else what failed (the rest are in History)."""
    v = variations
    if not v.failed:
        return ""
    if not v.images:
        return f"⚠️ None of the {v.count} images was made. {failures(v, markdown)}"
    rest = "the other one is" if v.images == 1 else f"the other {v.images} are"
    return f"⚠️ {len(v.failed)} of {v.count} failed; {rest} saved in History. {failures(v, markdown)}"


def stopped_line(variations: Variations) -> str:
    """The status after Stop: how many were sent (billed, and saved as they arrive) and how many not."""
    v = variations
    if not v.sent:
        return f"⏹ Stopped: none of the {v.count} requests was sent, and nothing is billed."
    coming = sum(1 for s in v.slots if s.sent and not s.finished)
    kept = v.images + coming
    if kept == v.sent:
        saved = "it is saved in History" if v.sent == 1 else f"those {v.sent} are saved in History"
    else:
        saved = f"{kept} of them {'is' if kept == 1 else 'are'} saved in History ({v.sent - kept} failed)"
    later = f" ({coming} still on the way: each is saved when it arrives)" if coming else ""
    rest = v.count - v.sent
    unsent = ("" if not rest else " The other one was not sent and is not billed." if rest == 1
              else f" The other {rest} were not sent and are not billed.")
    return f"⏹ Stopped: {v.sent} of {v.count} sent; {saved}{later}.{unsent}"


def api_payload(variations: Variations) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """(gallery of (file, caption), JSON) for a finished run, in seed order."""
    images: list[tuple[str, str]] = []
    records = []
    for i, slot in enumerate(variations.slots):
        record: dict[str, Any] = {"index": i, "seed": slot.params["seed"], "image_index": None,
                                  "arrival": variations.arrivals.index(i) if i in variations.arrivals else None,
                                  "error": slot.error}
        if slot.generated is not None:
            r = slot.generated.result
            record.update(image_index=len(images), width=r.info.width, height=r.info.height, format=r.format,
                          time_s=round(r.timings.total_s, 2),
                          cost_usd=None if r.cost_estimate_usd is None else round(r.cost_estimate_usd, 4),
                          history_id=slot.generated.entry.id or None, caption=handlers.caption(r))
            images.append((slot.generated.path, caption_line(r)))
        records.append(record)
    return images, {"group": variations.id, "model": variations.model, "prompt": variations.prompt,
                    "seeds": variations.seeds, "images": variations.images, "sent": variations.sent,
                    "elapsed_s": round(variations.elapsed, 2), "results": records}


async def api_answer(steps: AsyncIterator[Any]) -> tuple[list[tuple[str, str]], dict[str, Any], str]:
    """What the variations endpoints return: (images, results, message); the message says what failed."""
    try:
        done = await finished(steps)
    except FluxError as err:
        return [], {"results": []}, f"⚠️ {err}"
    images, payload = api_payload(done)
    return images, payload, finished_line(done, markdown=False)


# --- the contact sheet and the ZIP -------------------------------------------------------------------

def sheet_settings(variations: Variations) -> dict[str, Any]:
    """What the contact sheet carries: the run's group, model, prompt, parameters and seeds (no key)."""
    params = {k: v for k, v in variations.slots[0].params.items() if k != "seed"}
    return {"generator": "flux-ui", "kind": KIND, "group": variations.id, "tab": variations.tab,
            "model": variations.model, "prompt": variations.prompt, "params": params, "seeds": variations.seeds}


async def export(runtime: Runtime, variations: Variations) -> downloads.Exports:
    """The run's contact sheet (one row of seeds) and ZIP, served to the page."""
    name = MODELS[variations.model].display_name
    planned = {"tab": variations.tab}
    cells = downloads.row_cells(variations.slots, [name] * len(variations.slots), planned)
    return await downloads.export_row(runtime.history.folder, KIND, variations.id, cells, title=variations.prompt,
                                      axis=Axis("seed", tuple(map(str, variations.seeds))),
                                      settings=sheet_settings(variations))
