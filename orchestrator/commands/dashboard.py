"""``orchestrator dashboard``: the local web app over the run and sweep folders
(orchestrator/dashboard/). The folders default to where the config (config.yaml) and
sweep.yaml write (their ``output.dir`` and ``output``), else ./runs and ./sweeps; the
market page reads the config's data folder and universe."""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from orchestrator.config import ConfigError, load
from orchestrator.dashboard.app import Settings
from orchestrator.dashboard.serve import serve
from orchestrator.sweep.spec import load_sweep
from orchestrator.sweep.yamlfile import SweepError

TOKEN_ENV = "ORCHESTRATOR_DASHBOARD_TOKEN"


def default_runs(config: Path) -> Path:
    if config.is_file():
        try:
            return load(config).output_dir()
        except ConfigError:
            pass  # a broken config.yaml is the run's to report; the dashboard reads runs/
    return Path("runs")


def default_sweeps() -> Path:
    sweep = Path("sweep.yaml")
    if sweep.is_file():
        try:
            return load_sweep(sweep).output_dir()
        except SweepError:
            pass
    return Path("sweeps")


def main(args: argparse.Namespace) -> int:
    """``orchestrator dashboard [--runs DIR] [--sweeps DIR] [--host H] [--port N]
    [--controls]``."""
    token = os.environ.get(TOKEN_ENV) or None
    if token is not None:
        note = f"controls on: the token is ${TOKEN_ENV}"
    elif args.controls:
        token = secrets.token_urlsafe(24)
        # Printed once, here, for the operator to type in; never put into a page.
        note = f"controls on: token {token}"
    else:
        note = f"read-only (--controls or ${TOKEN_ENV} turns the controls on)"
    settings = Settings(
        runs=(args.runs or default_runs(args.config)).resolve(),
        sweeps=(args.sweeps or default_sweeps()).resolve(),
        token=token,
        config=args.config.resolve() if args.config.is_file() else None,
    )
    return serve(settings, args.host, args.port, token_note=note)
