"""The machines' diagrams, drawn from the code: Mermaid text always, SVG through
Graphviz's ``dot`` (Debian package ``graphviz``). A position's path can be drawn on
top, and each state can carry a count (the dashboard's machine page). Shared by
``orchestrator diagrams`` and the dashboard."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

from statemachine.contrib.diagram import DotGraphMachine

from machines import PositionMachine

MACHINES: dict[str, Any] = {"position": PositionMachine}
Step = tuple[str, str, str]  # (event, from state, to state)
PATH_COLOUR = "#2e7d32"
VISITED_FILL = "#c8e6c9"


def mermaid(name: str) -> str:
    return format(MACHINES[name], "mermaid")


def has_dot() -> bool:
    return shutil.which("dot") is not None


def svg(name: str, steps: Sequence[Step] = (), counts: Mapping[str, int] | None = None) -> bytes:
    """The machine as SVG; ``steps`` drawn as a path; ``counts`` (state -> n) in each
    state's box, a state nobody is in shown as 0."""
    graph = DotGraphMachine(MACHINES[name])()  # type: ignore[no-untyped-call]
    if steps:
        _highlight_dot(graph, name, steps)
    if counts is not None:
        _count_dot(graph, name, counts)
    result: bytes = graph.create_svg()
    return _stable(result)


_OBJECT_ID = re.compile(rb"(?<=__initial_|___atomic_)\d{6,}")


def _stable(drawing: bytes) -> bytes:
    """The SVG with the Python object ids python-statemachine names some nodes by
    replaced by their order of appearance, so that drawing the same machine twice
    gives the same file."""
    seen: dict[bytes, bytes] = {}
    return _OBJECT_ID.sub(lambda m: seen.setdefault(m[0], str(len(seen)).encode()), drawing)


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


def _nodes(graph: Any) -> list[Any]:
    return [node for g in [graph, *_subgraphs(graph)] for node in g.get_nodes()]


def _highlight_dot(graph: Any, name: str, steps: Sequence[Step]) -> None:
    visited = {s for _, source, target in steps for s in (source, target)}
    taken = {(source, target, _title(name, event)) for event, source, target in steps}
    for node in _nodes(graph):
        if node.get_name().strip('"') in visited:
            node.set("style", "rounded,filled")
            node.set("fillcolor", VISITED_FILL)
            node.set("color", PATH_COLOUR)
    for g in [graph, *_subgraphs(graph)]:
        for edge in g.get_edges():
            ends = (str(edge.get_source()).strip('"'), str(edge.get_destination()).strip('"'))
            label = str(edge.get("label") or "")
            if any((s, t) == ends and f">{title}<" in label for s, t, title in taken):
                edge.set("color", PATH_COLOUR)
                edge.set("penwidth", "3")


def _count_dot(graph: Any, name: str, counts: Mapping[str, int]) -> None:
    states = {str(s.id): str(s.name) for s in MACHINES[name].states}
    for node in _nodes(graph):
        state = node.get_name().strip('"')
        if state in states:
            n = counts.get(state, 0)
            node.set("label", f"<{html.escape(states[state])}<br/><b>{n:,}</b>>")
            node.set("id", f"state-{state}")  # the page finds each state's box by it


def _subgraphs(graph: Any) -> list[Any]:
    found = []
    for sub in graph.get_subgraphs():
        found += [sub, *_subgraphs(sub)]
    return found
