"""State diagrams generated from the machines themselves, never edited by hand."""

from __future__ import annotations

from pathlib import Path

from machines import PositionMachine

MACHINES = {"position": PositionMachine}


def render() -> dict[str, str]:
    """File name -> content for every diagram."""
    return {f"{name}.mmd": format(machine, "mermaid") for name, machine in MACHINES.items()}


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path) -> list[str]:
    """Diagram files that are missing or differ from the machines."""
    return [
        name
        for name, text in render().items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]
