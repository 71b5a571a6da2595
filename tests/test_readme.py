"""Every block of the README and of the site's pages (docs/) marked ``<!-- runnable -->``
runs as a new user runs it, offline on the recorded data, in the site's reading order, and
prints what the page shows under it: the documentation cannot drift from the program. The
markers are described in tests/readme_blocks.py, and in docs/internals/testing.md
("Documentation that runs")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import readme_blocks
from tests.readme_blocks import ANY, Block, matches

ROOT_README = readme_blocks.ROOT / "README.md"
BLOCKS = [block for path in readme_blocks.documents() for block in readme_blocks.parse(path)]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Block | Exception]:
    """Every runnable block, run once in order in one folder (later blocks read the runs
    earlier ones made), with what each printed or the error it ended with."""
    folder = tmp_path_factory.mktemp("readme")
    env = readme_blocks.workspace(folder)
    results: dict[str, Block | Exception] = {}
    for block in BLOCKS:
        try:
            readme_blocks.run_block(block, folder, env)
            results[block.where] = block
        except AssertionError as exc:
            results[block.where] = exc
    return results


def test_the_docs_mark_their_offline_commands_runnable() -> None:
    """The README and the site's pages together run every offline command."""
    commands = "\n".join(b.code for b in BLOCKS if b.language == "sh")
    for command in ("run", "check", "schema", "journal", "traces", "diagrams", "demo"):
        assert f".venv/bin/orchestrator {command}" in commands, command
    assert "orchestrator rehearse" in commands
    assert "orchestrator sweep" in commands
    assert "orchestrator run --resume" in commands
    assert any(b.language == "python" for b in BLOCKS)
    assert sum(b.expected is not None for b in BLOCKS) >= 5


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_runnable_block_runs_and_prints_what_is_shown(
    block: Block, ran: dict[str, Block | Exception]
) -> None:
    result = ran[block.where]
    if isinstance(result, Exception):
        raise result
    if block.expected is not None:
        assert matches(block.expected, result.printed), (
            f"{block.where}: the output shown differs from what the block printed "
            f"(regenerate: .venv/bin/python -m tests.readme_blocks --update "
            f"{block.path.relative_to(readme_blocks.ROOT)}):\n" + readme_blocks.difference(result)
        )


@pytest.mark.parametrize(
    ("shown", "printed", "fits"),
    [
        (["run ...: 64,872 events in ... s"], ["run 2026-x: 64,872 events in 0.3 s"], True),
        (["run ...: 64,872 events"], ["run 2026-x: 64,873 events"], False),  # a number
        (["a", ANY, "z"], ["a", "b", "c", "z"], True),
        (["a", ANY, "z"], ["a", "z"], True),
        (["a", ANY, "z"], ["a", "b"], False),
        (["a", "b"], ["a", "b", "c"], False),  # a line printed and not shown
        (["fee 19.96... USDT"], ["fee 19.9612 BTC"], False),
        (["x (y)"], ["x (y)"], True),  # regex characters are literal
    ],
)
def test_shown_output_matching(shown: list[str], printed: list[str], fits: bool) -> None:
    assert matches(shown, printed) is fits


def test_a_marker_without_its_block_is_an_error(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- runnable -->\nno fence here\n")
    with pytest.raises(readme_blocks.MarkerError, match="must be followed by a fenced block"):
        readme_blocks.parse(page)
    page.write_text("<!-- output -->\n```\nx\n```\n")
    with pytest.raises(readme_blocks.MarkerError, match="does not follow a runnable block"):
        readme_blocks.parse(page)


def test_regenerating_keeps_the_varying_parts_and_takes_the_new_figures() -> None:
    block = Block(
        ROOT_README, 1, "sh", "", expected=["run ...: 64,872 events in ... s", ANY, "z 1"]
    )
    block.printed = ["run 20261207-1: 64,873 events in 0.4 s", "a", "b", "z 2"]
    fixed = readme_blocks.regenerated(block)
    assert fixed == ["run ...: 64,873 events in ... s", ANY, "z 2"]
    assert matches(fixed, block.printed)
