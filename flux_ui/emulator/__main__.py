"""``python -m flux_ui.emulator``: run the emulator on its own and print how to point flux-ui at it.

The printed lines are ``NAME=value`` so a shell or a test can read them; the key is printed
because pointing a client at the emulator is the whole purpose (it is a local, throwaway key).

Its control routes under ``/_emulator/`` answer any loopback caller, as documented, since the
developer who runs it drives it from their own scripts. On a machine shared with other users,
``--control-token`` makes them want a token too (generated and printed when none is given:
a token on the command line is visible to other users in the process list).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys
from collections.abc import Sequence

import uvicorn

from flux_ui.emulator.app import create_app
from flux_ui.emulator.config import EmulatorConfig, Fault
from flux_ui.emulator.control import CONTROL_TOKEN_HEADER
from flux_ui.emulator.runner import bind_socket, uvicorn_config
from flux_ui.hosts import is_loopback
from flux_ui.pacing import Quota
from flux_ui.registry import MODELS


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flux_ui.emulator",
        description="A local stand-in for the FLUX models on Microsoft Foundry (synthetic images).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (loopback unless --allow-remote)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one")
    parser.add_argument("--api-key", default=None, help="the key clients must send; a random one when left out")
    parser.add_argument("--schnell-key", default=None, help="a separate key for /score (default: the same key)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="S",
                        help="answer each request S seconds after it arrives (rendering included)")
    parser.add_argument("--polling", action="store_true", help="answer the BFL route BFL-natively (id + polling_url)")
    parser.add_argument("--no-retry-after", action="store_true", help="send 429s without Retry-After headers")
    parser.add_argument("--url-results", action="store_true", help="Image API answers carry url instead of b64_json")
    parser.add_argument("--no-quotas", action="store_true", help="do not enforce the deployments' quotas")
    parser.add_argument("--quota", action="append", default=[], metavar="MODEL=N/Ss",
                        help="enforce N requests per S seconds on MODEL's deployment (repeatable), e.g. "
                             "FLUX.2-pro=6/2s; the others keep their default tier's quota")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    parser.add_argument("--control-token", nargs="?", const="", default=None, metavar="TOKEN",
                        help=f"require TOKEN in the {CONTROL_TOKEN_HEADER} header on the /_emulator/ control routes "
                             "(request log, faults, key rotation...); with no TOKEN a random one is generated and "
                             "printed as EMULATOR_CONTROL_TOKEN=. Without this option the control routes answer "
                             "any loopback caller, which on a shared machine means any local user")
    return parser.parse_args(argv)


def parse_quotas(items: Sequence[str]) -> dict[str, Quota]:
    """``MODEL=N/Ss`` items as quotas by model ID; ValueError naming the item and the form otherwise."""
    quotas: dict[str, Quota] = {}
    for item in items:
        model, _, text = item.partition("=")
        match = re.fullmatch(r"(\d+)/(\d+(?:\.\d+)?)s", text.strip())
        if model.strip() not in MODELS or match is None or int(match[1]) < 1 or float(match[2]) <= 0:
            raise ValueError(f"--quota {item!r} is not MODEL=N/Ss with MODEL one of {', '.join(MODELS)}; "
                             "for example --quota FLUX.2-pro=6/2s")
        quotas[model.strip()] = Quota(int(match[1]), float(match[2]))
    return quotas


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator the command line describes; controls stay open unless --control-token."""
    return EmulatorConfig(
        api_key=args.api_key or secrets.token_urlsafe(24),
        schnell_key=args.schnell_key,
        host=args.host,
        port=args.port,
        bfl_style="polling" if args.polling else "sync",
        retry_after_header=not args.no_retry_after,
        image_api_result="url" if args.url_results else "b64_json",
        enforce_quotas=not args.no_quotas,
        quotas=parse_quotas(args.quota),
        faults={"*": [Fault("latency", seconds=args.latency)]} if args.latency > 0 else {},
        control_token=args.control_token or "",
        open_controls=args.control_token is None,
    )


def print_settings(config: EmulatorConfig, base: str) -> None:
    """``NAME=value`` lines, then a comment once it serves (what scripts wait for)."""
    print(f"AZURE_ENDPOINT={base}")
    print(f"AZURE_API_KEY={config.api_key}")
    print(f"FLUX_SCHNELL_ENDPOINT={base}/score")
    print(f"FLUX_SCHNELL_KEY={config.schnell_key or config.api_key}")
    if not config.open_controls:
        print(f"EMULATOR_CONTROL_TOKEN={config.control_token}")
    print("# flux-ui emulator serving synthetic images; Ctrl+C stops it.", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not is_loopback(args.host) and not args.allow_remote:
        print(f"refusing to listen on {args.host}: the emulator is for loopback use; "
              "add --allow-remote if you really mean it", file=sys.stderr)
        return 2
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        sock = bind_socket(config.host, config.port)
    except OSError as exc:
        print(f"cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    print_settings(config, base)
    server = uvicorn.Server(uvicorn_config(create_app(config)))
    try:
        asyncio.run(server.serve(sockets=[sock]))
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
