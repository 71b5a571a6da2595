// The dashboard's script: live updates (server-sent events), the charts (uPlot and
// charts.js, shipped in the package), the controls. No framework, nothing fetched from elsewhere.
"use strict";

function drawCharts() {
  // Drawn by the charts' own script (static/charts/charts.js), as a run's chart.html is.
  if (typeof FundingCharts !== "undefined") FundingCharts.drawAll();
}

function refresh() {
  // The page as the server renders it now, swapped in (scroll and filters kept).
  return fetch(location.href, {headers: {Accept: "text/html"}})
    .then((r) => r.text())
    .then((text) => {
      const fresh = new DOMParser().parseFromString(text, "text/html").getElementById("content");
      const main = document.getElementById("content");
      if (!fresh || !main) return;
      // What the user typed and the run's last answer survive the swap.
      const kept = ["token", "control-answer"].map((id) => document.getElementById(id));
      const typed = kept[0] ? kept[0].value : "";
      const said = kept[1] ? kept[1].textContent : "";
      const editing = {};
      for (const input of document.querySelectorAll("#thresholds input[name]")) {
        if (input.value !== input.dataset.was) editing[input.name] = input.value;
      }
      main.innerHTML = fresh.innerHTML;
      const token = document.getElementById("token");
      if (token) token.value = typed;
      for (const [name, value] of Object.entries(editing)) {
        const input = document.querySelector("#thresholds input[name='" + name + "']");
        if (input) input.value = value;
      }
      const answer = document.getElementById("control-answer");
      if (answer) answer.textContent = said;
      drawCharts();
      wireControls();
      document.body.dataset.updates = String(Number(document.body.dataset.updates) + 1);
    });
}

function listen() {
  const live = document.getElementById("live");
  const source = new EventSource(document.body.dataset.events);
  source.addEventListener("hello", () => { live.textContent = "live"; live.className = "on"; });
  source.addEventListener("change", () => {
    refresh().then(() => { live.textContent = "live: updated " + new Date().toLocaleTimeString(); });
  });
  source.onerror = () => { live.textContent = "live: reconnecting"; live.className = ""; };
}

function ask(run, body) {
  // Looked up again when the answer comes: a live update may have replaced the page.
  const say = (text) => { document.getElementById("control-answer").textContent = text; };
  say("asking the run…");
  fetch("/api/runs/" + encodeURIComponent(run) + "/control", {
    method: "POST",
    headers: {"Content-Type": "application/json",
              "X-Dashboard-Token": document.getElementById("token").value},
    body: JSON.stringify(body),
  }).then((r) => r.json()).then((j) => {
    say(j.error ? "refused: " + j.error : j.asked + ": " + j.answer);
  });
}

function wireControls() {
  for (const button of document.querySelectorAll("#controls button[data-command]")) {
    button.onclick = () => {
      const body = {command: button.dataset.command, close_all: button.dataset.closeAll === "true"};
      if (button.dataset.pair) body.pair = button.dataset.pair;
      ask(button.dataset.run, body);
    };
  }
  const form = document.getElementById("thresholds");
  if (form) {
    form.onsubmit = (event) => {
      event.preventDefault();
      // Only what the user changed: the run checks it by the config's own rules.
      const settings = {};
      for (const input of form.querySelectorAll("input[name]")) {
        if (input.value.trim() !== input.dataset.was) settings[input.name] = input.value.trim();
      }
      if (Object.keys(settings).length === 0) {
        document.getElementById("control-answer").textContent = "nothing changed in the form";
        return;
      }
      ask(form.dataset.run, {command: "set", settings: settings});
    };
  }
}

document.addEventListener("DOMContentLoaded", () => { drawCharts(); wireControls(); listen(); });
