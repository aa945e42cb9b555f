"""Making and saving figures with matplotlib's object API on the Agg canvas: no pyplot,
no display needed (headless CI), and the report's style applied only inside ``styled()``,
never to matplotlib's global settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from controller.validation import ConfigError

DPI = 110
STYLE: dict[str, Any] = {
    "font.size": 10.0,
    "axes.titlesize": 11.0,
    "axes.labelsize": 10.0,
    "legend.fontsize": 8.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
# Colours used for the same thing in every figure (colour-blind safe, Okabe-Ito).
TRUE_COLOUR = "#009E73"
DETECTED_COLOUR = "#D55E00"
HEEL_COLOUR = "#CC79A7"
STIM_COLOUR = "#0072B2"
DRAG_COLOUR = "#D55E00"
SWING_SHADE = "#E69F00"


def matplotlib_module() -> ModuleType:
    """matplotlib, imported; a usage error without it (``fes report`` asks before it
    makes its ``--out`` folder, so that a refusal leaves nothing behind)."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(
            "fes report", ["needs matplotlib: pip install 'fes-timing[report]'"]
        ) from None
    return matplotlib


@contextmanager
def styled() -> Iterator[None]:
    """The report's style for the figures made inside; a usage error without matplotlib."""
    with matplotlib_module().rc_context(STYLE):  # type: ignore[arg-type]  # valid rc names
        yield


def new_figure(width_in: float, height_in: float, rows: int = 1, cols: int = 1) -> Any:
    """A matplotlib ``Figure`` (Agg) with a grid of axes; returns ``(figure, axes)``."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    return figure, axes


def save(figure: Any, path: Path) -> Path:
    """Write ``figure`` as a PNG; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def histogram(
    ax: Any,
    groups: dict[str, Any],
    xlabel: str,
    ylabel: str,
    zero_label: str,
    unit: str,
) -> None:
    """Histograms of one or more groups of values on shared bins, each with its median
    (dashed); the zero reference only where it is near the data, so that it does not
    squash the bars into a corner."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    every = np.concatenate([np.asarray(v, dtype=float) for v in groups.values()] or [np.empty(0)])
    if every.size == 0:
        ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", va="center",
                color="0.4")
        return
    bins = np.histogram_bin_edges(every, bins=min(30, max(5, every.size // 3)))
    single = len(groups) == 1
    for label, values in groups.items():
        values = np.asarray(values, dtype=float)
        if values.size == 0:
            continue
        bars = ax.hist(values, bins=bins, alpha=0.8 if single else 0.55, label=label,
                       color=STIM_COLOUR if single else None)[2]
        median = float(np.median(values))
        colour = DETECTED_COLOUR if single else bars[0].get_facecolor()
        ax.axvline(median, color=colour, linestyle="--", linewidth=1.6,
                   label=f"median {median:.1f} {unit}" + ("" if single else f" ({label})"))
    low, high = float(every.min()), float(every.max())
    margin = max(high - low, 1.0) * 0.5
    if low - margin <= 0.0 <= high + margin:
        ax.axvline(0.0, color="black", linewidth=1.0, label=zero_label)
    legend(ax, loc="best")


def legend(ax: Any, **options: Any) -> None:
    """The axes' legend, if anything on them has a label: a short trial may have no
    stride to draw, and matplotlib would warn on the terminal about an empty legend."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**options)
