"""The ``orchestrator`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator import diagrams
from orchestrator.config import ConfigError, load_config


def _demo(args: argparse.Namespace) -> int:
    from orchestrator.demo import main as demo

    demo(load_config(args.config), sys.stdout)
    return 0


def _diagrams(args: argparse.Namespace) -> int:
    if args.check:
        stale = diagrams.stale(args.out)
        for name in stale:
            print(f"{args.out / name} differs from the machine: run `orchestrator diagrams`")
        return 1 if stale else 0
    for path in diagrams.write(args.out):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator", description="Delta-neutral funding-rate arbitrage orchestrator."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="open and close one paper position on stub prices")
    demo.add_argument("config", nargs="?", type=Path, default=Path("config.yaml"))
    demo.set_defaults(handler=_demo)

    diag = commands.add_parser("diagrams", help="write the state diagrams from the machines")
    diag.add_argument("--out", type=Path, default=Path("diagrams"))
    diag.add_argument("--check", action="store_true", help="exit 1 if the files are out of date")
    diag.set_defaults(handler=_diagrams)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
