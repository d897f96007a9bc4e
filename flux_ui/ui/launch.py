"""How the app is exposed: loopback by default, and never public without a login.

The one exception is a Hugging Face Space that runs on the built-in emulator alone: every
request there goes to the emulator, so a stranger spends nobody's quota, and the page says so.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import HTTPException

from flux_ui import tally
from flux_ui.assets import LOGO, SCRIPTS, STYLESHEETS
from flux_ui.history import DB_NAME
from flux_ui.hosts import is_loopback
from flux_ui.settings import Settings
from flux_ui.ui.edge import CLIENT, SCOPE_KEY, client_address, edge_app_kwargs
from flux_ui.ui.guard import Limits, LoginGuard, lock_message
from flux_ui.ui.workarounds import hide_api_info_from_strangers

__all__ = ["CLIENT", "SCOPE_KEY", "client_address"]  # the edge's, which the sign-in throttle reads

MAX_UPLOAD = "50mb"  # per file; references are downscaled to 4 MP before sending anyway
#: SQLite's companions of the history index, which sit in the served outputs folder.
DB_SUFFIXES = ("", "-wal", "-shm", "-journal")


THEME = gr.themes.Soft(primary_hue="orange", secondary_hue="slate", neutral_hue="slate")
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860
#: The sign-in throttle's limits (tests shrink them).
LOGIN_LIMITS = Limits()
#: Gradio's login form shows "Incorrect credentials" on a 400 and nothing at all on any other
#: refusal; on a 429 this reloads the page, which then names the time sign-in resumes.
RELOAD_ON_LOCK = """<script>(() => {
  const send = window.fetch;
  window.fetch = async (...args) => {
    const response = await send(...args);
    const target = args[0] instanceof Request ? args[0].url : String(args[0]);
    const path = new URL(target, location.href).pathname.split("/").filter(Boolean);
    if (response.status === 429 && path.pop() === "login") location.reload();
    return response;
  };
})();</script>"""


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
    """Files Gradio must not serve even inside an allowed folder: the history index and the tally
    (flux-ui's edge serves only the images it wrote there anyway) and the .env holding the key."""
    folder = settings.output_dir.resolve()
    databases = (folder / DB_NAME, folder / tally.DB_NAME)
    return [str(Path(".env").resolve()), *(f"{db}{suffix}" for db in databases for suffix in DB_SUFFIXES)]


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


def guarded_login(check: Callable[[str, str], bool], guard: LoginGuard,
                  wall: Callable[[], float] = time.time) -> Callable[[str, str], Awaitable[bool]]:
    """Gradio's ``auth`` as a coroutine (which Gradio awaits): throttled per address and account.
    The delay is an ``asyncio.sleep`` in this request alone, so nobody else's sign-in waits for it;
    a locked caller gets a 429 with ``Retry-After`` before the password is even compared."""

    async def login(user: str, password: str) -> bool:
        verdict = guard.admit(CLIENT.get(), user)
        if verdict.ticket is None:
            raise HTTPException(status_code=429, detail=lock_message(verdict.retry_after_s, wall()),
                                headers={"Retry-After": str(verdict.retry_after_s)})
        if verdict.delay_s:
            await asyncio.sleep(verdict.delay_s)
        matched = check(user, password)
        guard.settle(verdict.ticket, matched)
        return matched

    return login


def login_page_context(request: Any, context: dict[str, Any], wall: Callable[[], float] = time.time) -> dict[str, Any]:
    """The login page's template context: the reload on a lockout, and while the caller's address is
    locked out, a message saying when sign-in resumes in place of the usual one (the page loses its API
    description in workarounds.hide_api_info_from_strangers, which calls this)."""
    config = {**context["config"], "head": RELOAD_ON_LOCK}
    guard, address = getattr(request, "scope", {}).get(SCOPE_KEY, (None, ""))
    if isinstance(guard, LoginGuard) and (wait := guard.locked_for(address)):
        config["auth_message"] = lock_message(wait, wall())
    return {**context, "config": config}


def page_options() -> dict[str, Any]:
    """The page's look, from ``assets/``: theme, stylesheet, keyboard shortcuts and icon."""
    head = "".join(f"<script>\n{script.read_text()}</script>" for script in SCRIPTS)
    return {"theme": THEME, "css_paths": list(STYLESHEETS), "head": head, "favicon_path": LOGO}


def launch_options(settings: Settings, host: str, port: int, share: bool, mcp: bool,
                   environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``Blocks.launch``: where to listen, what Gradio may serve, the login
    (throttled), the page, and the web edge (flux_ui/ui/edge.py: framing, files, uploads, streams)."""
    on_space = bool((os.environ if environ is None else environ).get("SPACE_ID"))
    guard = LoginGuard((user for user, _ in settings.logins), LOGIN_LIMITS) if settings.logins else None
    options: dict[str, Any] = {
        "server_name": host,
        "server_port": port,
        "share": share,
        "max_file_size": MAX_UPLOAD,
        "allowed_paths": [str(settings.output_dir.resolve())],
        "blocked_paths": never_served(settings),
        "footer_links": ["api", "settings"],
        "mcp_server": mcp,
        "app_kwargs": edge_app_kwargs(settings.output_dir, guard, on_space),
        **page_options(),
    }
    if guard is not None:
        hide_api_info_from_strangers(login_page_context)
        options["auth"] = guarded_login(login_check(settings), guard)
        options["auth_message"] = "flux-ui: sign in with an account from FLUX_UI_USERS."
    return options
