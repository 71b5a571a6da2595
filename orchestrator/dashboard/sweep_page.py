"""The sweep pages: the list with each verdict, and one sweep: its out-of-sample curve
(uPlot, as the money page draws), verdict and figures, steps and the objective heatmap."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

from orchestrator.dashboard.money import at, chart_points
from orchestrator.dashboard.pages import esc, money, percent, table
from orchestrator.dashboard.sweeps import BASE, HEDGED, SEARCH, Sweep
from orchestrator.dashboard.trial_page import trial_link
from orchestrator.output import plots

LEGS = ((SEARCH, "search"), (BASE, "base"), (HEDGED, "always_hedged"))


def sweeps_page(rows: list[tuple[str, dict[str, Any]]], folder: str) -> str:
    if not rows:
        return f"<p>No sweep folders under <code>{esc(folder)}</code>.</p>"
    body = []
    for name, summary in rows:
        oos = summary.get("out_of_sample") or {}
        body.append(
            f'<td><a href="/sweeps/{quote(name)}">{esc(name)}</a></td>'
            f"<td>{esc(summary.get('objective', '-'))}</td>"
            f'<td class="num">{esc((summary.get("trials") or {}).get("done", "-"))}</td>'
            + percent((oos.get("search") or {}).get("return"))
            + percent((oos.get("always_hedged") or {}).get("return"))
            + f"<td>{esc(summary.get('verdict', '-'))}</td>"
        )
    head = ["sweep", "objective", "trials", "search out of sample", "always hedged", "verdict"]
    return f"<p>Sweeps under <code>{esc(folder)}</code>.</p>" + table(head, body, "sweeps")


def sweep_page(sweep: Sweep) -> str:
    summary = sweep.summary
    oos = summary.get("out_of_sample") or {}
    charts: dict[str, plots.Spec | None] = {"equity": None}
    search = sweep.curves[SEARCH]
    if search.values:
        keep = chart_points(search)
        lines = [
            plots.line(name, [at(sweep.curves[name], search.times[i]) for i in keep], colour)
            for (name, _), colour in zip(LEGS, plots.LINES, strict=False)
        ]
        title = "Out-of-sample equity, the test windows stitched"
        charts["equity"] = plots.spec(title, [search.times[i] for i in keep], lines)
    agree = ""
    wrote = (oos.get("search") or {}).get("return")
    if sweep.stitched_return is not None and wrote is not None:
        same = sweep.stitched_return == Decimal(str(wrote))
        agree = (
            "the curve stitched here from curves.jsonl ends at summary.json's out-of-sample "
            "return of the search to the last digit"
            if same
            else "the curve stitched here does not end at summary.json's return"
        )
    figures = [
        f"<td>{esc(label)}</td>"
        + percent((oos.get(key) or {}).get("return"))
        + percent((oos.get(key) or {}).get("max_drawdown"))
        + money(_d((oos.get(key) or {}).get("net_pnl")), True)
        for label, key in LEGS
    ]
    return "".join(
        [
            f'<p class="verdict"><b>{esc(summary.get("verdict", ""))}</b></p>',
            f'<p class="note">{esc(summary.get("walk_forward", ""))}; objective '
            f"{esc(summary.get('objective', ''))}; {esc(agree)}.</p>",
            '<div id="charts"><div class="chart" id="chart-equity" '
            'data-title="Out-of-sample equity, the test windows stitched"></div></div>',
            '<script type="application/json" id="chart-data">'
            + plots.page_json(charts)
            + "</script>",
            "<h2>Out of sample</h2>",
            table(["", "return", "max drawdown", "net PnL"], figures, "oos"),
            "<h2>Steps</h2>",
            _steps(summary),
            "<h2>The objective on each train window</h2>",
            _heatmap(sweep),
            "<h2>Trials</h2>",
            _trials(sweep),
        ]
    )


def _steps(summary: dict[str, Any]) -> str:
    rows = []
    for step in summary.get("steps") or []:
        chosen = ", ".join(f"{k}={v}" for k, v in (step.get("chosen") or {}).items())
        tests = step.get("test_return") or {}
        rows.append(
            f"<td>{esc(step.get('step'))}</td>"
            f"<td>{_window(step, 'train')}</td><td>{_window(step, 'test')}</td>"
            f"<td>{esc(chosen)}</td>"
            + _number(step.get("train_objective"))
            + "".join(percent(tests.get(name)) for name, _ in LEGS)
        )
    head = ["step", "train", "test", "chosen", "train objective", "search", "base", "hedged"]
    return table(head, rows, "steps")


def _window(step: dict[str, Any], kind: str) -> str:
    start, end = step.get(f"{kind}_start"), step.get(f"{kind}_end")
    if not start or not end:
        return "-"  # the next step has no test window yet
    return f"{esc(str(start)[:10])} to {esc(str(end)[:10])}"


def _heatmap(sweep: Sweep) -> str:
    """One row per parameter set, one column per step; each cell's colour from red
    (the lowest objective) through white to green (the highest); the set each step
    chose outlined."""
    values = [v for v in sweep.objective.values() if v is not None]
    if not values:
        return "<p>No train trial recorded.</p>"
    lo, hi = min(values), max(values)
    chosen = {str(s.get("step")): s.get("chosen_set") for s in sweep.summary.get("steps") or []}
    rows = []
    for number, params in sorted(sweep.sets.items()):
        cells = [f"<td>{number}</td><td>{esc(params)}</td>"]
        for step in sweep.steps:
            value = sweep.objective.get((step, number))
            outline = " chosen" if chosen.get(step) == number else ""
            if value is None:
                cells.append(f'<td class="num{outline}">-</td>')
                continue
            trial = sweep.train_trials.get((step, number))
            shown = f"{value * 100:+.2f}%"
            cells.append(
                f'<td class="num heat{outline}" style="background:{_colour(value, lo, hi)}" '
                f'data-exact="{esc(value)}">'
                + (trial_link(sweep.name, trial, shown) if trial else shown)
                + "</td>"
            )
        rows.append("".join(cells))
    scale = (
        f'<p class="scale"><span style="background:{_colour(lo, lo, hi)}">'
        f'{lo * 100:+.2f}% lowest</span> <span style="background:#fff">middle</span> '
        f'<span style="background:{_colour(hi, lo, hi)}">{hi * 100:+.2f}% highest</span>; '
        "outlined: the set the step chose</p>"
    )
    head = ["set", "parameters", *(f"step {s}" for s in sweep.steps)]
    return scale + table(head, rows, "heatmap")


def _trials(sweep: Sweep) -> str:
    """Every trial in the plan's order, each opening its page."""
    params = [p for p in sweep.summary.get("parameters", [])]
    rows = []
    for r in sweep.rows:
        chosen = ", ".join(f"{p}={r.get(p, '')}" for p in params) if r.get("kind") != "base" else ""
        rows.append(
            f"<td>{trial_link(sweep.name, r.get('trial', ''))}</td>"
            f"<td>{esc(r.get('kind'))}</td><td>{esc(r.get('step'))}</td>"
            f"<td>{esc(r.get('set') or '-')}</td><td>{esc(chosen or 'base config')}</td>"
            f"<td>{esc(r.get('window_start', '')[:10])} to {esc(r.get('window_end', '')[:10])}</td>"
            + _number(r.get("objective") or None)
            + percent(r.get("total.return") or None)
            + percent(r.get("baseline.total.return") or None)
        )
    head = ["trial", "kind", "step", "set", "parameters", "window", "objective", "return",
            "always hedged"]  # fmt: skip
    return table(head, rows, "trials")


def _colour(value: Decimal, lo: Decimal, hi: Decimal) -> str:
    # float: a colour, never money
    share = 0.5 if hi == lo else float((value - lo) / (hi - lo))
    if share < 0.5:
        fade = share * 2  # red (lowest) to white
        return f"rgb(239,{int(154 + 101 * fade)},{int(154 + 101 * fade)})"
    fade = (1 - share) * 2  # white to green (highest)
    return f"rgb({int(129 + 126 * fade)},{int(199 + 56 * fade)},{int(132 + 123 * fade)})"


def _number(value: object) -> str:
    if value is None:
        return '<td class="num">-</td>'
    return f'<td class="num" data-exact="{esc(value)}">{Decimal(str(value)) * 100:+.2f}%</td>'


def _d(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))
