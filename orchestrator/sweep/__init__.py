"""Walk-forward parameter sweeps: ``orchestrator sweep sweep.yaml``.

A sweep file names a base run config, the settings to vary (grid or random), the
walk-forward windows and the objective. For each step every parameter set replays
the train window, the best is replayed on the test window after it, which it
never saw; the report stitches the test windows into one out-of-sample result
beside the always-hedged baseline and the base config. Trials run on Dask: a
local cluster by default, or an existing one (``scheduler: tcp://HOST:8786``).

Modules: ``spec`` (the sweep file's schema), ``yamlfile`` (reading it, errors at
their YAML path), ``params`` (the settings swept and the sets tried), ``windows``
(walk-forward windows), ``plan`` (everything checked before anything starts),
``trial`` (one trial, a pure function; the per-worker data cache), ``engine``
(in process or Dask), ``search`` (the walk-forward loop), ``record`` (the sweep
folder, resume), ``report`` and ``chart`` (what it says), ``app`` (the command).
"""
