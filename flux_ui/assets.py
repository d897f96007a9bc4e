"""Where the files the page loads live: the repository's ``assets/`` folder.

One home for these paths, so the page, the launch options (which must let Gradio serve the
example photos) and the tests agree, whatever folder the app is started from.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
EXAMPLES = ASSETS / "examples"
STYLE = ASSETS / "style.css"
SHORTCUTS = ASSETS / "shortcuts.js"
#: Every stylesheet and script the page loads, each concern in a file of its own, in name order.
STYLESHEETS = tuple(sorted(ASSETS.glob("*.css")))
SCRIPTS = tuple(sorted(ASSETS.glob("*.js")))
LOGO = ASSETS / "logo.svg"


def example_photo(name: str) -> Path:
    """One of the example photos (see ``assets/README.md`` for their licences)."""
    path = EXAMPLES / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the example photos ship in assets/examples/")
    return path
