"""Content Safety settings: whether prompts and results are checked, where, how strictly, and what an
outage does.

Foundry runs no content filter for the FLUX models, so flux-ui checks with Azure AI Content Safety
itself (:mod:`flux_ui.safety`). It is off for a single user on loopback until configured:
``CONTENT_SAFETY_ENDPOINT`` turns it on (``CONTENT_SAFETY_KEY``, or Microsoft Entra ID when no key
is set), and ``FLUX_UI_SAFETY=emulator`` turns it on against the local emulator.

When Content Safety cannot answer, flux-ui fails closed: the prompt is not sent, the result is not
shown. ``FLUX_UI_SAFETY_FAIL_OPEN=private`` lets things through on a *private* instance only;
an instance is public when it has logins (``FLUX_UI_USERS``: other people use it) or is reachable
from elsewhere (``--share``, a non-loopback ``--host``, a Space demo), which only the launch knows,
so :meth:`SafetySettings.fails_open` takes it as an argument. ``yes`` lets through everywhere, a
choice an owner makes knowingly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

from flux_ui.secrets import Secret, remember

#: Content Safety's harm categories, as its API spells them.
CATEGORIES: tuple[str, ...] = ("Hate", "SelfHarm", "Sexual", "Violence")
#: Severities of the FourSeverityLevels output are 0, 2, 4 and 6; a limit is the highest let through.
SEVERITY_MAX = 6
#: Safe and low pass, medium and high are blocked: the default of Azure OpenAI's own content filter.
DEFAULT_MAX_SEVERITY = 2
_BLOCKLIST_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._~-]{0,63}")
_ENDPOINT_EXAMPLE = "https://my-safety.cognitiveservices.azure.com"

SafetyMode = Literal["off", "service", "emulator"]
FailOpen = Literal["no", "private", "yes"]
#: Checks a URL setting (``settings._check_url``): the cleaned URL, or None with a problem added.
UrlCheck = Callable[[str, str, str, list[str]], str | None]

VARIABLES: tuple[tuple[str, str, str, str], ...] = (
    ("CONTENT_SAFETY_ENDPOINT", "(none: no content checks)", _ENDPOINT_EXAMPLE,
     "An Azure AI Content Safety resource: prompts are checked before sending, results before showing."),
    ("CONTENT_SAFETY_KEY", "(none: Microsoft Entra ID)", "0123abcd... (from the resource's Keys and Endpoint)",
     "That resource's key. Leave it out to sign in through DefaultAzureCredential (Cognitive Services User role)."),
    ("FLUX_UI_SAFETY", "auto", "emulator",
     "auto: checks on when CONTENT_SAFETY_ENDPOINT is set; on: refuse to start without it; off; "
     "emulator: against the local emulator."),
    ("FLUX_UI_SAFETY_MAX_SEVERITY", str(DEFAULT_MAX_SEVERITY), "Sexual=0,Violence=4",
     "The highest severity let through, 0 to 6 (Content Safety answers 0, 2, 4 or 6): one number, and/or "
     "CATEGORY=N for Hate, SelfHarm, Sexual, Violence."),
    ("FLUX_UI_SAFETY_BLOCKLISTS", "(none)", "brand-terms,banned-names",
     "Content Safety blocklists (by name) a prompt must not match."),
    ("FLUX_UI_SAFETY_FAIL_OPEN", "no", "private",
     "When Content Safety cannot answer: no refuses; private lets through only on an instance without logins "
     "that only this machine reaches; yes always lets through."),
)


def _all(limit: int) -> Mapping[str, int]:
    return MappingProxyType(dict.fromkeys(CATEGORIES, limit))


@dataclass(frozen=True)
class SafetySettings:
    """Where and how strictly prompts and results are checked; ``mode`` "off" checks nothing."""

    mode: SafetyMode = "off"
    endpoint: str | None = None  # the resource's base URL (the emulator's once it runs)
    key: Secret | None = None  # None: Microsoft Entra ID
    max_severity: Mapping[str, int] = field(default_factory=lambda: _all(DEFAULT_MAX_SEVERITY))
    blocklists: tuple[str, ...] = ()
    fail_open: FailOpen = "no"

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_severity", MappingProxyType(dict(self.max_severity)))

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @property
    def auth(self) -> Literal["key", "entra"]:
        return "key" if self.key else "entra"

    def limit(self, category: str) -> int:
        """The highest severity let through in ``category`` (a category flux-ui does not know: the default)."""
        return self.max_severity.get(category, DEFAULT_MAX_SEVERITY)

    def fails_open(self, public: bool) -> bool:
        """The one decision on an outage: True lets the prompt or result through unchecked.

        ``public``: the instance has logins or is reachable from other machines (the launch knows).
        """
        return self.fail_open == "yes" or (self.fail_open == "private" and not public)

    def with_emulator(self, base_url: str, api_key: str) -> SafetySettings:
        """Pointed at a running emulator, when ``FLUX_UI_SAFETY=emulator`` asked for it (else unchanged)."""
        if self.mode != "emulator":
            return self
        return replace(self, endpoint=base_url.rstrip("/"), key=Secret(api_key))


def _parse_max_severity(text: str, problems: list[str]) -> Mapping[str, int]:
    """``4``, ``Sexual=0,Violence=4`` or ``4,Sexual=0``: a bare number sets every category not named."""
    var, example = "FLUX_UI_SAFETY_MAX_SEVERITY", "FLUX_UI_SAFETY_MAX_SEVERITY=2 or Sexual=0,Violence=4"
    default, named = DEFAULT_MAX_SEVERITY, {}
    by_folded = {c.casefold(): c for c in CATEGORIES}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = item.rpartition("=") if "=" in item else ("", "", item)
        value = value.strip()
        if not value.isdigit() or int(value) > SEVERITY_MAX:
            what = "is not" if sep else "is neither"
            tail = "" if sep else " nor CATEGORY=N"
            problems.append(f"{var}: {item!r} {what} a severity from 0 to {SEVERITY_MAX}{tail}; for example {example}")
            continue
        if not sep:
            default = int(value)
            continue
        category = by_folded.get(name.strip().casefold().replace("-", "").replace("_", ""))
        if category is None:
            problems.append(f"{var}: {name.strip()!r} is not a Content Safety category (use "
                            f"{', '.join(CATEGORIES)}); for example {example}")
        else:
            named[category] = int(value)
    return MappingProxyType({c: named.get(c, default) for c in CATEGORIES})


def _parse_blocklists(text: str, problems: list[str]) -> tuple[str, ...]:
    names: list[str] = []
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        if not _BLOCKLIST_NAME.fullmatch(name):
            problems.append(f"FLUX_UI_SAFETY_BLOCKLISTS: {name[:80]!r} is not a blocklist name (letters, digits, "
                            "'.', '_', '~' and '-', at most 64); for example FLUX_UI_SAFETY_BLOCKLISTS=brand-terms")
        elif name not in names:
            names.append(name)
    return tuple(names)


def _fail_open(text: str, problems: list[str]) -> FailOpen:
    value = text.strip().lower() or "no"
    value = {"false": "no", "0": "no", "off": "no", "true": "yes", "1": "yes", "on": "yes"}.get(value, value)
    if value not in ("no", "private", "yes"):
        problems.append(f"FLUX_UI_SAFETY_FAIL_OPEN={text!r} is not no, private or yes; for example "
                        "FLUX_UI_SAFETY_FAIL_OPEN=private (let prompts through unchecked only on a private instance)")
        return "no"
    return value  # type: ignore[return-value]


def load_safety(env: Mapping[str, str], problems: list[str], *, uses_emulator: bool,
                check_url: UrlCheck) -> SafetySettings:
    """The safety settings from the (merged, stripped) environment; problems are appended, not raised."""
    switch = env.get("FLUX_UI_SAFETY", "").strip().lower() or "auto"
    endpoint_text = env.get("CONTENT_SAFETY_ENDPOINT", "")
    key_text = env.get("CONTENT_SAFETY_KEY", "")
    remember(key_text)  # redacted wherever it turns up, even while unused (safety off, a setting at fault)
    if switch not in ("auto", "on", "off", "emulator"):
        problems.append(f"FLUX_UI_SAFETY={switch!r} is not auto, on, off or emulator; for example "
                        f"FLUX_UI_SAFETY=on with CONTENT_SAFETY_ENDPOINT={_ENDPOINT_EXAMPLE}")
        return SafetySettings()
    limits = _parse_max_severity(env.get("FLUX_UI_SAFETY_MAX_SEVERITY", ""), problems)
    blocklists = _parse_blocklists(env.get("FLUX_UI_SAFETY_BLOCKLISTS", ""), problems)
    fail_open = _fail_open(env.get("FLUX_UI_SAFETY_FAIL_OPEN", ""), problems)
    common = {"max_severity": limits, "blocklists": blocklists, "fail_open": fail_open}
    if switch == "off":
        return SafetySettings()
    if switch == "auto" and not endpoint_text:
        if key_text:
            problems.append("CONTENT_SAFETY_KEY is set but CONTENT_SAFETY_ENDPOINT is not, so nothing would be "
                            f"checked; for example CONTENT_SAFETY_ENDPOINT={_ENDPOINT_EXAMPLE}")
        return SafetySettings()
    if switch == "emulator":
        if endpoint_text:
            problems.append("FLUX_UI_SAFETY=emulator checks against the local emulator, but CONTENT_SAFETY_ENDPOINT "
                            "is set too; drop one, for example FLUX_UI_SAFETY=auto to use the endpoint")
        elif not uses_emulator:
            problems.append("FLUX_UI_SAFETY=emulator needs flux-ui itself on the local emulator, which runs only "
                            "without AZURE_ENDPOINT (or with FLUX_EMULATOR=on); with Foundry, set "
                            f"CONTENT_SAFETY_ENDPOINT instead, for example CONTENT_SAFETY_ENDPOINT={_ENDPOINT_EXAMPLE}")
        return SafetySettings("emulator", **common)  # type: ignore[arg-type]
    if not endpoint_text:
        problems.append("FLUX_UI_SAFETY=on needs CONTENT_SAFETY_ENDPOINT, the Content Safety resource's endpoint; "
                        f"for example CONTENT_SAFETY_ENDPOINT={_ENDPOINT_EXAMPLE}")
        return SafetySettings()
    endpoint = check_url("CONTENT_SAFETY_ENDPOINT", endpoint_text, _ENDPOINT_EXAMPLE, problems)
    return SafetySettings("service", endpoint, Secret(key_text) if key_text else None,
                          **common)  # type: ignore[arg-type]
