"""``orchestrator rehearse``: the live path against the loopback venue replaying the
recorded data (rehearsal.py); it writes its folder and reports as ``run`` does."""

from __future__ import annotations

import argparse

from orchestrator.commands.run import RehearsalRequest, run


def main(args: argparse.Namespace) -> int:
    """``orchestrator rehearse [CONFIG] [--hours N] [--start WHEN] [--faults FILE]``."""
    request = RehearsalRequest(hours=args.hours, start=args.start, faults=args.faults)
    return run(args.config, rehearsal=request)
