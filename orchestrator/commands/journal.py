"""``orchestrator journal RUN_DIR``: what a run's journal holds, read without changing it.

The run's meta (the config only as its size and digest), the process writing it
now if any, the positions with their states and quantities, the open intents
(requests with no final outcome), and how many transitions, orders and ledger
entries it holds. Nothing secret is stored (the config refuses credentials), so
nothing secret can be printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.journal.lock import describe_holder
from orchestrator.journal.reader import JournalView
from orchestrator.journal.schema import DB_NAME, SCHEMA_VERSION
from orchestrator.journal.store import Journal

LONG_VALUE = 120  # meta values longer than this are shortened in the text output


def summary(view: JournalView) -> dict[str, Any]:
    """Everything ``orchestrator journal`` prints, as JSON-ready values (decimals as strings)."""
    meta = view.meta()
    config = meta.pop("config", "")
    identity = {k: meta.pop(k, None) for k in ("run_id", "mode", "run_nonce", "created_at")}
    positions = [
        {
            "id": p.id,
            "state": p.state,
            "spot_symbol": p.spot_symbol,
            "perp_symbol": p.perp_symbol,
            "quantity": str(p.quantity),
            "spot_qty": str(p.spot_qty),
            "perp_qty": str(p.perp_qty),
            "reason": p.reason,
        }
        for p in view.positions()
    ]
    intents = [
        {
            "client_order_id": i.client_order_id,
            "position_id": i.position_id,
            "symbol": i.request.symbol,
            "side": i.request.side.value,
            "quantity": str(i.request.quantity),
            "status": i.status,
            "sent_ms": i.sent_ms,
            "sent_at": _time(i.sent_ms),
            "error": i.error,
        }
        for i in view.open_intents()
    ]
    balances = {}
    for label in view.balance_labels():
        snap = view.last_balances(label)
        if snap is not None:
            balances[label] = {
                "time_ms": snap.time_ms,
                "wallet": {k: str(v) for k, v in snap.wallet.items()},
                "perps": {k: {"size": str(s), "entry": str(e)} for k, (s, e) in snap.perps.items()},
            }
    writer = None
    if view.writer is not None:
        pid, command = view.writer
        writer = {"pid": pid, "command": command}
    return {
        "file": str(view.path),
        "schema_version": SCHEMA_VERSION,
        **identity,
        "config": {
            "lines": len(config.splitlines()),
            "bytes": len(config.encode()),
            "sha256": hashlib.sha256(config.encode()).hexdigest(),
        },
        "meta": meta,
        "writer": writer,
        "positions": positions,
        "open_intents": intents,
        "counts": view.counts(),
        "ledger_entries": view.ledger_counts(),
        "balances": balances,
    }


def render(run_dir: Path, *, as_json: bool = False) -> str:
    """The summary of ``run_dir``'s journal as text or JSON; JournalError if there is none
    or it cannot be read."""
    if run_dir.name == DB_NAME and run_dir.is_file():  # the journal file itself: fine too
        run_dir = run_dir.parent
    with Journal.read(run_dir) as view:
        data = summary(view)
    return json.dumps(data, indent=2) if as_json else format_summary(data)


def format_summary(data: dict[str, Any]) -> str:
    counts = data["counts"]
    lines = [f"journal {data['file']} (version {data['schema_version']})"]

    def row(label: str, text: str) -> None:
        lines.append(f"{label:<13}{text}")

    row("run", f"{data['run_id']}  mode {data['mode']}  nonce {data['run_nonce']}")
    row("created", str(data["created_at"]))
    row("config", f"{data['config']['lines']} lines, sha256 {data['config']['sha256'][:16]}")
    for key, value in sorted(data["meta"].items()):
        if len(value) > LONG_VALUE:
            value = f"{value[:LONG_VALUE]}... ({len(value)} characters)"
        row("meta", f"{key} = {value}")
    writer = data["writer"]
    if writer is None:
        row("writer", "none (no process has it open for writing)")
    else:
        row("writer", f"{describe_holder(writer['pid'], writer['command'])} has it open")
    positions = data["positions"]
    states = Counter(p["state"] or "(none)" for p in positions)
    by_state = ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
    row("positions", f"{len(positions)}" + (f": {by_state}" if positions else ""))
    if positions:
        lines.extend(
            _table(
                ["id", "state", "spot", "perp", "quantity", "spot qty", "perp qty", "reason"],
                [
                    [
                        p["id"],
                        p["state"] or "",
                        p["spot_symbol"],
                        p["perp_symbol"],
                        p["quantity"],
                        p["spot_qty"],
                        p["perp_qty"],
                        p["reason"] or "",
                    ]
                    for p in positions
                ],
            )
        )
    intents = data["open_intents"]
    row("open intents", f"{len(intents)}" + (": no final outcome yet" if intents else ""))
    if intents:
        lines.extend(
            _table(
                ["client order id", "position", "symbol", "side", "quantity", "status", "sent"],
                [
                    [
                        i["client_order_id"],
                        i["position_id"],
                        i["symbol"],
                        i["side"],
                        i["quantity"],
                        i["status"],
                        i["sent_at"],
                    ]
                    for i in intents
                ],
            )
        )
    row("transitions", str(counts["transitions"]))
    row("orders", f"{counts['orders']} ({counts['open_intents']} open)")
    ledger = data["ledger_entries"]
    by_label = ", ".join(f"{label} {n}" for label, n in ledger.items())
    row("ledger", f"{counts['ledger_entries']}" + (f": {by_label}" if ledger else ""))
    for label, snap in data["balances"].items():
        wallet = ", ".join(f"{k} {v}" for k, v in snap["wallet"].items())
        perps = ", ".join(f"{k} {p['size']} @ {p['entry']}" for k, p in snap["perps"].items())
        when = "" if snap["time_ms"] is None else f" at {_time(snap['time_ms'])}"
        row("balances", f"{label}{when}: {wallet or '-'}; perps: {perps or '-'}")
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = {"quantity", "spot qty", "perp qty"}

    def line(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if h in numeric else c.ljust(w)
            for c, w, h in zip(cells, widths, header, strict=True)
        ]
        return ("  " + "  ".join(parts)).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _time(time_ms: int) -> str:
    try:
        moment = datetime.fromtimestamp(time_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return str(time_ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def main(args: argparse.Namespace) -> int:
    """``orchestrator journal RUN_DIR [--json]``."""
    print(render(args.run_dir, as_json=args.json))
    return 0
