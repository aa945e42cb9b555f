"""Parameter sweeps: many independent seeded trials, resumable, on local processes or a
Dask cluster, tabulated and ranked by an objective (``fes sweep``)."""
