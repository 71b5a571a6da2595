"""The runnable blocks of the README and the site's pages (docs/): found, run, and their
shown output checked.

Markers (HTML comments: GitHub does not show them):

- ``<!-- runnable -->`` on the line before a ```` ```sh ```` or ```` ```python ```` fence: the
  block is run, from a temporary folder holding a copy of the repository's config files and a
  ``.venv`` link to the environment running the tests, with ``ORCHESTRATOR_DATA`` set to the
  recorded data. A shell block runs line by line (each must exit 0); ``<id>`` in a command
  stands for the latest run's id (the newest folder in ``runs/``). A Python block runs as a
  script.
- ``<!-- output -->`` on the line before a plain fence right after a runnable block: what that
  block prints on standard output (stderr, where progress bars and warnings go, is not
  compared). Trailing spaces are ignored. ``...`` inside a line matches any text on that line
  (run ids, timings, wall-clock times); a line that is only ``...`` matches any number of lines.

Regenerate the shown outputs of a page after a change of what the commands print::

    .venv/bin/python -m tests.readme_blocks --update docs/quickstart.md

It runs every runnable block of the pages before it and of the page, and rewrites each of
the page's output blocks with what was printed, keeping every line of the block whose
pattern still matches (so the ``...`` parts stay); review with ``git diff``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RUNNABLE = "<!-- runnable -->"
OUTPUT = "<!-- output -->"
ANY = "..."
# Files a new user's commands read from the repository root.
COPIED = (
    "config.yaml",
    "sweep.yaml",
    "config.schema.json",
    "sweep.schema.json",
    "diagrams",
    "docs/examples",  # the files the site's pages use (a quick sweep)
)
COMMAND_TIMEOUT = 300  # seconds: a safety net for a hung command, not a measurement


class MarkerError(Exception):
    """A marker that is not followed by the fence it needs."""


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str  # "sh" or "python"
    code: str
    expected: list[str] | None = None  # the output block's lines
    expected_span: tuple[int, int] | None = None  # its lines' indices in the file (0-based)
    printed: list[str] = field(default_factory=list)  # filled when run

    @property
    def where(self) -> str:
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.line}"


def documents() -> list[Path]:
    """The README, then the site's pages in the order of its navigation (mkdocs.yml's
    ``nav``: the order a reader follows, so a page may use the runs an earlier one made),
    then any page of docs/ not in it."""
    named = [ROOT / "docs" / name for name in nav_pages(ROOT / "mkdocs.yml")]
    pages = [page for page in named if page.is_file()]
    rest = sorted(set((ROOT / "docs").glob("**/*.md")) - set(pages))
    return [ROOT / "README.md", *pages, *rest]


def nav_pages(mkdocs_yml: Path) -> list[str]:
    """The pages named in the site's ``nav``, in order (none without the file)."""
    if not mkdocs_yml.is_file():
        return []

    class Loader(yaml.SafeLoader):
        """Reads MkDocs' ``!!python/name:`` tags as nothing: only ``nav`` is wanted."""

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)
    found: list[str] = []

    def walk(entry: object) -> None:
        if isinstance(entry, str) and entry.endswith(".md"):
            found.append(entry)
        elif isinstance(entry, list):
            for item in entry:
                walk(item)
        elif isinstance(entry, dict):
            for item in entry.values():
                walk(item)

    walk(yaml.load(mkdocs_yml.read_text(encoding="utf-8"), Loader=Loader).get("nav", []))
    return found


def _fence(lines: list[str], start: int, path: Path, marker: str) -> tuple[str, int]:
    """The info string of the fence at ``start`` and the index of its closing line."""
    if start >= len(lines) or not lines[start].startswith("```"):
        raise MarkerError(f"{path}:{start}: {marker} must be followed by a fenced block")
    opening = lines[start]
    ticks = len(opening) - len(opening.lstrip("`"))
    for end in range(start + 1, len(lines)):
        if lines[end].strip() == "`" * ticks:
            return opening[ticks:].strip(), end
    raise MarkerError(f"{path}:{start + 1}: the block opened here is never closed")


def parse(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    for i, text in enumerate(lines):
        marker = text.strip()
        if marker == RUNNABLE:
            info, end = _fence(lines, i + 1, path, marker)
            language = info.split()[0] if info else ""
            if language not in ("sh", "python"):
                raise MarkerError(f"{path}:{i + 2}: a runnable block is sh or python, not {info!r}")
            blocks.append(Block(path, i + 2, language, "\n".join(lines[i + 2 : end]) + "\n"))
        elif marker == OUTPUT:
            _, end = _fence(lines, i + 1, path, marker)
            if not blocks or blocks[-1].expected is not None:
                raise MarkerError(f"{path}:{i + 1}: {marker} does not follow a runnable block")
            blocks[-1].expected = lines[i + 2 : end]
            blocks[-1].expected_span = (i + 2, end)
    return blocks


def workspace(folder: Path) -> dict[str, str]:
    """A folder a new user's commands can run in; returns their environment."""
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name)
        elif source.is_file():
            shutil.copy2(source, folder / name)
    # The commands say .venv/bin/...: the environment running the tests.
    (folder / ".venv").symlink_to(Path(sys.prefix))
    data = os.environ.get("ORCHESTRATOR_DATA") or str(ROOT.parent / "shared" / "data")
    env = dict(os.environ, ORCHESTRATOR_DATA=data, COLUMNS="200")
    env.pop("BYBIT_API_KEY", None)  # the runnable blocks are the offline ones
    env.pop("BYBIT_API_SECRET", None)
    return env


def _latest_run(folder: Path) -> str:
    """The newest run's id; ``<id>`` (left as is: bash then refuses it) before any run."""
    runs = sorted(p.name for p in (folder / "runs").glob("*") if p.is_dir())
    return runs[-1] if runs else "<id>"


def run_block(block: Block, folder: Path, env: dict[str, str]) -> None:
    """Runs the block in ``folder``; its standard output goes to ``block.printed``.

    Raises AssertionError naming the command that failed and what it said."""
    if block.language == "python":
        commands = [[str(folder / ".venv" / "bin" / "python"), "-"]]
        inputs = [block.code]
    else:
        commands, inputs = [], []
        for text in block.code.splitlines():
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            commands.append(["bash", "-c", text])
            inputs.append("")
    printed: list[str] = []
    for command, given in zip(commands, inputs, strict=True):
        if block.language == "sh" and "<id>" in command[-1]:
            # The latest run when the line runs: an earlier line may have made it.
            command = [*command[:-1], command[-1].replace("<id>", _latest_run(folder))]
        done = subprocess.run(
            command,
            cwd=folder,
            env=env,
            input=given,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        shown = command[-1] if block.language == "sh" else "the Python block"
        if done.returncode != 0:
            raise AssertionError(
                f"{block.where}: {shown} exited {done.returncode}:\n"
                f"{done.stdout[-2000:]}{done.stderr[-3000:]}"
            )
        printed += done.stdout.splitlines()
    block.printed = [line.rstrip() for line in printed]


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in expected.rstrip().split(ANY)]
    return re.compile(".*?".join(parts))


def matches(expected: list[str], printed: list[str]) -> bool:
    """Whether the printed lines fit the shown ones (``...`` as described above)."""
    patterns = [None if e.strip() == ANY else _line_pattern(e) for e in expected]
    # reachable[j]: the patterns so far can account for the first j printed lines.
    reachable = {0}
    for pattern in patterns:
        if pattern is None:
            reachable = set(range(min(reachable), len(printed) + 1)) if reachable else set()
        else:
            reachable = {
                j + 1 for j in reachable if j < len(printed) and pattern.fullmatch(printed[j])
            }
    return len(printed) in reachable


def difference(block: Block) -> str:
    """What differs, with every printed line that its shown pattern accepts shown as the
    pattern (so a run id under ``...`` is not reported)."""
    assert block.expected is not None
    return "\n".join(
        difflib.unified_diff(block.expected, regenerated(block), "shown", "printed", lineterm="")
    )


def regenerated(block: Block) -> list[str]:
    """The output block rewritten from what was printed: the shown lines aligned with the
    printed ones (fewest changes; a ``...`` line covers any run of lines), each shown line
    that still fits kept, each changed one taken from the printed line with its ``...``
    parts kept, lines no longer printed dropped, new ones added."""
    assert block.expected is not None
    shown, printed = block.expected, block.printed
    n, m = len(shown), len(printed)
    fits = [[_line_pattern(e).fullmatch(p) is not None for p in printed] for e in shown]
    inf = 3 * (n + m) + 1
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    step: dict[tuple[int, int], tuple[int, int]] = {}
    cost[0][0] = 0

    def relax(i: int, j: int, to_i: int, to_j: int, extra: int) -> None:
        if cost[i][j] + extra < cost[to_i][to_j]:
            cost[to_i][to_j] = cost[i][j] + extra
            step[to_i, to_j] = (i, j)

    for i in range(n + 1):
        for j in range(m + 1):
            if cost[i][j] == inf:
                continue
            if i < n and shown[i].strip() == ANY:
                for k in range(j, m + 1):  # a ``...`` line covers any run of lines
                    relax(i, j, i + 1, k, 0)
                continue
            if i < n and j < m:
                # A changed line costs less than dropping it and adding one: the
                # ``...`` parts of a line whose figures changed are kept.
                relax(i, j, i + 1, j + 1, 0 if fits[i][j] else 2)
            if i < n:
                relax(i, j, i + 1, j, 3)  # a shown line no longer printed
            if j < m:
                relax(i, j, i, j + 1, 3)  # a printed line not shown
    kept: list[str] = []
    i, j = n, m
    while (i, j) != (0, 0):
        before_i, before_j = step[i, j]
        if before_i < i and shown[before_i].strip() == ANY:
            kept.append(shown[before_i])
        elif before_i < i and before_j < j:
            line = shown[before_i]
            kept.append(line if fits[before_i][before_j] else _merged(line, printed[before_j]))
        elif before_j < j:
            kept.append(printed[before_j])
        i, j = before_i, before_j
    return kept[::-1]


def _merged(expected: str, printed: str) -> str:
    """The printed line with each word the shown line varied (``...``) kept as ``...``,
    when both lines have the same words."""
    if ANY not in expected:
        return printed
    if expected.startswith(ANY):
        printed = printed.lstrip()  # the shown line's first ``...`` took the indent too
    shown_words, printed_words = re.split(r"(\s+)", expected), re.split(r"(\s+)", printed)
    if len(shown_words) != len(printed_words):
        return printed
    pairs = list(zip(shown_words, printed_words, strict=True))
    kept = [
        index % 2 == 0 and ANY in shown and _line_pattern(shown).fullmatch(word) is not None
        for index, (shown, word) in enumerate(pairs)
    ]
    merged: list[str] = []
    for index, (shown, word) in enumerate(pairs):
        # Spacing beside a kept ``...`` is the shown line's: the figure it hides is padded.
        beside = index % 2 == 1 and (kept[index - 1] or (index + 1 < len(kept) and kept[index + 1]))
        merged.append(shown if kept[index] or beside else word)
    return "".join(merged)


def update(path: Path) -> int:
    """Rewrites the output blocks of ``path`` from what its blocks print now, after
    running the blocks of the pages before it (in reading order: a page may read the
    runs an earlier one made)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    pages = documents()
    before = pages[: pages.index(path)] if path in pages else []
    blocks = parse(path)
    with tempfile.TemporaryDirectory(prefix="readme-") as folder:
        env = workspace(Path(folder))
        for block in [b for page in before for b in parse(page)] + blocks:
            run_block(block, Path(folder), env)
    for block in reversed(blocks):  # from the end, so earlier spans stay put
        if block.expected_span is not None:
            start, end = block.expected_span
            lines[start:end] = regenerated(block)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{path}: {sum(b.expected is not None for b in blocks)} output blocks checked")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", type=Path, metavar="FILE", required=True)
    return update(parser.parse_args(argv).update.resolve())


if __name__ == "__main__":
    sys.exit(main())
