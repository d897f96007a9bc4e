"""How the app is exposed: loopback by default, and never public without a login."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from flux_ui.history import DB_NAME
from flux_ui.settings import Settings

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
MAX_UPLOAD = "50mb"  # per file; references are downscaled to 4 MP before sending anyway
#: SQLite's companions of the history index, which sit in the served outputs folder.
DB_SUFFIXES = ("", "-wal", "-shm", "-journal")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, share: bool, settings: Settings, mcp: bool = False) -> str | None:
    """Why this launch would let strangers spend the owner's quota or read what the login guards, or None."""
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
        return (f"--host {host} makes flux-ui reachable from other machines, and anyone who can reach it could "
                "spend your quota. Set FLUX_UI_USERS=user:long-passphrase first, or keep the default 127.0.0.1.")
    return None


def never_served(settings: Settings) -> list[str]:
    """Files Gradio must not serve even inside an allowed folder: the history index (its images are
    served one by one) and the .env holding the key, in case the outputs folder is the app's own."""
    database = settings.output_dir.resolve() / DB_NAME
    return [str(Path(".env").resolve()), *(f"{database}{suffix}" for suffix in DB_SUFFIXES)]


def launch_options(settings: Settings, host: str, port: int, share: bool, mcp: bool) -> dict[str, Any]:
    """Keyword arguments for ``Blocks.launch``."""
    options: dict[str, Any] = {
        "server_name": host,
        "server_port": port,
        "share": share,
        "max_file_size": MAX_UPLOAD,
        "allowed_paths": [str(settings.output_dir.resolve())],
        "blocked_paths": never_served(settings),
        "footer_links": ["api", "settings"],
        "mcp_server": mcp,
    }
    if settings.logins:
        accounts = {user: password for user, password in settings.logins}
        options["auth"] = lambda user, password: user in accounts and accounts[user].reveal() == password
        options["auth_message"] = "flux-ui: sign in with an account from FLUX_UI_USERS."
    return options
