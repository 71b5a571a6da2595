"""``orchestrator dashboard``: a local web app over the run and sweep folders.

Read-only over what runs leave behind (journal snapshots taken as ``orchestrator
status`` takes them, ``summary.json``, ``traces.jsonl``); a running run is steered only
through its control folder (orchestrator/control.py), and only with the token.

- folders.py: the run folders, their journals read a page at a time, cached by the
  journal files' signature (what the live updates watch too)
- money.py: equity, drawdown, funding, fees, trade history and analytics, in Decimal
- sweeps.py: a sweep's folder (stitched out-of-sample curve, steps, objectives, trials)
- market.py: the screen of the recorded data's pairs and the funding heatmap
- live_market.py: on a live config, the venue's market read in the background
- pages.py, money_page.py, sweep_page.py, trial_page.py: the HTML, server-rendered,
  every value escaped (charts: specs from orchestrator/output/plots.py)
- app.py: the routes (Starlette), the server-sent events, the controls
- serve.py: uvicorn on 127.0.0.1, the URL printed, Ctrl-C stops it
"""
