"""What a planned grid or run of variations will cost and how long it will take, before it is sent.

The cost is the registry's list-price hint for each sent cell's output size (the service's own bill wins);
the time is the floor each deployment's quota sets, with deployments running side by side, so a person
can see what a 100-cell grid means before confirming it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from flux_ui.grid.plan import Cell
from flux_ui.pacing import Quota
from flux_ui.registry import MODELS

#: Seconds one request takes once sent, when the caller has no measurement of its own.
DEFAULT_REQUEST_S = 12.0
_NO_TIERS: Mapping[str, str | None] = MappingProxyType({})


def format_duration(seconds: float) -> str:
    """A wait as a person reads it: "45 s", "1 min 50 s", "1 h 5 min" (whole seconds, then whole minutes)."""
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"a duration is a finite number of seconds from 0, not {seconds!r}")
    total = max(1, round(seconds)) if seconds > 0 else 0
    if total < 60:
        return f"{total} s"
    if total < 3600:
        minutes, rest = divmod(total, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, minutes = divmod(round(total / 60), 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


@dataclass(frozen=True)
class DeploymentLoad:
    """One deployment's share of a run: its images, its quota and the time that quota needs for them."""

    model: str
    images: int
    seconds: float
    quota: Quota | None  # None: not paced by flux-ui
    tier: str | None

    def describe(self) -> str:
        """ "FLUX.2 [flex] low tier: 5 per minute", or the quota itself when it has no tier name."""
        name = MODELS[self.model].display_name
        if self.quota is None:
            return f"{name}: not paced"
        if self.tier:
            return f"{name} {self.tier} tier: {self.quota.rpm:g} per minute"
        return f"{name}: {self.quota.describe()}"


@dataclass(frozen=True)
class Estimate:
    """Images to send, their list-price cost and the least time the quotas allow."""

    images: int  # sent cells only
    skipped: int  # n/a cells, which send nothing
    cost_usd: float | None  # the cells with a price; None when no sent cell has one
    unknown_cost: tuple[str, ...]  # "cost unknown for …" for each model without a price
    seconds: float
    loads: tuple[DeploymentLoad, ...]  # per deployment, in the order the cells first use them

    @property
    def slowest(self) -> DeploymentLoad | None:
        """The deployment the run waits for (the first of equals)."""
        return max(self.loads, key=lambda load: load.seconds, default=None)

    @property
    def text(self) -> str:
        """ "12 images · ≈ $0.74 · ≈ 1 min 50 s (FLUX.2 [flex] low tier: 5 per minute)"."""
        head = f"{self.images} image{'' if self.images == 1 else 's'}"
        if self.skipped:
            head += f" ({self.skipped} cell{'' if self.skipped == 1 else 's'} n/a)"
        if not self.images:
            return f"{head} · nothing to send"
        costs = ([f"≈ ${self.cost_usd:.2f}"] if self.cost_usd is not None else []) + list(self.unknown_cost)
        slowest = self.slowest
        when = f"≈ {format_duration(self.seconds)}" + (f" ({slowest.describe()})" if slowest else "")
        return " · ".join([head, " + ".join(costs), when])

    def needs_confirmation(self, threshold_images: int = 20, threshold_usd: float = 1.0) -> bool:
        """Whether to ask before sending: more images than ``threshold_images``, or more than ``threshold_usd``."""
        return self.images > threshold_images or (self.cost_usd or 0.0) > threshold_usd


def estimate(cells: Iterable[Cell], quotas: Mapping[str, Quota | None],
             request_s: Mapping[str, float] | float = DEFAULT_REQUEST_S,
             tiers: Mapping[str, str | None] = _NO_TIERS) -> Estimate:
    """The estimate for ``cells`` (n/a ones send nothing); ``quotas``, ``request_s`` and ``tiers`` by model ID.

    A deployment with quota ``q`` sends ``n`` images in at least ``(ceil(n / q.requests) - 1) * q.window_s``
    seconds plus one request's time; an unpaced one (no quota, or missing from ``quotas``) sends them all at
    once. A model missing from ``request_s`` takes :data:`DEFAULT_REQUEST_S`.
    """
    cells = list(cells)
    sent = [cell for cell in cells if cell.request is not None]
    by_model: dict[str, list[Cell]] = {}
    for cell in sent:
        by_model.setdefault(cell.model, []).append(cell)
    loads = tuple(_load(model, len(group), quotas.get(model), _request_s(request_s, model), tiers.get(model))
                  for model, group in by_model.items())
    cost, unknown = _cost(by_model)
    return Estimate(
        images=len(sent),
        skipped=len(cells) - len(sent),
        cost_usd=cost,
        unknown_cost=unknown,
        seconds=max((load.seconds for load in loads), default=0.0),
        loads=loads,
    )


def _request_s(request_s: Mapping[str, float] | float, model: str) -> float:
    if isinstance(request_s, Mapping):
        return float(request_s.get(model, DEFAULT_REQUEST_S))
    return float(request_s)


def _load(model: str, images: int, quota: Quota | None, request_s: float, tier: str | None) -> DeploymentLoad:
    waits = 0.0 if quota is None else (math.ceil(images / quota.requests) - 1) * quota.window_s
    return DeploymentLoad(model, images, waits + request_s, quota, tier)


def _cost(by_model: Mapping[str, list[Cell]]) -> tuple[float | None, tuple[str, ...]]:
    """The sum of the priced cells (None when none is priced), and a note for each model without a price."""
    total: float | None = None
    unknown: list[str] = []
    for model, group in by_model.items():
        spec = MODELS[model]
        prices = [spec.price.estimate(cell.size[0] * cell.size[1]) if cell.size else
                  spec.price.usd_per_image for cell in group]
        known = [p for p in prices if p is not None]
        if known:
            total = (total or 0.0) + sum(known)
        if len(known) < len(prices):
            note = spec.price.note or "no published price"
            unknown.append(f"cost unknown for {spec.display_name} ({note})")
    return total, tuple(unknown)
