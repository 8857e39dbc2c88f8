"""`python -m bench [--quick] [--only NAME]`: runs the benchmark modules in one process, one run."""

from __future__ import annotations

import argparse
import asyncio
import importlib

# name -> module with `async def run(quick: bool) -> None`; other parts add theirs here.
BENCHMARKS = {"edge": "bench.edge", "gateway": "bench.gateway", "webhooks": "bench.webhooks"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), help="run one benchmark")
    args = parser.parse_args()
    names = [args.only] if args.only else list(BENCHMARKS)
    for name in names:
        try:
            module = importlib.import_module(BENCHMARKS[name])
        except ModuleNotFoundError as missing:
            if missing.name != BENCHMARKS[name]:
                raise
            print(f"[{name}] not available yet")
            continue
        print(f"\n== {name} ==")
        asyncio.run(module.run(args.quick))


if __name__ == "__main__":
    main()
