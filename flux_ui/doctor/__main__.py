"""``python -m flux_ui.doctor``: check a set-up and print a report that is safe to paste into an issue.

Exit status 0 when every check passed, 1 when one failed, 2 for a command-line mistake.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from flux_ui.doctor.report import render_json, render_text
from flux_ui.doctor.run import Options, diagnose
from flux_ui.registry import MODELS
from flux_ui.secrets import install_log_redaction

DESCRIPTION = """\
Check flux-ui's set-up and print a report you can paste into a GitHub issue.

It checks the configuration (the .env file and the environment, judged as the app judges them),
that each endpoint answers, that the key or Microsoft Entra ID token is accepted, and that each
configured deployment exists. That last check sends each route a request the service refuses
before it generates anything, so nothing is billed. With no Azure configuration flux-ui runs on
its local emulator: the doctor then starts one of its own and checks against it.

With content safety configured (CONTENT_SAFETY_ENDPOINT, or FLUX_UI_SAFETY=emulator) it also checks
that Content Safety answers and takes the key or Entra ID token, by asking it to analyse one
harmless word: one text record on the Content Safety resource's bill. Not configured, nothing is
sent there.

The report names versions, endpoints, deployment names and what the service answered; keys,
tokens and passwords never appear in it.
"""

EPILOG = """\
exit status: 0 when every check passed, 1 when at least one failed (each ✗ line says what to do),
2 for a mistake on the command line.

--generate sends one smallest image request per deployment and route through flux-ui's own
client (each an image Foundry bills; --model limits them), and reports what the service actually did where
the contract leaves it open: a synchronous image or a polled task, b64_json or url, Retry-After on
a 429, request_meta and its fields, and request_meta.cost as the raw figure (its unit is not
documented).
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m flux_ui.doctor", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generate", action="store_true",
                        help="also generate one smallest image per deployment and route (billed on Foundry)")
    parser.add_argument("--model", action="append", choices=list(MODELS), default=[], metavar="MODEL",
                        help=f"check only this model (repeat for more); one of {', '.join(MODELS)}")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    parser.add_argument("--env-file", default=".env", metavar="PATH",
                        help="the .env file to read under the environment (default: .env in this folder)")
    parser.add_argument("--timeout", type=float, default=20.0, metavar="S",
                        help="seconds to wait for each check's answer (default 20)")
    return parser.parse_args(argv)


def _progress(line: str) -> None:
    print(f"… {line}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    install_log_redaction()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would bury the report
    options = Options(generate=args.generate, models=tuple(args.model), dotenv_path=args.env_file,
                      timeout_s=args.timeout)
    report = asyncio.run(diagnose(options, _progress if sys.stderr.isatty() else lambda _: None))
    sys.stdout.write(render_json(report) if args.json else render_text(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
