"""What Content Safety said about a prompt or an image, and whether flux-ui lets it through.

A verdict keeps every category's severity and every blocklist hit, so the quarantine and an audit
can show all of it; :attr:`Verdict.blocked` judges them against the instance's limits
(``FLUX_UI_SAFETY_MAX_SEVERITY``: the highest severity let through) and :meth:`Verdict.message`
says in words which category blocked it, and what that cost. A prompt checked in several parts
(over the API's 10,000 characters) is one verdict: each category's highest severity, every hit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from flux_ui.errors import billing_sentence
from flux_ui.settings_safety import CATEGORIES, DEFAULT_MAX_SEVERITY

Target = Literal["prompt", "image"]
_LEVELS = {0: "safe", 2: "low", 4: "medium", 6: "high"}
_SHOWN = {"SelfHarm": "Self-harm"}


@dataclass(frozen=True)
class CategoryScore:
    category: str  # as the API spells it: Hate, SelfHarm, Sexual, Violence
    severity: int

    def words(self, limit: int) -> str:
        level = _LEVELS.get(self.severity - self.severity % 2, "high")
        return (f"{_SHOWN.get(self.category, self.category)} ({level}: severity {self.severity}, over this "
                f"instance's limit of {limit})")


@dataclass(frozen=True)
class BlocklistHit:
    blocklist: str
    item_id: str
    text: str  # the owner's term: kept in the verdict for the owner, never put in a person's message


@dataclass(frozen=True)
class Analysis:
    """One answer of text:analyze or image:analyze, read."""

    categories: tuple[CategoryScore, ...]
    blocklist_hits: tuple[BlocklistHit, ...] = ()


def read_analysis(body: Any) -> Analysis:
    """The answer's ``categoriesAnalysis`` and ``blocklistsMatch``; ValueError for any other shape."""
    if not isinstance(body, dict) or not isinstance(body.get("categoriesAnalysis"), list):
        raise ValueError("the answer has no categoriesAnalysis list")
    scores = []
    for item in body["categoriesAnalysis"]:
        severity = item.get("severity", 0) if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(item.get("category"), str) or not isinstance(
                severity, int) or isinstance(severity, bool) or severity < 0:
            raise ValueError(f"a categoriesAnalysis item is not a category with a severity: {str(item)[:100]}")
        scores.append(CategoryScore(item["category"], severity))
    hits = []
    for item in body.get("blocklistsMatch") or []:
        if not isinstance(item, dict) or not isinstance(item.get("blocklistName"), str):
            raise ValueError(f"a blocklistsMatch item names no blocklist: {str(item)[:100]}")
        hits.append(BlocklistHit(item["blocklistName"], str(item.get("blocklistItemId", "")),
                                 str(item.get("blocklistItemText", ""))))
    return Analysis(tuple(scores), tuple(hits))


def merge(analyses: Iterable[Analysis]) -> Analysis:
    """Several parts' answers as one: each category at its highest severity, every distinct hit."""
    worst: dict[str, int] = {}
    hits: list[BlocklistHit] = []
    for analysis in analyses:
        for score in analysis.categories:
            worst[score.category] = max(worst.get(score.category, 0), score.severity)
        hits += [hit for hit in analysis.blocklist_hits if hit not in hits]
    order = [c for c in CATEGORIES if c in worst] + sorted(c for c in worst if c not in CATEGORIES)
    return Analysis(tuple(CategoryScore(c, worst[c]) for c in order), tuple(hits))


@dataclass(frozen=True)
class Verdict:
    """Content Safety's answer about one prompt or image, judged against the limits.

    ``checked`` False: no answer came (``error`` says why) and the settings let it through anyway.
    """

    target: Target
    categories: tuple[CategoryScore, ...] = ()
    blocklist_hits: tuple[BlocklistHit, ...] = ()
    limits: Mapping[str, int] = field(default_factory=dict)
    checked: bool = True
    error: str | None = None
    parts: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "limits", MappingProxyType(dict(self.limits)))

    @classmethod
    def of(cls, target: Target, analysis: Analysis, limits: Mapping[str, int], parts: int = 1) -> Verdict:
        return cls(target, analysis.categories, analysis.blocklist_hits, limits, parts=parts)

    @classmethod
    def unchecked(cls, target: Target, error: str, limits: Mapping[str, int]) -> Verdict:
        return cls(target, limits=limits, checked=False, error=error)

    def limit(self, category: str) -> int:
        return self.limits.get(category, DEFAULT_MAX_SEVERITY)

    @property
    def over(self) -> tuple[CategoryScore, ...]:
        """The categories over their limit, the most severe first."""
        found = [s for s in self.categories if s.severity > self.limit(s.category)]
        return tuple(sorted(found, key=lambda s: -s.severity))

    @property
    def blocked(self) -> bool:
        return bool(self.over or self.blocklist_hits)

    @property
    def blocked_by(self) -> tuple[str, ...]:
        """What blocked it, as the API names it: categories, then ``blocklist:<name>``."""
        lists = dict.fromkeys(f"blocklist:{hit.blocklist}" for hit in self.blocklist_hits)
        return (*(s.category for s in self.over), *lists)

    def reason(self) -> str:
        """Which category (or blocklist) blocked it, in words; empty when nothing did."""
        said = [s.words(self.limit(s.category)) for s in self.over]
        names = list(dict.fromkeys(hit.blocklist for hit in self.blocklist_hits))
        if names:
            said.append(f"a term on the blocklist{'s' if len(names) > 1 else ''} {', '.join(names)}")
        return " and ".join(said)

    def message(self) -> str:
        """For the person: what blocked it, what happened to it, and what it cost."""
        if not self.blocked:
            return ""
        if self.target == "prompt":
            return (f"Content Safety flagged this prompt for {self.reason()}, so flux-ui did not send it. "
                    f"{billing_sentence(False, 'no')} Rephrase the prompt and try again.")
        return (f"Content Safety flagged the result for {self.reason()}, so flux-ui does not show it. The image "
                "was made, so it is billed; it is kept for this instance's owner, not in History. Try another "
                "prompt or seed.")

    def to_json(self) -> dict[str, Any]:
        """Everything the verdict holds, for the quarantine's JSON file and an audit."""
        return {
            "target": self.target,
            "checked": self.checked,
            "blocked": self.blocked,
            "blocked_by": list(self.blocked_by),
            "categories": {s.category: s.severity for s in self.categories},
            "limits": dict(self.limits),
            "blocklist_hits": [{"blocklist": h.blocklist, "item_id": h.item_id, "text": h.text}
                               for h in self.blocklist_hits],
            "parts": self.parts,
            "error": self.error,
        }
