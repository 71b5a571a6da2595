"""State diagrams generated from the machines themselves, never edited by hand.

Mermaid (renders on GitHub) always; SVG when Graphviz's ``dot`` is installed
(``apt-get install graphviz``). A position's path, read from its trace, can be
drawn on top: the diagram and the trace tell the same story.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from statemachine.contrib.diagram import DotGraphMachine

from machines import PositionMachine
from orchestrator.commands.traces import read_traces, trace_file_of
from orchestrator.tracing import inspect

MACHINES: dict[str, Any] = {"position": PositionMachine}
Step = tuple[str, str, str]  # (event, from state, to state)
PATH_COLOUR = "#2e7d32"
VISITED_FILL = "#c8e6c9"

README_HEAD = """# State diagrams

Generated from `machines/` by `orchestrator diagrams`; do not edit by hand
(`orchestrator diagrams --check` fails CI when these differ from the machines).
The SVG files are written when Graphviz's `dot` is installed (`apt-get install
graphviz`). To see the path one position took, from its trace:
`orchestrator diagrams --position ID [--traces FILE]`.
"""


def mermaid(name: str) -> str:
    return format(MACHINES[name], "mermaid")


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


def has_dot() -> bool:
    return shutil.which("dot") is not None


def svg(name: str, steps: Sequence[Step] = ()) -> bytes:
    graph = DotGraphMachine(MACHINES[name])()  # type: ignore[no-untyped-call]
    if steps:
        _highlight_dot(graph, name, steps)
    result: bytes = graph.create_svg()
    return result


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


def highlighted_mermaid(name: str, steps: Sequence[Step]) -> str:
    """The machine's Mermaid with the states a position visited filled in, and its
    path as a note on the state it ended in. (State diagrams take class styles for
    states; Mermaid offers no style for their transitions.)"""
    lines = [mermaid(name).rstrip("\n")]
    visited = sorted({s for _, source, target in steps for s in (source, target)})
    lines.append(f"    classDef visited fill:{VISITED_FILL},stroke:{PATH_COLOUR},stroke-width:2px")
    if steps:
        lines.append(f"    class {','.join(visited)} visited")
        path = " → ".join([steps[0][1], *(f"{target}" for _, _, target in steps)])
        lines.append(f"    note right of {steps[-1][2]} : {path}")
    return "\n".join(lines) + "\n"


def _title(name: str, event: str) -> str:
    """The event's label as the diagrams print it (``send_legs`` -> ``Send legs``)."""
    for e in MACHINES[name].events:
        if e.id == event:
            return str(e.name)
    return event


def _highlight_dot(graph: Any, name: str, steps: Sequence[Step]) -> None:
    visited = {s for _, source, target in steps for s in (source, target)}
    taken = {(source, target, _title(name, event)) for event, source, target in steps}
    for g in [graph, *_subgraphs(graph)]:
        for node in g.get_nodes():
            if node.get_name().strip('"') in visited:
                node.set("style", "rounded,filled")
                node.set("fillcolor", VISITED_FILL)
                node.set("color", PATH_COLOUR)
        for edge in g.get_edges():
            ends = (str(edge.get_source()).strip('"'), str(edge.get_destination()).strip('"'))
            label = str(edge.get("label") or "")
            if any((s, t) == ends and f">{title}<" in label for s, t, title in taken):
                edge.set("color", PATH_COLOUR)
                edge.set("penwidth", "3")


def _subgraphs(graph: Any) -> list[Any]:
    found = []
    for sub in graph.get_subgraphs():
        found += [sub, *_subgraphs(sub)]
    return found


def main(args: argparse.Namespace) -> int:
    """``orchestrator diagrams``: write them, ``--check`` them, or one position's path."""
    if args.position:
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
