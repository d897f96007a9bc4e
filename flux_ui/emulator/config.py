"""How an emulator instance behaves: the switches for each [open] point of the contract, and faults.

Every switch defaults to the documented behaviour ([doc] in ``docs/service-contract.md``)
so a client tested against the defaults is tested against the service as Microsoft describes it;
the other settings play the variants the contract marks [seen] or [open], one at a time.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from flux_ui.pacing import Quota

FaultKind = Literal["latency", "status", "drop", "trickle", "empty", "refuse", "malformed", "expire_url"]
FAULT_KINDS: tuple[str, ...] = ("latency", "status", "drop", "trickle", "empty", "refuse", "malformed", "expire_url")
#: Routes a fault can be limited to. "poll", "delivery" (result downloads) and Content Safety's two
#: routes are opt-in: by default faults hit generation requests only.
FAULT_ROUTES: tuple[str, ...] = ("bfl", "images/generations", "images/edits", "aml", "poll", "delivery",
                                 "text:analyze", "image:analyze")
GENERATION_ROUTES: tuple[str, ...] = ("bfl", "images/generations", "images/edits", "aml")
#: The key that makes a fault apply to every deployment.
ALL_DEPLOYMENTS = "*"
#: Content Safety's harm categories, as its API spells them (the emulator's own copy: it plays the service).
SAFETY_CATEGORIES: tuple[str, ...] = ("Hate", "SelfHarm", "Sexual", "Violence")


@dataclass(frozen=True)
class Fault:
    """One misbehaviour to play on matching requests.

    ``kind`` picks what happens; the other fields tune it:

    - ``latency``: answer no sooner than ``seconds`` (plus a uniform draw from ``[0, jitter_s]``) after
      the request arrived; the image is rendered within that time.
      Latency faults stack with each other and with one other fault.
    - ``status``: answer ``status`` with the route's error body (``message`` overrides the text).
      For 429, ``retry_after`` (None: the emulator-wide switch) decides whether ``Retry-After``
      is sent and ``retry_after_s`` how long it asks to wait (default 1 s).
    - ``drop``: send the headers and part of the body, then cut the connection.
    - ``trickle``: send the whole answer in small chunks spread over ``seconds``.
    - ``empty``: 200 without an image; ``variant`` "item" gives ``data: [{}]``, "list" ``data: []``.
    - ``refuse``: a content refusal; ``variant`` "status" (400) or "finish_reason" (200), default
      the emulator-wide ``refuse_style``.
    - ``malformed``: 200 whose body is not valid JSON.
    - ``expire_url``: the result URL (polling flow or ``url`` results) has already expired.

    ``count`` fires the fault on the next N matching requests (None: on every one);
    ``probability`` draws from the emulator's seeded RNG. ``routes`` limits the fault to some
    routes (empty: every generation route; name "poll" to hit polling requests, "delivery" to hit
    result downloads, where latency, status, drop, trickle and empty apply).
    """

    kind: FaultKind
    status: int = 500
    seconds: float = 0.0
    jitter_s: float = 0.0
    retry_after: bool | None = None
    retry_after_s: float | None = None
    variant: str | None = None
    message: str | None = None
    count: int | None = None
    probability: float = 1.0
    routes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind {self.kind!r} is not one of {', '.join(FAULT_KINDS)}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"fault status {self.status} is not an HTTP status")
        if self.seconds < 0 or self.jitter_s < 0 or (self.retry_after_s is not None and self.retry_after_s < 0):
            raise ValueError("fault durations cannot be negative")
        if self.count is not None and self.count < 0:
            raise ValueError("fault count cannot be negative (None fires on every request)")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"fault probability {self.probability} is not between 0 and 1")
        object.__setattr__(self, "routes", tuple(self.routes))
        for route in self.routes:
            if route not in FAULT_ROUTES:
                raise ValueError(f"fault route {route!r} is not one of {', '.join(FAULT_ROUTES)}")
        allowed = {"empty": ("item", "list"), "refuse": ("status", "finish_reason")}.get(self.kind, ())
        if self.variant is not None and self.variant not in allowed:
            raise ValueError(f"fault variant {self.variant!r} does not apply to {self.kind!r}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["routes"] = list(self.routes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        """A fault from the control endpoint's JSON; unknown fields are an error, not ignored."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown fault field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        if "kind" not in data:
            raise ValueError("a fault needs a kind")
        values = dict(data)
        if "routes" in values:
            values["routes"] = tuple(values["routes"] or ())
        return cls(**values)


BflStyle = Literal["sync", "polling"]
ImageApiResult = Literal["b64_json", "url"]
RefuseStyle = Literal["status", "finish_reason"]


@dataclass
class EmulatorConfig:
    """Everything an emulator is started with; a few parts can also change at run time.

    Keys: ``api_key`` guards the Foundry routes, ``schnell_key`` the Azure ML ``/score`` route
    (None: the same key, following rotations). An empty ``api_key`` means "generate one".
    Deployments: every Foundry model is deployed under its model ID unless
    ``default_deployments`` is False; ``deployments`` adds names (deployment → model ID).
    Quotas: each deployment gets ``Quota.from_rpm`` of its model's default tier; ``quotas``
    (keyed by deployment name or model ID) overrides that, and ``enforce_quotas=False`` turns
    them off. Faults are keyed by deployment name, model ID or ``"*"``.
    Control routes (``/_emulator/...``): they hand out the request log (every prompt) and rotate
    keys, so they take ``control_token`` (empty: generate one) in the ``X-Emulator-Control-Token``
    header; only ``open_controls=True`` lets any loopback caller in without it, which the
    standalone ``python -m flux_ui.emulator`` does for its developer's scripts.
    Content Safety (``/contentsafety/...``, :mod:`flux_ui.emulator.content_safety`): ``safety_words``
    (word → (category, severity)) in a text give that severity; ``safety_blocklists`` (name → terms)
    are the blocklists it knows; an image carrying the marker, which the renderer draws when a prompt
    holds ``safety_marker_word``, gets ``safety_marker_verdict``. ``content_safety_key`` (None: the
    Foundry key, following rotations) goes in ``Ocp-Apim-Subscription-Key``.
    """

    api_key: str = ""
    schnell_key: str | None = None
    accept_entra: bool = True
    host: str = "127.0.0.1"
    port: int = 0
    deployments: dict[str, str] = field(default_factory=dict)
    default_deployments: bool = True
    quotas: dict[str, Quota] = field(default_factory=dict)
    enforce_quotas: bool = True
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    retry_after_header: bool = True
    bfl_style: BflStyle = "sync"
    polling_pending_polls: int = 2
    image_api_result: ImageApiResult = "b64_json"
    result_url_ttl_s: float = 600.0
    refuse_words: tuple[str, ...] = ("refuse-me",)
    refuse_style: RefuseStyle = "status"
    schnell_square_only: bool = False
    rng_seed: int = 0
    log_limit: int = 10_000
    results_limit: int = 256
    control_token: str = ""
    open_controls: bool = False
    content_safety_key: str | None = None
    safety_words: dict[str, tuple[str, int]] = field(default_factory=lambda: {
        "safety-hate": ("Hate", 6), "safety-selfharm": ("SelfHarm", 6), "safety-sexual": ("Sexual", 6),
        "safety-violence": ("Violence", 6), "mild-violence": ("Violence", 2)})
    safety_blocklists: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"flux-ui-demo": ("blocked-term",)})
    safety_marker_word: str = "safety-marker"
    safety_marker_verdict: tuple[str, int] = ("Sexual", 6)

    def __post_init__(self) -> None:
        if not self.api_key:
            self.api_key = secrets.token_urlsafe(24)
        if not self.control_token:
            self.control_token = secrets.token_urlsafe(32)
        if self.bfl_style not in ("sync", "polling"):
            raise ValueError(f"bfl_style must be 'sync' or 'polling', not {self.bfl_style!r}")
        if self.image_api_result not in ("b64_json", "url"):
            raise ValueError(f"image_api_result must be 'b64_json' or 'url', not {self.image_api_result!r}")
        if self.refuse_style not in ("status", "finish_reason"):
            raise ValueError(f"refuse_style must be 'status' or 'finish_reason', not {self.refuse_style!r}")
        if self.polling_pending_polls < 0 or self.result_url_ttl_s <= 0 or self.log_limit < 1:
            raise ValueError("polling_pending_polls, result_url_ttl_s and log_limit must be positive")
        for what, (category, severity) in [*self.safety_words.items(), ("the marker", self.safety_marker_verdict)]:
            if category not in SAFETY_CATEGORIES or not 0 <= severity <= 7:
                raise ValueError(f"{what!r} must give one of {', '.join(SAFETY_CATEGORIES)} and a severity 0-7")

    def __repr__(self) -> str:
        # The dataclass repr would print the keys and the control token; a config can end up in a
        # log or a traceback.
        return f"EmulatorConfig(host={self.host!r}, port={self.port}, bfl_style={self.bfl_style!r}, ...)"
