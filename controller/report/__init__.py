"""``fes report``: PNG figures (matplotlib, Agg) and a short ``report.md`` for a trial or a
sweep folder."""
