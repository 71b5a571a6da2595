"""State diagrams generated from the machines themselves, never edited by hand.

Mermaid (renders on GitHub) always; SVG when Graphviz's ``dot`` is installed
(``apt-get install graphviz``). A position's path, read from its trace, can be
drawn on top: the diagram and the trace tell the same story.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.commands.traces import read_traces, trace_file_of
from orchestrator.output.diagram import (
    MACHINES,
    PATH_COLOUR,
    VISITED_FILL,
    Step,
    has_dot,
    highlighted_mermaid,
    mermaid,
    svg,
)
from orchestrator.tracing import inspect

__all__ = ["MACHINES", "PATH_COLOUR", "VISITED_FILL", "Step", "has_dot", "mermaid", "svg"]

README_HEAD = """# State diagrams

Generated from `machines/` by `orchestrator diagrams`; do not edit by hand
(`orchestrator diagrams --check` fails CI when these differ from the machines).
The SVG files are written when Graphviz's `dot` is installed (`apt-get install
graphviz`). To see the path one position took, from its trace:
`orchestrator diagrams --position ID [--traces FILE]`.
"""


def render() -> dict[str, str]:
    """File name -> content of every text diagram, and the README that shows them."""
    files = {f"{name}.mmd": mermaid(name) for name in MACHINES}
    sections = [README_HEAD]
    for name, machine in MACHINES.items():
        doc = (machine.__doc__ or "").strip()
        sections.append(f"## {machine.__name__} (`{name}.mmd`)\n")
        if doc:
            sections.append(doc + "\n")
        sections.append(f"```mermaid\n{mermaid(name).rstrip()}\n```\n")
    files["README.md"] = "\n".join(sections)
    return files


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in render().items():
        path = directory / file_name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    if has_dot():
        for name in MACHINES:
            path = directory / f"{name}.svg"
            path.write_bytes(svg(name))
            written.append(path)
    return written


def stale(directory: Path) -> list[str]:
    """Text diagrams that are missing or differ from the machines. (The SVG is a
    rendering of the same graph and varies with the Graphviz version: not checked.)"""
    return [
        name
        for name, text in render().items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]


def main(args: argparse.Namespace) -> int:
    """``orchestrator diagrams``: write them, ``--check`` them, or one position's path."""
    if args.position is not None:
        spans = read_traces(trace_file_of(args))
        detail = inspect.position_detail(spans, args.position)
        steps = [(t.event, t.source, t.target) for t in detail.transitions]
        if args.svg:
            if not has_dot():
                print(
                    "error: --svg needs Graphviz's dot: apt-get install graphviz", file=sys.stderr
                )
                return 2
            args.svg.write_bytes(svg("position", steps))
            print(f"wrote {args.svg}")
        else:
            print(highlighted_mermaid("position", steps), end="")
        return 0
    if args.check:
        out_of_date = stale(args.out)
        for name in out_of_date:
            print(f"{args.out / name} differs from the machine: run `orchestrator diagrams`")
        return 1 if out_of_date else 0
    for path in write(args.out):
        print(f"wrote {path}")
    if not has_dot():
        print("no SVG: Graphviz's dot is not installed (apt-get install graphviz)")
    return 0
