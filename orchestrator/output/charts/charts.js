// The charts of the dashboard and of a run's chart.html (which inlines this file and
// uPlot): each <div class="chart" id="chart-NAME"> is drawn from the spec under NAME in
// the page's <script type="application/json" id="chart-data"> (orchestrator/output/plots.py
// says what a spec holds). Values arrive as exact decimal text: they become numbers only
// to be placed; hovering shows the text itself in the legend cell's tooltip.
"use strict";

const FundingCharts = (() => {
  const drawn = {};  // NAME -> its uPlot, for the tests and the console

  function shown(unit, v) {
    if (v == null) return "-";
    if (unit === "percent") return v.toFixed(4) + "%";
    return v.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
  }

  function tick(unit, v) {  // an axis label: no more digits than the ticks need
    if (unit === "percent") return +v.toFixed(4) + "%";
    return v.toLocaleString("en-US", {maximumFractionDigits: 2});
  }

  function seriesOf(spec, s) {
    const common = {
      label: s.label, stroke: s.colour, value: (u, v) => shown(spec.unit, v),
    };
    if (s.marks) {
      // Points only, no line between them: entries and exits.
      return Object.assign(common, {
        width: 0, fill: s.colour, paths: () => null,
        points: {show: true, size: 8, width: 1, stroke: s.colour, fill: s.colour},
      });
    }
    return Object.assign(common, {width: 1.5, spanGaps: true, points: {show: false}});
  }

  // The legend's label in its series' colour (uPlot draws it in the page's text colour),
  // and the exact text of the hovered point as the value cell's tooltip.
  function colourLegend(u, spec) {
    const rows = u.root.querySelectorAll(".u-legend .u-series");
    spec.series.forEach((s, i) => {
      const label = rows[i + 1] && rows[i + 1].querySelector(".u-label");
      if (label) label.style.color = s.colour;
    });
  }

  function exactTooltips(u, spec) {
    const rows = u.root.querySelectorAll(".u-legend .u-series");
    const at = u.cursor.idx;
    spec.series.forEach((s, i) => {
      const cell = rows[i + 1] && rows[i + 1].querySelector(".u-value");
      if (!cell) return;
      const exact = at == null ? null : s.values[at];
      const note = at == null || !s.notes ? null : s.notes[at];
      cell.title = exact == null ? "" : exact + (note ? " (" + note + ")" : "");
      cell.dataset.exact = exact == null ? "" : exact;
    });
  }

  function draw(box, spec) {
    box.textContent = "";
    if (!spec) {
      const p = document.createElement("p");
      p.className = "note";
      p.textContent = (box.dataset.title || "chart") + ": nothing to draw";
      box.appendChild(p);
      return null;
    }
    const data = [spec.x].concat(
      spec.series.map((s) => s.values.map((v) => (v == null ? null : Number(v)))));
    const opts = {
      title: spec.title, width: Math.min(box.clientWidth || 1100, 1300), height: 240,
      series: [{}].concat(spec.series.map((s) => seriesOf(spec, s))),
      scales: {x: {time: true}},
      // The run's clock is UTC: so is the time axis, wherever the page is opened.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      cursor: {drag: {x: true, y: false}},  // drag to zoom, double-click to reset
      axes: [{}, {size: 80, values: (u, ticks) => ticks.map((v) => tick(spec.unit, v))}],
      hooks: {setLegend: [(u) => exactTooltips(u, spec)]},
    };
    const chart = new uPlot(opts, data, box);  // clicking a legend entry hides its series
    colourLegend(chart, spec);
    return chart;
  }

  function drawAll() {
    const holder = document.getElementById("chart-data");
    if (!holder || typeof uPlot === "undefined") return;
    const charts = JSON.parse(holder.textContent).charts || {};
    for (const box of document.querySelectorAll("div.chart[id^='chart-']")) {
      const name = box.id.slice("chart-".length);
      drawn[name] = draw(box, charts[name]);
    }
  }

  return {drawAll: drawAll, drawn: drawn};
})();
