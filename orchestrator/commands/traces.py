"""``orchestrator traces``: a run's positions, or one position's spans, from its trace
file (OTLP JSON lines)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from orchestrator.tracing import inspect, trace_file


def trace_file_of(args: argparse.Namespace) -> Path:
    """The trace file asked for, else the latest run's."""
    if args.file is not None:
        path: Path = args.file
        return path
    return trace_file.latest_trace_file(args.runs)


def read_traces(path: Path) -> list[trace_file.SpanRecord]:
    """The spans, each line that cannot be read said on stderr."""
    spans, problems = trace_file.read_spans(path)
    for problem in problems:
        print(f"warning: {path}: {problem}", file=sys.stderr)
    return spans


def main(args: argparse.Namespace) -> int:
    """``orchestrator traces [FILE] [--position ID] [--json] [--runs DIR]``."""
    path = trace_file_of(args)
    spans = read_traces(path)
    if args.position is not None:
        detail = inspect.position_detail(spans, args.position)
        if args.json:
            print(json.dumps(inspect.detail_json(detail), indent=2))
        else:
            print(inspect.format_detail(detail))
        return 0
    summaries = inspect.positions(spans)
    if args.json:
        print(json.dumps(inspect.positions_json(summaries), indent=2))
    else:
        print(f"{path}: {len(summaries)} positions")
        print(inspect.format_positions(summaries))
    return 0
