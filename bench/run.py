"""Run the benchmarks and print a markdown table: ``python -m bench.run [--quick] [--only NAME ...]``.

Each scenario starts its own emulator on loopback and measures its own baseline, so the
scenarios can run in any order or alone. ``--quick`` shrinks every scenario to a second or
two (what the smoke test runs); its numbers show that the code works, not how fast it is.

The exit status is 1 when a judged row misses its target. In a full run every target is
judged. In quick mode only correctness checks are (nothing failed, no 429, every image
arrived, within the input limit: ``Row.size_dependent`` False); targets that only mean
something at full size (ratios, shares, stalls, growth) report their numbers as "not judged
(quick)", so a quick run exits 0 when every scenario ran and every check held.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable, Sequence

from bench import (
    big_references,
    burst_load,
    fair_share,
    fanout,
    grid,
    load,
    overhead,
    pacing,
    references,
    replicas,
    shared_backends,
    sheet,
    startup,
)
from bench.common import Row, table

SCENARIOS: dict[str, Callable[[bool], list[Row]]] = {
    "overhead": overhead.run,
    "fanout": fanout.run,
    "pacing": pacing.run,
    "burst_load": burst_load.run,
    "references": references.run,
    "big_references": big_references.run,
    "load": load.run,
    "startup": startup.run,
    "sheet": sheet.run,
    "grid": grid.run,
    "fair_share": fair_share.run,
    "replicas": replicas.run,
    "shared_backends": shared_backends.run,
}


def run(names: Sequence[str], quick: bool) -> list[Row]:
    """The rows of these scenarios, in quick mode with size-dependent targets left unjudged."""
    rows: list[Row] = []
    for name in names:
        start = time.perf_counter()
        found = SCENARIOS[name](quick)
        rows.extend([row.in_quick_mode() for row in found] if quick else found)
        print(f"# {name}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and repetitions (smoke run)")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), metavar="NAME",
                        help=f"run only these scenarios ({', '.join(SCENARIOS)})")
    args = parser.parse_args(argv)
    rows = run(args.only or list(SCENARIOS), args.quick)
    print(f"Python {platform.python_version()}, {platform.machine()}, {time.strftime('%Y-%m-%d %H:%M %Z')}"
          f"{', quick mode' if args.quick else ''}\n")
    print(table(rows))
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
