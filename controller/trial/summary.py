"""The figures of a trial (``summary.json``) and the short text a person reads.

Events scored for detection are heel strike and toe off, the two that time the
stimulation. Stimulation figures are for the recorded (peroneal) channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.detect.events import EVENT_NAMES, DetectedEvent, Event
from controller.trial import metrics

SCORED_EVENTS = (Event.HEEL_STRIKE, Event.TOE_OFF)


@dataclass(frozen=True, slots=True)
class TrialFacts:
    """What a finished trial hands to the summary."""

    columns: Mapping[str, np.ndarray]
    true_events: Sequence[tuple[float, str]]
    detected: Sequence[DetectedEvent]
    period_s: float
    wall_s: float
    stopped_by: str
    faults: int
    clamped_commands: int
    interventions: Sequence[Mapping[str, Any]]
    stim_timeouts: int
    timing: Mapping[str, Any] | None = None  # ``DeadlineMonitor.figures`` of the loop


def _rounded(value: Any) -> Any:
    """Floats rounded to 3 decimals, recursively, for a readable and stable file."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _true_times(facts: TrialFacts, event: Event) -> np.ndarray:
    name = EVENT_NAMES[event]
    return np.array([t for t, e in facts.true_events if e == name])


def _detection(facts: TrialFacts, tolerance_s: float) -> dict[str, Any]:
    block: dict[str, Any] = {}
    matched = n_true = n_detected = 0
    for event in SCORED_EVENTS:
        truth = _true_times(facts, event)
        found = np.array([d.t_est_s for d in facts.detected if d.event == event])
        pairs = metrics.match_events(truth, found, tolerance_s)
        matched += len(pairs)
        n_true += truth.size
        n_detected += found.size
        errors = [found[j] - truth[i] for i, j in pairs]
        block[f"{EVENT_NAMES[event]}_error_ms"] = metrics.error_stats_ms(errors)
    block["recall"] = matched / n_true if n_true else None
    block["precision"] = matched / n_detected if n_detected else None
    latencies = [d.t_known_s - d.t_est_s for d in facts.detected if d.event in SCORED_EVENTS]
    block["latency_ms"] = metrics.error_stats_ms(latencies)
    return block


def _stimulation(facts: TrialFacts, strides: int, onset_window_s: float) -> dict[str, Any]:
    cols = facts.columns
    on = cols["stim_on"]
    onsets = metrics.rising_edges(cols["time_s"], on)
    errors, missed = metrics.onset_errors_s(
        onsets, _true_times(facts, Event.TOE_OFF), onset_window_s
    )
    charge = metrics.pulse_charge_uc(
        on, cols["amplitude_ma"], cols["pulse_width_us"], cols["frequency_hz"], facts.period_s
    )
    total = float(charge.sum())
    return {
        "onset_error_ms": metrics.error_stats_ms(errors),
        "missed_onsets": missed,
        "trains": int(onsets.size),
        "timeouts": facts.stim_timeouts,
        "on_time_fraction": float(on.mean()) if on.size else 0.0,
        "charge_uc_total": total,
        "charge_uc_per_stride": total / strides if strides else None,
    }


def _clearance(facts: TrialFacts, trim_fraction: float) -> dict[str, Any] | None:
    cols = facts.columns
    if "toe_clearance_mm" not in cols:
        return None
    args = (
        cols["time_s"],
        cols["toe_clearance_mm"],
        _true_times(facts, Event.TOE_OFF),
        _true_times(facts, Event.HEEL_STRIKE),
    )
    minima = metrics.swing_minima_mm(*args, trim_fraction=trim_fraction)
    whole_swing = metrics.swing_minima_mm(*args)
    stats: dict[str, Any] = {"median": None, "p5": None}
    if minima.size:
        stats = {"median": float(np.median(minima)), "p5": float(np.percentile(minima, 5))}
    return {
        "swings": int(minima.size),
        "toe_clearance_min_mm": stats,
        "toe_drag_events": int((whole_swing < 0.0).sum()),
    }


def summarize(
    facts: TrialFacts, tolerance_ms: float, onset_window_ms: float, trim_fraction: float
) -> dict[str, Any]:
    """The ``summary.json`` figures of a trial."""
    heel_strikes = _true_times(facts, Event.HEEL_STRIKE)
    strides = max(0, heel_strikes.size - 1)
    duration_s = facts.columns["time_s"].size * facts.period_s
    has_truth = bool(facts.true_events)
    summary = {
        "strides": strides if has_truth else None,
        "duration_s": duration_s,
        "stopped_by": facts.stopped_by,
        "real_time_factor": duration_s / facts.wall_s if facts.wall_s > 0 else None,
        "detector": _detection(facts, tolerance_ms / 1000.0) if has_truth else None,
        "stim": _stimulation(facts, strides, onset_window_ms / 1000.0),
        "clearance": _clearance(facts, trim_fraction),
        "watchdog": {
            "faults": facts.faults,
            "clamped_commands": facts.clamped_commands,
            "interventions": list(facts.interventions),
        },
        "timing": dict(facts.timing) if facts.timing is not None else None,
    }
    return _rounded(summary)


def _fmt(value: Any, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:g}{unit}"


def render_text(summary: Mapping[str, Any]) -> str:
    """A few lines for the terminal: what happened, in the figures a user looks at first."""
    det, stim, clear, dog = (
        summary["detector"],
        summary["stim"],
        summary["clearance"],
        summary["watchdog"],
    )
    lines = [
        f"trial: {_fmt(summary['duration_s'], ' s')}, {_fmt(summary['strides'])} strides, "
        f"{_fmt(summary['real_time_factor'])}x real time ({summary['stopped_by']})",
    ]
    if det:
        hs, to = det["heel_strike_error_ms"], det["toe_off_error_ms"]
        lines.append(
            f"detector: recall {_fmt(det['recall'])}, precision {_fmt(det['precision'])}, "
            f"heel strike error {_fmt(hs['median'], ' ms')} (p95 |e| {_fmt(hs['p95'], ' ms')}), "
            f"toe off error {_fmt(to['median'], ' ms')} (p95 |e| {_fmt(to['p95'], ' ms')})"
        )
    onset = stim["onset_error_ms"]
    lines.append(
        f"stimulation: {stim['trains']} trains, onset vs true toe off "
        f"{_fmt(onset['median'], ' ms')}"
        f" (p95 |e| {_fmt(onset['p95'], ' ms')}), on {stim['on_time_fraction'] * 100:.1f} % "
        f"of the time, {_fmt(stim['charge_uc_per_stride'], ' uC')} per stride"
    )
    if clear:
        mtc = clear["toe_clearance_min_mm"]
        lines.append(
            f"clearance: minimum toe clearance median {_fmt(mtc['median'], ' mm')}, "
            f"p5 {_fmt(mtc['p5'], ' mm')}; toe drags in {clear['toe_drag_events']} of "
            f"{clear['swings']} swings"
        )
    lines.append(
        f"watchdog: {dog['faults']} faults, {dog['clamped_commands']} commands not passed as asked"
    )
    if summary.get("timing"):
        lines.append(render_timing(summary["timing"]))
    return "\n".join(lines)


def render_timing(timing: Mapping[str, Any]) -> str:
    """One line on how the loop kept time (on a virtual clock: that it could not miss)."""
    warm = f"warm-up {_fmt(timing['warm_up_ms'], ' ms')} before the loop"
    if timing["clock"] == "virtual":
        return f"timing: virtual clock, every deadline met by construction; {warm}"
    late, lat = timing["lateness_us"], timing["latency_us"]
    return (
        f"timing: {_fmt(timing['period_ms'], ' ms')} period, lateness median "
        f"{_fmt(late['median'], ' us')}, p99 {_fmt(late['p99'], ' us')}, max "
        f"{_fmt(late['max'], ' us')}; {timing['misses']} missed periods "
        f"({_fmt(timing['missed_percent'], ' %')}), {timing['overruns']} overruns; sensor to "
        f"command p99 {_fmt(lat['p99'], ' us')}; {warm}"
    )
