"""flux-ui: python app.py [--host H] [--port P] [--share] [--mcp]

With no Azure configuration it starts the local emulator and runs on it.
"""

from __future__ import annotations

import argparse
import sys

from flux_ui.secrets import install_log_redaction
from flux_ui.settings import Settings, SettingsError, load_settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from flux_ui.ui.launch import default_address

    where = default_address()
    parser = argparse.ArgumentParser(description="A browser playground for FLUX on Microsoft Foundry.")
    parser.add_argument("--host", default=where.host,
                        help=f"address to listen on (default {where.host}: loopback only, unless "
                             "GRADIO_SERVER_NAME or a Hugging Face Space says otherwise)")
    parser.add_argument("--port", type=int, default=where.port, help=f"port to listen on (default {where.port})")
    parser.add_argument("--share", action="store_true", help="also publish a public Gradio link (needs a login)")
    parser.add_argument("--mcp", action="store_true", help="also serve the API as MCP tools")
    args = parser.parse_args(argv)
    args.on_space = where.on_space
    return args


def startup_lines(settings: Settings, local_url: str, share_url: str | None, mcp: bool,
                  public: bool = False) -> list[str]:
    """What flux-ui prints once it listens, in place of Gradio's own hints (which suggest
    ``share=True``, a public link flux-ui only allows behind a login)."""
    service = "the local emulator (synthetic images)" if settings.uses_emulator else "your Foundry resource"
    lines = [f"flux-ui serves the playground on {local_url} (open it in a browser; none opens by itself), "
             f"on {service}."]
    if share_url:
        lines.append(f"Public link: {share_url} (behind the FLUX_UI_USERS login)")
    elif not settings.logins:
        lines.append("Only this machine can reach it. To share it, set FLUX_UI_USERS=user:long-passphrase "
                     "and use --share or --host 0.0.0.0.")
    if mcp:
        lines.append(f"MCP tools: {local_url.rstrip('/')}/gradio_api/mcp/")
    lines.append(safety_line(settings, public))
    lines += [f"Shared with the other replicas: {line}." for line in settings.shared.describe()]
    return lines


def safety_line(settings: Settings, public: bool) -> str:
    """Whether prompts and results are checked, and by which service (its host, never its key)."""
    from flux_ui.safety import service_text

    safety = settings.safety
    if not safety.enabled:
        hint = (" Foundry filters nothing for FLUX: for an instance other people use, set CONTENT_SAFETY_ENDPOINT "
                "(see the README)." if public else "")
        return f"Content safety: off.{hint}"
    outage = "let through unchecked" if safety.fails_open(public) else "refused"
    return (f"Content safety: on, prompts and results checked by {service_text(safety)}; while it cannot "
            f"answer, prompts and results are {outage} (FLUX_UI_SAFETY_FAIL_OPEN={safety.fail_open}).")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_log_redaction()
    try:
        settings = load_settings()
    except SettingsError as err:
        print(err, file=sys.stderr)
        return 2
    from flux_ui.ui.launch import emulator_demo, exposure_problem, launch_options

    if problem := exposure_problem(args.host, args.share, settings, args.mcp, args.on_space):
        print(f"flux-ui will not start: {problem}", file=sys.stderr)
        return 2
    from flux_ui.blob_store import BlobStoreError
    from flux_ui.database import DatabaseUnavailable
    from flux_ui.history import OutputsFolderError
    from flux_ui.runtime import start_runtime
    from flux_ui.safety import instance_is_public
    from flux_ui.ui import build_demo, launch_queued

    public = instance_is_public(settings, args.host, args.share, args.on_space)
    try:
        runtime = start_runtime(settings, public=public)
    except (OutputsFolderError, DatabaseUnavailable, BlobStoreError) as err:
        print(f"flux-ui will not start: {err}", file=sys.stderr)
        return 2
    demo = build_demo(runtime, public_demo=emulator_demo(args.host, settings, args.on_space))
    try:
        launch_queued(demo, quiet=True, prevent_thread_lock=True,
                      **launch_options(runtime.settings, args.host, args.port, args.share, args.mcp))
        for line in startup_lines(runtime.settings, demo.local_url or "", demo.share_url, args.mcp, public):
            print(line, flush=True)
        demo.block_thread()
    finally:
        runtime.close_sync()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
