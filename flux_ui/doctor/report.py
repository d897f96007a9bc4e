"""The doctor's findings and how they are written out: plain text to paste into a GitHub issue, or JSON.

A report is sections of checks; each check passed (✓), failed (✗, with what to do) or only says
something (·). Everything leaves through :func:`flux_ui.secrets.redact`, string by string, so a
key or token that reached a finding (a service error that echoes a header) is masked in the text
and in the JSON alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from flux_ui.secrets import redact

Status = Literal["pass", "fail", "info"]
MARKS: Mapping[Status, str] = {"pass": "✓", "fail": "✗", "info": "·"}


@dataclass
class Check:
    """One finding. ``fix`` says what to do about a failed one; ``notes`` are the lines shown under it
    and ``facts`` the same findings for ``--json``."""

    status: Status
    label: str
    fix: str = ""
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Section:
    title: str
    checks: list[Check] = field(default_factory=list)

    def add(self, status: Status, label: str, fix: str = "", notes: list[str] | None = None,
            facts: dict[str, Any] | None = None) -> Check:
        check = Check(status, label, fix, list(notes or ()), dict(facts or {}))
        self.checks.append(check)
        return check


@dataclass
class Report:
    """What the doctor found, in the order it looked."""

    environment: dict[str, str]
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str) -> Section:
        found = Section(title)
        self.sections.append(found)
        return found

    @property
    def checks(self) -> list[Check]:
        return [c for s in self.sections for c in s.checks if c.status != "info"]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        total, failed = len(self.checks), len(self.failures)
        if not failed:
            return f"Result: ✓ all {total} checks passed"
        return f"Result: ✗ {failed} of {total} checks failed (each ✗ above says what to do)"


def render_text(report: Report) -> str:
    """The report as plain text: a header naming the versions, then each section's checks."""
    env = report.environment
    lines = ["flux-ui doctor report", " · ".join(f"{k} {v}" for k, v in env.items()), ""]
    for section in report.sections:
        lines.append(section.title)
        for check in section.checks:
            lines.append(f"  {MARKS[check.status]} {check.label}")
            lines.extend(f"      {note}" for note in check.notes)
            if check.fix:
                lines.append(f"      fix: {check.fix}")
        lines.append("")
    lines.append(report.summary())
    return redact("\n".join(lines)) + "\n"


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    return value


def render_json(report: Report) -> str:
    """The report as JSON: ``ok``, the environment, and each section's checks with their facts."""
    data = {"ok": report.ok, "summary": report.summary(), "environment": report.environment,
            "sections": [asdict(s) for s in report.sections]}
    return json.dumps(_scrubbed(data), ensure_ascii=False, indent=2, default=str) + "\n"
