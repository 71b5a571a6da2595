"""``orchestrator schema``: the JSON Schema of config.yaml, printed or written."""

from __future__ import annotations

import argparse
import json

from orchestrator.config import config_schema, write_schema


def main(args: argparse.Namespace) -> int:
    """``orchestrator schema [--write FILE]``."""
    if args.write:
        write_schema(args.write)
        print(f"wrote {args.write}")
    else:
        print(json.dumps(config_schema(), indent=2))
    return 0
