"""How the app is exposed: loopback by default, and never public without a login.

The one exception is a Hugging Face Space that runs on the built-in emulator alone: every
request there goes to the emulator, so a stranger spends nobody's quota, and the page says so.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from flux_ui.assets import EXAMPLES, LOGO, SHORTCUTS, STYLE
from flux_ui.history import DB_NAME
from flux_ui.settings import Settings

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
MAX_UPLOAD = "50mb"  # per file; references are downscaled to 4 MP before sending anyway
#: SQLite's companions of the history index, which sit in the served outputs folder.
DB_SUFFIXES = ("", "-wal", "-shm", "-journal")


THEME = gr.themes.Soft(primary_hue="orange", secondary_hue="slate", neutral_hue="slate")
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860


@dataclass(frozen=True)
class Address:
    """Where the app listens, and whether that is a Hugging Face Space."""

    host: str
    port: int
    on_space: bool = False


def default_address(environ: Mapping[str, str] | None = None) -> Address:
    """Loopback:7860, except where Gradio's own variables say otherwise; a Space (``SPACE_ID``)
    expects the app on ``GRADIO_SERVER_NAME``/``GRADIO_SERVER_PORT``, 0.0.0.0:7860 if unset."""
    env = os.environ if environ is None else environ
    on_space = bool(env.get("SPACE_ID"))
    host = env.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if on_space else DEFAULT_HOST)
    port_text = env.get("GRADIO_SERVER_PORT", "")
    port = int(port_text) if port_text.isdigit() else DEFAULT_PORT
    return Address(host, port, on_space)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def emulator_demo(host: str, settings: Settings, on_space: bool) -> bool:
    """A public demo without a login, allowed because it runs on the built-in emulator alone."""
    return on_space and settings.uses_emulator and not settings.logins and not is_loopback(host)


def exposure_problem(host: str, share: bool, settings: Settings, mcp: bool = False,
                     on_space: bool = False) -> str | None:
    """Why this launch would let strangers spend the owner's quota or read what the login guards, or None."""
    if emulator_demo(host, settings, on_space) and not share:
        return None
    if settings.logins:
        if mcp:
            # Gradio 6.31 mounts its MCP routes outside the login: the tool list answers anyone, and
            # tool calls fail for everyone, signed in or not.
            return ("--mcp cannot be combined with FLUX_UI_USERS: Gradio's MCP server does not check the login, so "
                    "its tool list would answer anyone and its tools would not work for your users either. "
                    "Drop --mcp and call the API with gradio_client and auth=(user, password), or run --mcp "
                    "on the default 127.0.0.1 without FLUX_UI_USERS.")
        return None
    if share:
        return ("--share publishes flux-ui on a public link, and anyone with the link could spend your quota. "
                "Set FLUX_UI_USERS=user:long-passphrase first (see the README).")
    if not is_loopback(host):
        if on_space:
            return ("this Space would serve your Foundry endpoint to anyone who opens it. Add FLUX_UI_USERS "
                    "(user:long-passphrase) to the Space's secrets, or leave AZURE_ENDPOINT out to run the "
                    "demo on the built-in emulator, which spends nobody's quota.")
        return (f"--host {host} makes flux-ui reachable from other machines, and anyone who can reach it could "
                "spend your quota. Set FLUX_UI_USERS=user:long-passphrase first, or keep the default 127.0.0.1.")
    return None


def never_served(settings: Settings) -> list[str]:
    """Files Gradio must not serve even inside an allowed folder: the history index (its images are
    served one by one) and the .env holding the key, in case the outputs folder is the app's own."""
    database = settings.output_dir.resolve() / DB_NAME
    return [str(Path(".env").resolve()), *(f"{database}{suffix}" for suffix in DB_SUFFIXES)]


def login_check(settings: Settings) -> Callable[[str, str], bool]:
    """Gradio's ``auth`` callable: passwords compared in constant time, and an unknown user
    costs the same comparison, so timing tells neither the password nor who has an account."""
    accounts = {user.encode(): password.reveal().encode() for user, password in settings.logins}
    decoy = os.urandom(32)

    def check(user: str, password: str) -> bool:
        known = accounts.get(user.encode())
        matched = hmac.compare_digest(known if known is not None else decoy, password.encode())
        return matched and known is not None

    return check


def page_options() -> dict[str, Any]:
    """The page's look, from ``assets/``: theme, stylesheet, keyboard shortcuts and icon."""
    return {"theme": THEME, "css_paths": [STYLE], "head": f"<script>\n{SHORTCUTS.read_text()}</script>",
            "favicon_path": LOGO}


def launch_options(settings: Settings, host: str, port: int, share: bool, mcp: bool) -> dict[str, Any]:
    """Keyword arguments for ``Blocks.launch``: where to listen, what Gradio may serve, the login, the page."""
    options: dict[str, Any] = {
        "server_name": host,
        "server_port": port,
        "share": share,
        "max_file_size": MAX_UPLOAD,
        # The example photos are public files the examples hand to the page.
        "allowed_paths": [str(settings.output_dir.resolve()), str(EXAMPLES)],
        "blocked_paths": never_served(settings),
        "footer_links": ["api", "settings"],
        "mcp_server": mcp,
        **page_options(),
    }
    if settings.logins:
        options["auth"] = login_check(settings)
        options["auth_message"] = "flux-ui: sign in with an account from FLUX_UI_USERS."
    return options
