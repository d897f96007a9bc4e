"""Spend settings: the daily caps (the whole instance, each user), what a model without a list price
counts as, and how the cost the service reports turns into dollars.

Both caps are off until set, so a single user on loopback never meets one. Amounts are US dollars
per UTC day, counted from the registry's list-price hints and corrected by the service's own figure
(:mod:`flux_ui.spend` says how).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from flux_ui.registry import MODELS

#: The emulator's reading of ``request_meta.cost`` (credits of $0.01), which fits the contract's one
#: example (3 for a 1.05 MP FLUX.2 [pro] image, $0.03 per megapixel at list price).
DEFAULT_SERVICE_COST_USD = 0.01
_UNPRICED = tuple(spec.id for spec in MODELS.values() if spec.price.estimate(1_000_000) is None)
_UNPRICED_EXAMPLE = "FLUX_UI_UNPRICED_USD=" + ",".join(
    f"{m}={'0' if MODELS[m].aml else '0.04'}" for m in _UNPRICED) if _UNPRICED else "FLUX_UI_UNPRICED_USD=0.04"

VARIABLES: tuple[tuple[str, str, str, str], ...] = (
    ("FLUX_UI_DAILY_BUDGET_USD", "(none: no cap)", "20",
     "The most the whole instance may spend per UTC day, in US dollars; a request (or a whole grid or run of "
     "variations) that would pass it is refused before anything is sent."),
    ("FLUX_UI_USER_DAILY_BUDGET_USD", "(none: no cap)", "2.50",
     "The same cap for each user (each login, or each browser on a demo without logins)."),
    ("FLUX_UI_UNPRICED_USD", "(none: refused while a cap is set)", _UNPRICED_EXAMPLE.split("=", 1)[1],
     "What an image from a model without a list price counts against the caps: one amount and/or MODEL=USD. "
     "Without one, such a model is refused while a cap is set (its cost cannot be bounded)."),
    ("FLUX_UI_SERVICE_COST_USD", f"{DEFAULT_SERVICE_COST_USD:g}", "off",
     "US dollars per unit of the cost the service reports (request_meta.cost, whose unit is not documented), "
     "which replaces the list-price estimate once an image arrives; off: keep the estimate."),
)


@dataclass(frozen=True)
class SpendSettings:
    """The caps (None: no cap), the unpriced models' stand-in prices, and the service cost's unit."""

    daily_usd: float | None = None
    user_daily_usd: float | None = None
    unpriced_usd: Mapping[str, float] = field(default_factory=dict)  # by model ID
    service_cost_usd: float | None = DEFAULT_SERVICE_COST_USD  # None: the service's figure corrects nothing

    def __post_init__(self) -> None:
        object.__setattr__(self, "unpriced_usd", MappingProxyType(dict(self.unpriced_usd)))

    @property
    def capped(self) -> bool:
        return self.daily_usd is not None or self.user_daily_usd is not None

    def unpriced(self, model: str) -> float | None:
        """The amount an image of ``model`` (one without a list price) counts, or None when none is set."""
        return self.unpriced_usd.get(model)


def _amount(var: str, text: str, example: str, problems: list[str], *, zero: bool = False) -> float | None:
    """A dollar amount ("20", "2.50", "$5"), or None with a problem naming the variable and a fix."""
    cleaned = text.strip().removeprefix("$").strip()
    try:
        value = float(cleaned)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        least = "0 or more" if zero else "more than 0"
        problems.append(f"{var}={text!r} is not an amount in US dollars {least}; for example {var}={example}"
                        + ("" if zero else " (leave it out for no cap)"))
        return None
    return value


def _parse_unpriced(text: str, problems: list[str]) -> Mapping[str, float]:
    """``0.04``, ``FLUX.1-Kontext-pro=0.04`` or ``0.04,FLUX.1-schnell=0``: a bare amount covers every
    model without a list price that is not named."""
    var = "FLUX_UI_UNPRICED_USD"
    default: float | None = None
    named: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        model, sep, value = item.rpartition("=") if "=" in item else ("", "", item)
        amount = _amount(var, value if sep else item, _UNPRICED_EXAMPLE.split("=", 1)[1], problems, zero=True)
        if amount is None:
            continue
        if not sep:
            default = amount
            continue
        model = model.strip()
        if model not in MODELS:
            problems.append(f"{var}: {model!r} is not a model flux-ui knows (those without a list price: "
                            f"{', '.join(_UNPRICED) or 'none'}); for example {_UNPRICED_EXAMPLE}")
        elif model not in _UNPRICED:
            problems.append(f"{var}: {model} has a list price ({MODELS[model].price.note}), which flux-ui counts; "
                            f"this setting is for models without one ({', '.join(_UNPRICED)}); for example "
                            f"{_UNPRICED_EXAMPLE}")
        else:
            named[model] = amount
    if default is not None:
        named = {**dict.fromkeys(_UNPRICED, default), **named}
    return MappingProxyType(named)


def load_spend(env: Mapping[str, str], problems: list[str]) -> SpendSettings:
    """The spend settings from the (merged, stripped) environment; problems are appended, not raised."""
    caps = {}
    for var, example in (("FLUX_UI_DAILY_BUDGET_USD", "20"), ("FLUX_UI_USER_DAILY_BUDGET_USD", "2.50")):
        caps[var] = _amount(var, env[var], example, problems) if env.get(var, "").strip() else None
    service_text = env.get("FLUX_UI_SERVICE_COST_USD", "").strip()
    service: float | None = DEFAULT_SERVICE_COST_USD
    if service_text.lower() in ("off", "no", "none"):
        service = None
    elif service_text:
        service = _amount("FLUX_UI_SERVICE_COST_USD", service_text, "0.01 (or off)", problems)
    return SpendSettings(caps["FLUX_UI_DAILY_BUDGET_USD"], caps["FLUX_UI_USER_DAILY_BUDGET_USD"],
                         _parse_unpriced(env.get("FLUX_UI_UNPRICED_USD", ""), problems), service)
