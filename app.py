"""flux-ui: python app.py [--host H] [--port P]

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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_log_redaction()
    try:
        settings = load_settings()
    except SettingsError as err:
        print(err, file=sys.stderr)
        return 2
    from flux_ui.runtime import start_runtime
    from flux_ui.ui import CSS, build_demo

    runtime = start_runtime(settings)
    demo = build_demo(runtime)
    try:
        demo.queue(default_concurrency_limit=16).launch(
            server_name=args.host, server_port=args.port, css=CSS,
            allowed_paths=[str(runtime.settings.output_dir.resolve())], max_file_size="50mb",
        )
    finally:
        runtime.close_sync()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
