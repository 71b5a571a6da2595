"""A sweep's trial: its parameters, window, every figure it recorded (trials.csv, the
exact decimal text of its run summary, strategy and always hedged, in total and per
pair) and, for a test window, its equity curve beside always hedged (curves.jsonl)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from urllib.parse import quote

from orchestrator.dashboard.pages import esc, money, percent, table
from orchestrator.dashboard.sweeps import Trial
from orchestrator.output import plots

# (column name in trials.csv, label, how it is shown)
FIGURES = (
    ("positions", "positions", "int"),
    ("hours_in_market", "hours in market", "number"),
    ("time_in_market", "time in market", "percent"),
    ("funding", "funding", "money"),
    ("fees", "fees", "money"),
    ("slippage", "slippage", "money"),
    ("price_pnl", "price PnL", "money"),
    ("net_pnl", "net PnL", "money"),
    ("return", "return", "percent"),
    ("annualised_return", "annualised", "percent"),
    ("max_drawdown", "max drawdown", "percent"),
    ("cost_per_position", "cost a position", "money"),
    ("funding_per_position", "funding a position", "money"),
)
KINDS = {
    "train": "a parameter set on a train window",
    "test": "the set chosen, on the test window after its train window (out of sample)",
    "base": "the base config on the test window",
}


def trial_link(sweep: str, trial: str, text: str | None = None) -> str:
    href = f"/sweeps/{quote(sweep)}/trials/{quote(trial)}"
    return f'<a href="{href}" data-trial="{esc(trial)}">{esc(text or trial)}</a>'


def trial_page(trial: Trial) -> str:
    row = trial.row
    params = (
        ", ".join(f"{p}={row.get(p, '')}" for p in trial.parameters)
        if row.get("kind") != "base"
        else "the base config's own"
    )
    facts = [
        ("kind", f"{row.get('kind', '')}: {KINDS.get(row.get('kind', ''), '')}"),
        ("step", row.get("step", "")),
        ("parameter set", row.get("set") or "-"),
        ("parameters", params),
        ("window", f"{row.get('window_start', '')} to {row.get('window_end', '')}"),
        ("events replayed", row.get("events", "")),
        ("positions", row.get("positions", "")),
        ("always hedged's positions", row.get("baseline_positions", "")),
        ("ledger balances", row.get("ledger_balances", "")),
        ("alerts", row.get("alerts") or "none"),
    ]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    head = table(
        ["objective", "excess return", "drawdown within limit", "starting balance",
         "ending equity"],
        [
            _cell(row, "objective", "percent")
            + _cell(row, "excess_return", "percent")
            + f"<td>{esc(row.get('drawdown_ok', ''))}</td>"
            + _cell(row, "starting_balance", "money")
            + _cell(row, "ending_equity", "money")
        ],
        "trial",
    )  # fmt: skip
    parts = ["total", *trial.pairs]
    columns = [*(f"{p}" for p in parts), *(f"baseline.{p}" for p in parts)]
    rows = [
        f"<td>{esc(label)}</td>" + "".join(_cell(row, f"{c}.{key}", kind) for c in columns)
        for key, label, kind in FIGURES
    ]
    names = [*(p for p in parts), *(f"always hedged {p}" for p in parts)]
    figures = table(["figure", *names], rows, "figures")
    chart: plots.Spec | None = None
    if trial.equity is not None:
        curves: list[plots.Curve] = [("strategy", plots.LINES[0], trial.equity)]
        if trial.baseline:
            curves.append(("always hedged", plots.LINES[1], trial.baseline))
        chart = plots.panel("Equity over the test window", curves)
        curve_note = "its hourly equity as the sweep recorded it (curves.jsonl)"
    else:
        curve_note = (
            "a train trial's equity curve is not recorded: the sweep keeps the test windows' only"
        )
    return "".join(
        [
            f'<p><a href="/sweeps/{quote(trial.sweep)}">Sweep {esc(trial.sweep)}</a></p>',
            f'<dl class="status">{dl}</dl>',
            head,
            "<h2>Figures</h2>",
            '<p class="note">As the sweep recorded them in trials.csv (the run summary of '
            "the trial, strategy and always hedged over the same window).</p>",
            figures,
            "<h2>Equity</h2>",
            f'<p class="note">{esc(curve_note)}.</p>',
            '<div id="charts"><div class="chart" id="chart-equity" data-title="Equity">'
            "</div></div>"
            '<script type="application/json" id="chart-data">'
            + plots.page_json({"equity": chart})
            + "</script>",
        ]
    )


def _cell(row: dict[str, str], key: str, kind: str) -> str:
    text = row.get(key)
    if not text:
        return '<td class="num">-</td>'
    try:
        value = Decimal(text)
    except InvalidOperation:
        return f"<td>{esc(text)}</td>"
    if kind == "money":
        return money(value).replace("<td ", f'<td data-key="{esc(key)}" ', 1)
    if kind == "percent":
        return percent(value).replace("<td ", f'<td data-key="{esc(key)}" ', 1)
    return f'<td class="num" data-key="{esc(key)}" data-exact="{esc(text)}">{esc(text)}</td>'
