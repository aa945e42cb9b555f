"""The figures of one trial: what the detector saw, what was stimulated when, what the
foot did, and how clearance and stimulation timing were distributed over the trial.

Every figure is stride-normalised (``controller.report.trial_data``): each stride is a
thin line, the bold line is the mean, so a reader sees the typical stride and its spread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from controller.report.canvas import (
    DETECTED_COLOUR,
    DRAG_COLOUR,
    HEEL_COLOUR,
    STIM_COLOUR,
    SWING_SHADE,
    TRUE_COLOUR,
    histogram,
    legend,
    new_figure,
    save,
)
from controller.report.trial_data import (
    CYCLE_PERCENT,
    TrialData,
    cycle_extremes,
    cycle_position,
    stride_matrix,
)
from controller.trial import metrics

STRIDE_LINE = {"color": "0.55", "linewidth": 0.6, "alpha": 0.45}
#: A trial of more strides draws only some of them (``stride_step``): a 3,000 s trial
#: has 2,500, whose lines would make one grey block and take most of the report's time
#: (12,500 lines: 20 s of the 33 s a profiled report took). Means, counts and histograms
#: are of every stride.
MAX_STRIDE_LINES = 300


def stride_step(strides: int) -> int:
    """Every how many strides one is drawn as a thin line: 1 up to ``MAX_STRIDE_LINES``
    strides, then enough that at most that many are drawn."""
    return max(1, -(-strides // MAX_STRIDE_LINES))


def drawn_strides(matrix: np.ndarray) -> np.ndarray:
    """The strides (rows of ``matrix``) drawn as lines: all of them up to
    ``MAX_STRIDE_LINES``, then one in ``stride_step`` and the outermost (the least or
    the greatest at some point of the cycle), so that an odd stride still shows as one."""
    every = np.arange(len(matrix))
    step = stride_step(len(matrix))
    if step == 1:
        return every
    outermost = np.concatenate([matrix.argmin(axis=0), matrix.argmax(axis=0)])
    return np.union1d(every[::step], outermost)


def drawing_note(strides: int) -> str:
    """For the report: what the figures of a trial of more than ``MAX_STRIDE_LINES``
    strides draw (nothing to say for fewer)."""
    step = stride_step(strides)
    if step == 1:
        return ""
    return (f" With more than {MAX_STRIDE_LINES} strides, one stride in {step} and the "
            "outermost ones (the least or the greatest at some point of the cycle) are drawn "
            "as lines (and their events marked), over a shading of the range of every sample of "
            "all strides at each point of the cycle (the least and the greatest sample "
            "nearest it: a spike of one sample in any stride shows); the means, counts and "
            "histograms are of all strides.")


def _strides(ax: Any, data: TrialData, values: np.ndarray, label: str,
             colour: str = "black") -> np.ndarray:
    """Each stride of ``values`` as a thin line and their mean in bold; returns the
    strides (``stride_matrix``). Past ``MAX_STRIDE_LINES`` strides only some are drawn
    (``drawn_strides``), over a shading of the range of every sample of every stride
    (``cycle_extremes``); the mean is of them all."""
    matrix = stride_matrix(data, values)
    step = stride_step(len(matrix))
    if step > 1:
        low, high = cycle_extremes(data, values)
        ax.fill_between(CYCLE_PERCENT, np.fmin(low, matrix.min(axis=0)),
                        np.fmax(high, matrix.max(axis=0)), color=STRIDE_LINE["color"],
                        alpha=0.15, linewidth=0.0,
                        label=f"range of all {len(matrix)} strides; "
                              f"lines: 1 in {step} and the outermost")
    for row in matrix[drawn_strides(matrix)]:
        ax.plot(CYCLE_PERCENT, row, **STRIDE_LINE)
    if len(matrix):
        ax.plot(CYCLE_PERCENT, matrix.mean(axis=0), label=f"mean of {len(matrix)} strides",
                color=colour, linewidth=2.0, zorder=4)
    ax.set_ylabel(label)
    ax.set_xlim(0.0, 100.0)
    return matrix


def _swing_shade(ax: Any, data: TrialData) -> None:
    _, toe_off = cycle_position(data, data.times("true", "toe_off"))
    if toe_off.size:
        ax.axvspan(float(np.mean(toe_off)), 100.0, color=SWING_SHADE, alpha=0.15,
                   label="true swing (mean toe off to heel strike)")


def _gait_axis(ax: Any) -> None:
    ax.set_xlabel("gait cycle, % of stride (0 and 100 = true heel strike)")


def _note(ax: Any, text: str, y: float) -> None:
    """A boxed note at the right edge of ``ax``, ``y`` up from its bottom (0-1)."""
    ax.text(0.99, y, text, transform=ax.transAxes, ha="right", va="bottom", fontsize=8.5,
            bbox={"facecolor": "white", "alpha": 0.9, "edgecolor": "0.8"})


def gyro_strides(data: TrialData, path: Path) -> Path:
    """Shank gyro per stride with the true and the detected toe offs and heel strikes."""
    figure, axes = new_figure(8.0, 4.8)
    ax = axes[0, 0]
    matrix = _strides(ax, data, data.columns["gyro_rad_s"], "shank angular velocity, rad/s")
    drawn = drawn_strides(matrix)
    marks = (
        ("true", "toe_off", "^", TRUE_COLOUR, "true toe off"),
        ("detected", "toe_off", "x", DETECTED_COLOUR, "detected toe off"),
        ("detected", "heel_strike", "+", HEEL_COLOUR, "detected heel strike"),
    )
    for source, event, marker, colour, label in marks:
        index, percent = cycle_position(data, data.times(source, event))
        on_drawn = np.isin(index, drawn)  # the events of the strides drawn
        index, percent = index[on_drawn], percent[on_drawn]
        on_curve = [
            np.interp(p, CYCLE_PERCENT, matrix[i]) for i, p in zip(index, percent, strict=True)
        ]
        ax.scatter(percent, on_curve, marker=marker, s=60, color=colour, label=label, zorder=5,
                   linewidths=1.6, alpha=0.8)
    errors = data.summary.get("detector") or {}
    notes = []
    for key, name in (("toe_off_error_ms", "toe off"), ("heel_strike_error_ms", "heel strike")):
        stats = errors.get(key) or {}
        if stats.get("median") is not None:
            notes.append(f"{name} error median {stats['median']:+.0f} ms, "
                         f"p95 |error| {stats['p95']:.0f} ms")
    ax.set_title(f"Shank gyro per stride with detected and true events ({data.title()})"
                 + ("\n" + "; ".join(notes) if notes else ""))
    _gait_axis(ax)
    legend(ax, loc="upper left")
    return save(figure, path)


def stim_envelope(data: TrialData, path: Path) -> Path:
    """Delivered amplitude and tibialis anterior activation against gait phase."""
    figure, axes = new_figure(8.0, 6.0, rows=2)
    top, bottom = axes[0, 0], axes[1, 0]
    delivered_ma = data.columns["amplitude_ma"] * data.columns["stim_on"]
    _swing_shade(top, data)
    _strides(top, data, delivered_ma, "delivered amplitude, mA", STIM_COLOUR)
    top.set_title(f"Stimulation envelope against gait phase ({data.title()})")
    legend(top, loc="upper left")
    _swing_shade(bottom, data)
    _strides(bottom, data, data.columns["ta_activation"], "tibialis anterior activation, 0-1")
    _gait_axis(bottom)
    onset = (data.summary.get("stim") or {}).get("onset_error_ms") or {}
    if onset.get("median") is not None:
        _note(top, f"onset vs true toe off: median {onset['median']:+.0f} ms, "
                   f"p95 |error| {onset['p95']:.0f} ms", y=0.5)
    return save(figure, path)


def _drag_strides(data: TrialData, clearance: np.ndarray) -> np.ndarray:
    """Strides whose swing (from the true toe off) dips below the ground."""
    index, percent = cycle_position(data, data.times("true", "toe_off"))
    dragged = np.zeros(len(clearance), dtype=bool)
    for stride, start in zip(index, percent, strict=True):
        if stride < len(clearance):
            in_swing = CYCLE_PERCENT >= start  # noqa: SIM300
            dragged[stride] = bool((clearance[stride][in_swing] < 0.0).any())
    return dragged


def ankle_clearance(data: TrialData, path: Path) -> Path:
    """Ankle angle and toe clearance per stride; strides with a toe drag in red."""
    figure, axes = new_figure(8.0, 6.0, rows=2)
    top, bottom = axes[0, 0], axes[1, 0]
    for ax in (top, bottom):
        _swing_shade(ax, data)
    _strides(top, data, data.columns["ankle_angle_deg"], "ankle angle, deg (+ dorsiflexion)")
    clearance = _strides(bottom, data, data.columns["toe_clearance_mm"], "toe clearance, mm")
    dragged = _drag_strides(data, clearance)
    drawn = clearance[dragged][drawn_strides(clearance[dragged])]
    for row in drawn:
        bottom.plot(CYCLE_PERCENT, row, color=DRAG_COLOUR, linewidth=1.0)
    if dragged.any():
        label = f"{int(dragged.sum())} strides with a toe drag"
        if len(drawn) < dragged.sum():
            label += f" ({len(drawn)} drawn)"
        bottom.plot([], [], color=DRAG_COLOUR, label=label)
    bottom.axhline(0.0, color="black", linewidth=0.8)
    top.axhline(0.0, color="black", linewidth=0.8)
    top.set_title(f"Ankle angle and toe clearance per stride ({data.title()})")
    legend(top, loc="lower left")
    legend(bottom, loc="upper left")
    _gait_axis(bottom)
    return save(figure, path)


def distributions(data: TrialData, path: Path) -> Path:
    """Histograms of minimum toe clearance per swing and of stimulation onset error."""
    figure, axes = new_figure(9.0, 4.0, cols=2)
    left, right = axes[0, 0], axes[0, 1]
    cols, metric_config = data.columns, data.config.get("metrics", {})
    t = cols["time_s"]
    toe_off, heel = data.times("true", "toe_off"), data.heel_strikes_s
    minima = metrics.swing_minima_mm(
        t, cols["toe_clearance_mm"].astype(float), toe_off, heel,
        trim_fraction=float(metric_config.get("clearance_trim_fraction", 0.0)),
    )
    histogram(left, {"swings": minima}, "minimum toe clearance in mid swing, mm", "swings",
              "0 mm: toe drag", "mm")
    left.set_title(f"Toe clearance, {minima.size} swings")
    onsets = metrics.rising_edges(t, cols["stim_on"].astype(float))
    window_s = float(metric_config.get("onset_window_ms", 400.0)) / 1000.0
    errors, missed = metrics.onset_errors_s(onsets, toe_off, window_s)
    histogram(right, {"onsets": errors * 1000.0}, "stimulation onset minus true toe off, ms",
              "strides", "0 ms: onset at toe off", "ms")
    right.set_title(f"Onset timing, {errors.size} onsets ({missed} toe offs without one)")
    figure.suptitle(data.title())
    return save(figure, path)


TRIAL_FIGURES: tuple[tuple[str, str, Callable[[TrialData, Path], Path]], ...] = (
    ("gyro-strides.png", "Shank gyro per stride, detected and true events", gyro_strides),
    ("stim-envelope.png", "Stimulation envelope against gait phase", stim_envelope),
    ("ankle-clearance.png", "Ankle angle and toe clearance per stride", ankle_clearance),
    ("distributions.png", "Toe clearance and onset error distributions", distributions),
)
