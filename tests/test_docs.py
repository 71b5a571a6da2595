"""The documentation site's generated reference pages are what the code makes now, and the
bounds they show for every setting are the bounds the loaders enforce.

CI also runs ``python docs/generate.py --check`` and ``mkdocs build --strict``."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from orchestrator.config import ConfigError, load
from orchestrator.sweep.spec import SweepError, load_sweep

ROOT = Path(__file__).resolve().parent.parent


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


generate = _generator()


def test_the_generated_reference_pages_are_fresh() -> None:
    stale = [str(path.relative_to(ROOT)) for path in generate.stale()]
    assert not stale, f"regenerate: .venv/bin/python docs/generate.py ({stale})"


def test_check_names_a_stale_page_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pages = {tmp_path / "page.md": "what the code says\n"}
    monkeypatch.setattr(generate, "pages", lambda: pages)
    monkeypatch.setattr(generate, "ROOT", tmp_path)
    assert generate.main(["--check"]) == 1
    assert "page.md differs from the code" in capsys.readouterr().out
    assert generate.main([]) == 0
    assert generate.main(["--check"]) == 0


def _yaml(path: str, value: str, base: dict[str, Any] | None = None) -> str:
    """``base`` with the setting at the YAML path ``path`` set to ``value`` (YAML text)."""
    document = copy.deepcopy(base or {})
    *parents, leaf = path.split(".")
    node = document
    for name in parents:
        node = node.setdefault(name, {})
    node[leaf] = yaml.safe_load(value)
    return yaml.safe_dump(document)


CONFIG_CASES = [
    (path, value, accepted)
    for path, key in generate.CONFIG_KEYS.items()
    for values, accepted in ((key.accepts, True), (key.refuses, False))
    for value in values
]


@pytest.mark.parametrize(("path", "value", "accepted"), CONFIG_CASES)
def test_the_config_reference_shows_the_bounds_the_loader_enforces(
    tmp_path: Path, path: str, value: str, accepted: bool
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(_yaml(path, value))
    if accepted:
        load(config)
    else:
        with pytest.raises(ConfigError, match=path.rsplit(".", 1)[-1]):
            load(config)


SWEEP_BASE = {
    "base": "config.yaml",
    "parameters": {"strategy.funding_window": [3, 9]},
    "walk_forward": {"train_months": 6, "test_months": 3},
}
SWEEP_CASES = [
    (path, value, accepted)
    for path, key in generate.SWEEP_KEYS.items()
    for values, accepted in ((key.accepts, True), (key.refuses, False))
    for value in values
]


@pytest.mark.parametrize(("path", "value", "accepted"), SWEEP_CASES)
def test_the_sweep_reference_shows_the_bounds_the_loader_enforces(
    tmp_path: Path, path: str, value: str, accepted: bool
) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(_yaml(path, value, SWEEP_BASE))
    if accepted:
        load_sweep(sweep)
    else:
        with pytest.raises(SweepError, match=path.rsplit(".", 1)[-1]):
            load_sweep(sweep)
