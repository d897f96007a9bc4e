"""flux-ui: python app.py [--host H] [--port P] [--share] [--mcp]

With no Azure configuration it starts the local emulator and runs on it.
"""

from __future__ import annotations

import argparse
import sys

from flux_ui.secrets import install_log_redaction
from flux_ui.settings import SettingsError, load_settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A browser playground for FLUX on Microsoft Foundry.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    parser.add_argument("--share", action="store_true", help="also publish a public Gradio link (needs a login)")
    parser.add_argument("--mcp", action="store_true", help="also serve the API as MCP tools")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_log_redaction()
    try:
        settings = load_settings()
    except SettingsError as err:
        print(err, file=sys.stderr)
        return 2
    from flux_ui.ui.launch import exposure_problem, launch_options

    if problem := exposure_problem(args.host, args.share, settings, args.mcp):
        print(f"flux-ui will not start: {problem}", file=sys.stderr)
        return 2
    from flux_ui.runtime import start_runtime
    from flux_ui.ui import CSS, HEAD, THEME, build_demo

    runtime = start_runtime(settings)
    demo = build_demo(runtime)
    try:
        demo.queue(default_concurrency_limit=32, max_size=256).launch(
            theme=THEME, css=CSS, head=HEAD, **launch_options(runtime.settings, args.host, args.port, args.share,
                                                              args.mcp))
    finally:
        runtime.close_sync()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
