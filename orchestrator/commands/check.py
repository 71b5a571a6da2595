"""`orchestrator check`: a config, its data and its output folder checked; nothing run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from orchestrator import files
from orchestrator.bybit.client import credentials
from orchestrator.config import Loaded, load
from orchestrator.replay.session import prepare


def check(config_path: Path, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Validate the config and its data, and that the output folder can be written:
    the warnings a run would print, on stderr; nothing created."""
    out, err = out or sys.stdout, err or sys.stderr
    loaded = load(config_path)
    if loaded.config.on_live_market:
        return _check_live(config_path, loaded, out, err)
    prepared = prepare(loaded)
    for warning in prepared.warnings:
        print(f"warning: {warning}", file=err)
    files.ensure_writable(prepared.loaded.output_dir(), create=False)
    config = prepared.loaded.config
    rows = sum(len(d.spot) + len(d.perp) + len(d.funding) for d in prepared.datasets)
    print(
        f"{config_path}: OK: {config.mode} on {config.venue}, "
        f"{len(config.pair_list)} pairs, {rows:,} market events in {prepared.loaded.data_dir()}",
        file=out,
    )
    return 0


def _check_live(config_path: Path, loaded: Loaded, out: TextIO, err: TextIO) -> int:
    """A live config (or a dry run's): the settings, the keys in the environment (a dry
    run needs none), the output folder. Nothing is sent (the venue is first asked by
    ``run``, in its startup checks)."""
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=err)
    config = loaded.config
    if not config.dry_run:
        credentials()
    files.ensure_writable(loaded.output_dir(), create=False)
    where = config.live.url or f"Bybit {config.network}"
    if config.dry_run:
        what = "a dry run (paper fills) on the live market of"
        keys = "no API key needed"
    else:
        what, keys = "live on", "API key and secret found in the environment"
    pairs = (
        "pairs: auto (chosen from the venue's market at the start)"
        if config.auto
        else f"{len(config.pair_list)} pairs"
    )
    print(f"{config_path}: OK: {what} {where}, {pairs}; {keys}", file=out)
    return 0


def main(args: argparse.Namespace) -> int:
    """``orchestrator check [CONFIG]``."""
    return check(args.config)
