"""README tables generated from the registry, the settings and the modules, so the docs cannot drift.

    python -m flux_ui.docs            # print the tables
    python -m flux_ui.docs --write    # refresh them in README.md between their markers
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from flux_ui.registry import MODELS, AspectRatioSize, ModelSpec, PixelSize
from flux_ui.settings import variables


def _size(spec: ModelSpec) -> str:
    s = spec.size
    if isinstance(s, AspectRatioSize):
        lo, hi = s.bounds_text
        return f"aspect ratio {lo} to {hi}, ~{s.megapixels:g} MP"
    assert isinstance(s, PixelSize)
    sides = f"{s.min_side}–{s.max_side}" if s.max_side else f"≥{s.min_side}"
    budget = f", ≤{s.max_pixels / 1_048_576:g} MP" if s.max_pixels else ""
    return f"{sides} px, multiples of {s.multiple}{budget}"


def _routes(spec: ModelSpec) -> str:
    names = {"bfl": f"BFL `{spec.bfl_path}`", "images/generations": "Image API generations",
             "images/edits": "Image API edits", "aml": "Azure ML endpoint"}
    return ", ".join(names[r.value] for r in spec.routes)


def models_table() -> str:
    rows = ["| Model | What it is for | Routes | References | Size | Parameters | Prompt | RPM tiers | Price hint |",
            "|---|---|---|---|---|---|---|---|---|"]
    for spec in MODELS.values():
        params = ", ".join(f"`{p.name}`" for p in spec.params)
        tiers = ", ".join(f"{k} {v}" for k, v in spec.rpm_tiers.items()) or "the endpoint's own"
        prompt = f"{spec.prompt.max_tokens:,} {spec.prompt.tokenizer} tokens"
        if spec.prompt.over_limit == "truncated":
            prompt += " (longer is truncated)"
        rows.append(
            f"| **{spec.display_name}** `{spec.id}` | {spec.summary} | {_routes(spec)} | "
            f"{spec.max_references or 'none'} | {_size(spec)} | {params} | {prompt} | {tiers} | {spec.price.note} |"
        )
    return "\n".join(rows)


def config_table() -> str:
    rows = ["| Variable | Default | Example | Meaning |", "|---|---|---|---|"]
    rows += [f"| `{name}` | {default} | `{example}` | {meaning} |" for name, default, example, meaning in variables()]
    return "\n".join(rows)


PACKAGE = Path(__file__).resolve().parent


def _purpose(path: Path) -> str:
    """A module's docstring, first paragraph: each module says once what it holds."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.split("\n\n", 1)[0].split())
    if not first:
        raise ValueError(f"{path} has no docstring: say in one sentence what the module holds")
    first = re.sub(r":\w+:`", "`", first).replace("``", "`")  # reStructuredText roles read as code
    return first.replace("|", "\\|")


def layout_table() -> str:
    """Every module of the package, with what it holds."""
    rows = ["| Module | What it holds |", "|---|---|"]
    for path in sorted(PACKAGE.rglob("*.py"), key=lambda p: p.relative_to(PACKAGE).parts):
        rows.append(f"| `{path.relative_to(PACKAGE.parent).as_posix()}` | {_purpose(path)} |")
    return "\n".join(rows)


TABLES = {"models": models_table, "config": config_table, "layout": layout_table}


def refresh(text: str) -> str:
    """The README text with every generated table replaced by its current version."""
    for name, render in TABLES.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"README has no <!-- {name}:start --> … <!-- {name}:end --> markers")
        text = pattern.sub(lambda m, r=render: m.group(1) + r() + "\n" + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if "--write" in argv:
        readme.write_text(refresh(readme.read_text()))
        print(f"refreshed the tables in {readme}")
    else:
        print(*(render() for render in TABLES.values()), sep="\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
