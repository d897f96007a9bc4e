"""Saved styles and recent prompts, kept in the history database beside the images they made.

A style is a name, a prompt template holding ``{prompt}`` and parameters; applying one wraps the
person's prompt and fills the parameters the chosen model takes (the rest are left out, and said).
Styles travel as JSON (export, import). Recent prompts are remembered per tab, newest first.

Names compare without regard to case on both engines: SQLite's ``NOCASE``, and on PostgreSQL a
collation of that name (case-insensitive ICU) that :meth:`flux_ui.database.Database.schema` makes. A
recent prompt may be far longer than a PostgreSQL index entry takes, so that table has no key there:
a prompt is remembered again by deleting its old row and adding a new one, on both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flux_ui.client import check_text_size
from flux_ui.database import DB_NAME, Database, Tables
from flux_ui.errors import ValidationError
from flux_ui.registry import MODELS

SCHEMA = """
CREATE TABLE IF NOT EXISTS styles (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    template TEXT NOT NULL,
    params TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS recent_prompts (
    tab TEXT NOT NULL,
    prompt TEXT NOT NULL,
    used REAL NOT NULL{key}
);
CREATE INDEX IF NOT EXISTS recent_prompts_used ON recent_prompts (tab, used);
"""
#: recent_prompts' key: on SQLite as it has always been; on PostgreSQL (a btree entry holds ~2.7 kB) none.
_RECENT_KEY = {"sqlite": ",\n    PRIMARY KEY (tab, prompt)", "postgres": ""}
_UPSERT = ("INSERT INTO styles (name, template, params, updated) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
           "SET name = excluded.name, template = excluded.template, params = excluded.params, "
           "updated = excluded.updated")
PLACEHOLDER = "{prompt}"
MAX_NAME_CHARS = 60
MAX_STYLES = 500
RECENT_KEPT = 20
EXPORT_KIND = "flux-ui styles"


@dataclass(frozen=True)
class Style:
    """A name, a template holding ``{prompt}``, and parameters by the models' own names."""

    name: str
    template: str = PLACEHOLDER
    params: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, prompt: str, model: str | None = None) -> tuple[str, dict[str, Any], list[str]]:
        """The styled prompt, the parameters ``model`` takes (all of them without a model), and a note
        for each parameter left out because the model does not take it."""
        styled = self.template.replace(PLACEHOLDER, prompt)
        spec = MODELS.get(model) if model else None
        if spec is None:
            return styled, dict(self.params), []
        kept = {k: v for k, v in self.params.items() if spec.param(k) is not None}
        left = [f"{spec.display_name} takes no {k}; the style's {k} is left out." for k in self.params if k not in kept]
        return styled, kept, left


def check_style(name: Any, template: Any, params: Any) -> Style:
    """A style from what a person (or an imported file) gave, or a ValidationError naming the fix."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("A style needs a name, such as “Film noir”.", field="name")
    name = " ".join(name.split())
    if len(name) > MAX_NAME_CHARS:
        raise ValidationError(f"The style name is {len(name)} characters; keep it to {MAX_NAME_CHARS}.", field="name")
    if not isinstance(template, str) or PLACEHOLDER not in template:
        raise ValidationError(f"The template of “{name}” must contain {PLACEHOLDER} where your prompt goes, for "
                              f"example “{PLACEHOLDER}, film noir, high contrast”.", field="template")
    check_text_size("The style's template", template, "template")
    if not isinstance(params, Mapping):
        raise ValidationError(f"The parameters of “{name}” must be an object of names and values.", field="params")
    known = {p.name for spec in MODELS.values() for p in spec.params}
    for key, value in params.items():
        if key not in known or key == "seed":
            raise ValidationError(f"“{name}” sets {str(key)[:40]!r}, which no model takes as a style parameter; "
                                  f"use {', '.join(sorted(known - {'seed'}))}.", field="params")
        if not isinstance(value, str | int | float | bool) or (isinstance(value, str) and len(value) > 1000):
            raise ValidationError(f"“{name}” sets {key} to a value that is not a number, text or true/false.",
                                  field="params")
    return Style(name, template, dict(params))


class Library(Tables):
    """The styles and recent prompts in History's database (``database``, or the outputs folder's
    ``history.sqlite3``); thread-safe."""

    def __init__(self, folder: Path, database: Database | None = None) -> None:
        dialect = "sqlite" if database is None else database.dialect
        super().__init__(folder, SCHEMA.format(key=_RECENT_KEY[dialect]), database, DB_NAME)

    # --- styles ---------------------------------------------------------------------------------

    def save(self, style: Style) -> None:
        """Add a style, or replace the one of that name (names are case-insensitive)."""
        with self.database.write() as db:
            count = db.execute("SELECT COUNT(*) FROM styles WHERE name != ?", (style.name,)).fetchone()[0]
            if count >= MAX_STYLES:
                raise ValidationError(f"The library already holds {MAX_STYLES} styles; delete some first.")
            db.execute(_UPSERT, (style.name, style.template, json.dumps(dict(style.params)), time.time()))

    def delete(self, name: str) -> bool:
        with self.database.write() as db:
            return db.execute("DELETE FROM styles WHERE name = ?", (name,)).rowcount > 0

    def get(self, name: str) -> Style | None:
        with self.database.connect() as db:
            row = db.execute("SELECT name, template, params FROM styles WHERE name = ?", (name,)).fetchone()
        return Style(row[0], row[1], json.loads(row[2])) if row else None

    def styles(self) -> list[Style]:
        with self.database.connect() as db:
            rows = db.execute("SELECT name, template, params FROM styles ORDER BY name COLLATE NOCASE").fetchall()
        return [Style(name, template, json.loads(params)) for name, template, params in rows]

    def export_json(self) -> str:
        """Every style as one JSON document another flux-ui imports."""
        styles = [{"name": s.name, "template": s.template, "params": dict(s.params)} for s in self.styles()]
        return json.dumps({"kind": EXPORT_KIND, "version": 1, "styles": styles}, ensure_ascii=False, indent=2)

    def import_json(self, text: str) -> list[str]:
        """Add (or replace) the styles of an exported document; all or nothing. Returns their names."""
        try:
            doc = json.loads(text)
        except ValueError as err:
            raise ValidationError(f"The styles file is not JSON ({err.msg} at line {err.lineno}); export one from "
                                  "flux-ui's History tab to see the shape.") from None
        if not isinstance(doc, Mapping) or doc.get("kind") != EXPORT_KIND or not isinstance(doc.get("styles"), list):
            raise ValidationError(f'The file is not a flux-ui styles export: it needs "kind": "{EXPORT_KIND}" and '
                                  'a "styles" list of {"name", "template", "params"}.')
        styles = [_imported(item, i) for i, item in enumerate(doc["styles"], start=1)]
        with self.database.write() as db:
            db.executemany(_UPSERT, [(s.name, s.template, json.dumps(dict(s.params)), time.time()) for s in styles])
        return [s.name for s in styles]

    # --- recent prompts -------------------------------------------------------------------------

    def remember(self, tab: str, prompt: str) -> None:
        """Note a prompt a tab sent (the newest first; the oldest beyond RECENT_KEPT forgotten)."""
        if not prompt.strip():
            return
        with self.database.write() as db:
            db.execute("DELETE FROM recent_prompts WHERE tab = ? AND prompt = ?", (tab, prompt))
            db.execute("INSERT INTO recent_prompts (tab, prompt, used) VALUES (?, ?, ?)", (tab, prompt, time.time()))
            db.execute("DELETE FROM recent_prompts WHERE tab = ? AND prompt NOT IN (SELECT prompt FROM "
                       "recent_prompts WHERE tab = ? ORDER BY used DESC LIMIT ?)", (tab, tab, RECENT_KEPT))

    def recent(self, tab: str) -> list[str]:
        with self.database.connect() as db:
            rows = db.execute("SELECT prompt FROM recent_prompts WHERE tab = ? ORDER BY used DESC", (tab,)).fetchall()
        return [row[0] for row in rows]


def _imported(item: Any, index: int) -> Style:
    if not isinstance(item, Mapping):
        raise ValidationError(f"Style {index} in the file is not an object of name, template and params.")
    try:
        return check_style(item.get("name"), item.get("template"), item.get("params", {}))
    except ValidationError as err:
        raise ValidationError(f"Style {index} in the file: {err}", field=err.field) from None
