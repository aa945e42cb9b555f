"""The figures of a trial (``summary.json``) and the short text a person reads.

Events scored for detection are heel strike and toe off, the two that time the
stimulation. Stimulation figures come per recorded channel (``stim.channels``), each
scored against the true events its trigger and stop aim at; the peroneal channel's
figures are repeated at the top of ``stim``. Charge counts every pulse actually
delivered, at the instant the pulse rule of ``controller.pulses`` fires it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.eventlog import detected_columns, event_times
from controller.events import EVENT_NAMES, DetectedEvent, Event
from controller.quantiles import median_and_percentiles
from controller.stim.scheduler import ChannelReport
from controller.trial import metrics
from controller.trial.recorder import stim_column_prefix
from controller.trial.scores import LOST_COUNTED, ColumnScores, WholeColumns
from sim.limb import MUSCLES

SCORED_EVENTS = (Event.HEEL_STRIKE, Event.TOE_OFF)


@dataclass(frozen=True, slots=True)
class TrialFacts:
    """What a finished trial hands to the summary."""

    columns: Mapping[str, np.ndarray]  # whole; unused (may be empty) with ``scores``
    true_events: Sequence[tuple[float, str]]
    detected: Sequence[DetectedEvent]
    period_s: float
    wall_s: float
    stopped_by: str
    faults: int
    clamped_commands: int
    interventions: Sequence[Mapping[str, Any]]
    stim_timeouts: int
    stim_channels: Sequence[ChannelReport] = ()
    timing: Mapping[str, Any] | None = None  # ``DeadlineMonitor.figures`` of the loop
    # What is scored per sample, if not from ``columns`` (a long simulated trial's rows,
    # scored as they passed: ``controller.trial.scores.StreamedColumns``).
    scores: ColumnScores | None = None
    # When the watchdog latched its first fault, on the host's monotonic clock (None
    # without one): a board's log, a system trace or a test's record of the threads'
    # waits for a CPU can be set beside it, as the board block's fault times.
    fault_monotonic_s: float | None = None

    def scored(self) -> ColumnScores:
        """``scores``, or the figures of ``columns``."""
        if self.scores is not None:
            return self.scores
        return WholeColumns(self.columns, self.period_s)


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
    return event_times(facts.true_events, event)


def _detection(facts: TrialFacts, tolerance_s: float) -> dict[str, Any]:
    block: dict[str, Any] = {}
    matched = n_true = n_detected = 0
    codes, known_s, est_s = detected_columns(facts.detected)
    for event in SCORED_EVENTS:
        truth = _true_times(facts, event)
        found = est_s[codes == int(event)]
        errors = metrics.matched_errors(truth, found, tolerance_s)
        matched += errors.size
        n_true += truth.size
        n_detected += found.size
        block[f"{EVENT_NAMES[event]}_error_ms"] = metrics.error_stats_ms(errors)
    block["recall"] = matched / n_true if n_true else None
    block["precision"] = matched / n_detected if n_detected else None
    scored = np.isin(codes, [int(event) for event in SCORED_EVENTS])
    latencies = (known_s - est_s)[scored]
    block["latency_ms"] = metrics.error_stats_ms(latencies)
    return block


def _edge_errors_s(
    facts: TrialFacts, edges_s: np.ndarray, reference: Event | None, window_s: float
) -> tuple[dict[str, float | None], int | None]:
    """Error stats of ``edges_s`` against the true ``reference`` events, and how many of
    those events had no edge within ``window_s``; no reference, no figures."""
    if reference is None:
        return metrics.error_stats_ms([]), None
    errors, missed = metrics.onset_errors_s(edges_s, _true_times(facts, reference), window_s)
    return metrics.error_stats_ms(errors), missed


def _channel_block(
    facts: TrialFacts,
    prefix: str,
    report: ChannelReport | None,
    strides: int,
    onset_window_s: float,
    scored: bool = True,
) -> dict[str, Any]:
    """Timing and charge of one recorded channel (columns ``prefix`` + stim columns).

    Without a report (stimulation off, or a caller that has none) the channel is scored
    as a peroneal channel against toe off and heel strike, unless ``scored`` is False
    (the peroneal channel does not stimulate in this trial's mode).
    """
    cols = facts.scored()
    # Edge times are scored against true events only: a trial without (a real board's)
    # keeps no times of its trains' edges, only their count (StreamedColumns).
    onsets, ends = (cols.edges(prefix + "stim_on") if len(facts.true_events)
                    else (np.zeros(0), np.zeros(0)))
    onset_ref = report.onset_reference if report else Event.TOE_OFF if scored else None
    offset_ref = report.offset_reference if report else Event.HEEL_STRIKE if scored else None
    lead_s = report.onset_lead_s if report else 0.0
    delay_s = report.offset_delay_s if report else 0.0
    onset_error, missed = _edge_errors_s(facts, onsets, onset_ref, lead_s + onset_window_s)
    offset_error, _ = _edge_errors_s(facts, ends, offset_ref, delay_s + onset_window_s)
    charge = cols.charge(prefix, _true_times(facts, Event.HEEL_STRIKE))
    total = charge.total_uc
    per_stride = charge.per_stride_uc
    # What the channel's output drives in the simulated limb (whose truth the trial
    # holds: fes sim, or a board emulator), "none" when nothing: the charge and timing
    # below are then of pulses delivered to no simulated muscle. None on a real board.
    muscle = (MUSCLES.get(report.channel, "none")
              if report is not None and cols.has("ta_activation") else None)
    return {
        "channel": report.channel if report else None,
        "simulated_muscle": muscle,
        "trigger": report.trigger if report else None,
        "onset_reference": EVENT_NAMES[onset_ref] if onset_ref else None,
        "onset_error_ms": onset_error,
        "missed_onsets": missed,
        "offset_reference": EVENT_NAMES[offset_ref] if offset_ref else None,
        "offset_error_ms": offset_error,
        "trains": cols.trains(prefix + "stim_on"),
        "timeouts": report.timeouts if report else facts.stim_timeouts,
        "unconfirmed_predictions": report.unconfirmed if report else 0,
        "refused_triggers": report.refused if report else 0,
        "on_time_fraction": cols.mean(prefix + "stim_on"),
        "pulses": charge.pulses,
        "charge_uc_total": total,
        "charge_uc_per_stride": total / strides if strides else None,
        "charge_uc_stride_max": float(per_stride.max()) if per_stride.size else None,
        "charge_uc_per_phase_max": charge.phase_max_uc,
    }


def _activation_at_toe_off(facts: TrialFacts) -> dict[str, float | None] | None:
    """The simulated tibialis anterior's activation at each true toe off (limb truth)."""
    cols = facts.scored()
    if not cols.has("ta_activation"):
        return None
    return _median_p5(cols.first_at_or_after("ta_activation", _true_times(facts, Event.TOE_OFF)))


#: The peroneal figures repeated at the top of the ``stim`` block, where they always were.
PERONEAL_KEYS = (
    "onset_error_ms", "missed_onsets", "trains", "timeouts", "on_time_fraction",
    "charge_uc_total", "charge_uc_per_stride",
)


def _stimulation(facts: TrialFacts, strides: int, onset_window_s: float) -> dict[str, Any]:
    reports = {r.name: r for r in facts.stim_channels}
    channels = {
        name: _channel_block(facts, stim_column_prefix(name), report, strides, onset_window_s)
        for name, report in reports.items()
    }
    peroneal = channels.get("peroneal") or _channel_block(
        facts, "", None, strides, onset_window_s, scored=not reports
    )
    block = {key: peroneal[key] for key in PERONEAL_KEYS}
    block["channels"] = channels
    block["ta_activation_at_toe_off"] = _activation_at_toe_off(facts)
    return block


def _clearance(facts: TrialFacts, trim_fraction: float) -> dict[str, Any] | None:
    cols = facts.scored()
    if not cols.has("toe_clearance_mm"):
        return None
    toe_offs = _true_times(facts, Event.TOE_OFF)
    heel_strikes = _true_times(facts, Event.HEEL_STRIKE)
    minima = cols.swing_minima("toe_clearance_mm", toe_offs, heel_strikes, trim_fraction)
    whole_swing = cols.swing_minima("toe_clearance_mm", toe_offs, heel_strikes, 0.0)
    block: dict[str, Any] = {
        "swings": int(minima.size),
        "toe_clearance_min_mm": _median_p5(minima),
        "toe_drag_events": int((whole_swing < 0.0).sum()),
    }
    if cols.has("foot_slap") and cols.has("ankle_angle_deg"):
        landing = cols.last_before("ankle_angle_deg", heel_strikes)
        block["foot_slap_events"] = int(cols.total("foot_slap"))
        block["ankle_at_heel_strike_deg"] = _median_p5(landing)
    if cols.has("forefoot_impact_rad_s"):
        # Every heel-first landing, slap or not: the slap count hangs on a threshold and
        # a time window, the speed itself does not.
        impacts = cols.positive("forefoot_impact_rad_s")
        median, p95 = median_and_percentiles(impacts, 95) if impacts.size else (None, None)
        block["forefoot_impact_rad_s"] = {"landings": int(impacts.size), "median": median,
                                          "p95": p95}
    return block


def strides_not_stimulated(facts: TrialFacts, decided_s: float | None) -> int | None:
    """What the gyroscope's mounting check cost (``docs/detection.md``): the true swings
    (toe off to the next heel strike, or the end of the trial) that began before its
    verdict at ``decided_s`` (all of them while it was still checking) in which the
    peroneal channel delivered nothing. None without the simulated patient's truth."""
    if not len(facts.true_events):
        return None
    toe_offs = _true_times(facts, Event.TOE_OFF)
    if decided_s is not None:
        toe_offs = toe_offs[toe_offs < decided_s]
    heel_strikes = np.sort(_true_times(facts, Event.HEEL_STRIKE))
    following = np.searchsorted(heel_strikes, toe_offs, side="right")
    ends = np.append(heel_strikes, np.inf)[following]
    pulses = facts.scored().on_in_swings("stim_on", toe_offs, ends)
    return int(np.count_nonzero(pulses == 0))


def _strides(count: int) -> str:
    return "1 stride" if count == 1 else f"{count} strides"


def _mounting_line(mounting: Mapping[str, Any], stimulating: bool) -> str | None:
    """The terminal line of the gyroscope's sign check: the verdict if it is not
    "mounted"; if it is, when it came and the strides left unstimulated before it (no
    line when none were: the heel sensor of a fused detector stimulated them)."""
    lost = mounting.get("strides_not_stimulated") if stimulating else None
    if mounting["verdict"] == "checking" and lost:
        return f"gyro: {mounting['message']} ({_strides(lost)} not stimulated)"
    if mounting["verdict"] != "mounted":
        return f"gyro: {mounting['message']}"
    decided = f"gyro: sign checked at {_fmt(mounting['decided_s'], ' s')}"
    if lost is None and stimulating:  # no truth to count the strides by
        return f"{decided}; nothing was stimulated on its events before that"
    if not lost:
        return None
    before = "the stride before it was" if lost == 1 else f"the {lost} strides before it were"
    return f"{decided}; {before} not stimulated (the mounting check, docs/detection.md)"


def _median_p5(values: np.ndarray) -> dict[str, float | None]:
    """``{median, p5}`` of ``values`` (None when there are none)."""
    if not values.size:
        return {"median": None, "p5": None}
    median, p5 = median_and_percentiles(values, 5)
    return {"median": median, "p5": p5}


def summarize(
    facts: TrialFacts, tolerance_ms: float, onset_window_ms: float, trim_fraction: float
) -> dict[str, Any]:
    """The ``summary.json`` figures of a trial."""
    heel_strikes = _true_times(facts, Event.HEEL_STRIKE)
    strides = max(0, heel_strikes.size - 1)
    duration_s = facts.scored().samples * facts.period_s
    has_truth = len(facts.true_events) > 0
    summary = {
        "strides": strides if has_truth else None,
        "duration_s": duration_s,
        "stopped_by": facts.stopped_by,
        "real_time_factor": duration_s / facts.wall_s if facts.wall_s > 0 else None,
        "detector": _detection(facts, tolerance_ms / 1000.0) if has_truth else None,
        "stim": _stimulation(facts, strides, onset_window_ms / 1000.0),
        "clearance": _clearance(facts, trim_fraction),
        # Samples without a reading of that sensor (NaN, an empty cell in samples.csv).
        "lost_samples": {name: facts.scored().lost(name) for name in LOST_COUNTED},
        "watchdog": {
            "faults": facts.faults,
            "clamped_commands": facts.clamped_commands,
            "interventions": list(facts.interventions),
            "fault_monotonic_s": facts.fault_monotonic_s,
        },
        "timing": dict(facts.timing) if facts.timing is not None else None,
    }
    return _rounded(summary)


def _fmt(value: Any, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:g}{unit}"


def _timing(block: Mapping[str, Any], edge: str, reference: str | None) -> str:
    stats = block[f"{edge}_error_ms"]
    return (
        f"{edge} vs true {(reference or '').replace('_', ' ')} {_fmt(stats['median'], ' ms')} "
        f"(p95 |e| {_fmt(stats['p95'], ' ms')})"
    )


def _stimulation_lines(stim: Mapping[str, Any]) -> list[str]:
    """One line per stimulated channel; timing only where there is a gait reference."""
    if not stim["channels"]:
        return [f"stimulation: off, {stim['trains']} trains"]
    lines = []
    for name, ch in stim["channels"].items():
        parts = [f"{ch['trains']} trains"]
        if ch["onset_reference"]:
            parts.append(_timing(ch, "onset", ch["onset_reference"]))
            parts.append(_timing(ch, "offset", ch["offset_reference"]))
        parts.append(f"on {ch['on_time_fraction'] * 100:.1f} % of the time")
        parts.append(
            f"{_fmt(ch['charge_uc_per_stride'], ' uC')} per stride, "
            f"{_fmt(ch['charge_uc_total'], ' uC')} in the session"
        )
        if ch.get("simulated_muscle") == "none":
            parts.append("drives no simulated muscle")
        lines.append(f"stimulation {name} ({ch['trigger']}): " + ", ".join(parts))
    activation = stim["ta_activation_at_toe_off"]
    if activation and activation["median"] is not None:
        lines.append(
            f"muscle: tibialis anterior activation at true toe off median "
            f"{_fmt(activation['median'])}, p5 {_fmt(activation['p5'])}"
        )
    return lines


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
    mounting = summary.get("gyro_mounting")
    if mounting and (line := _mounting_line(mounting, bool(stim["channels"]))):
        lines.append(line)
    axis = summary.get("gyro_axis")
    if axis and axis["verdict"] != "sagittal":
        lines.append(f"gyro: {axis['message']}")
    heel = summary.get("heel_load")
    if heel and heel["message"]:
        lines.append(f"heel: {heel['message']}")
    lines += _stimulation_lines(stim)
    if clear:
        mtc = clear["toe_clearance_min_mm"]
        lines.append(
            f"clearance: minimum toe clearance median {_fmt(mtc['median'], ' mm')}, "
            f"p5 {_fmt(mtc['p5'], ' mm')}; toe drags in {clear['toe_drag_events']} of "
            f"{clear['swings']} swings"
        )
        if "foot_slap_events" in clear:
            landing = clear["ankle_at_heel_strike_deg"]
            lines.append(
                f"landing: ankle at heel strike median {_fmt(landing['median'], ' deg')}, "
                f"p5 {_fmt(landing['p5'], ' deg')}; foot slaps {clear['foot_slap_events']}"
            )
        if "forefoot_impact_rad_s" in clear:
            impact = clear["forefoot_impact_rad_s"]
            lines.append(
                f"forefoot onto the floor after a heel-first landing: median "
                f"{_fmt(impact['median'], ' rad/s')}, p95 {_fmt(impact['p95'], ' rad/s')} "
                f"({impact['landings']} landings)"
            )
    if line := _lost_line(summary.get("lost_samples")):
        lines.append(line)
    board = summary.get("board")
    if board and "board_id" in (board.get("info") or {}):
        lines.append(board_text(board["info"]))
    lines.append(
        f"watchdog: {dog['faults']} faults, {dog['clamped_commands']} commands not passed as asked"
    )
    if summary.get("timing"):
        lines.append(render_timing(summary["timing"]))
    return "\n".join(lines)


def board_text(info: Mapping[str, Any]) -> str:
    """The board's identity and own limits as it reported them at HELLO
    (``hw.board.describe_info``), in one line: what ``fes ports --probe`` shows and
    ``fes run`` prints with the trial's figures."""
    shapes = (
        f", pulse shapes up to gap {info['max_interphase_gap_us']} us / anodic ratio "
        f"{info['max_anodic_width_ratio']:g}"
        if info["max_interphase_gap_us"] is not None
        else ", symmetric pulses only"
    )
    charge = info["max_charge_per_phase_uc"]
    duty = info["max_duty_cycle"]
    charge_text = (
        f", charge per phase up to {charge:g} uC, duty cycle up to {duty:g} over 10 s"
        if charge is not None and duty is not None
        else ", no charge or duty-cycle limit of its own"
    )
    return (
        f"board {info['board_id']}, firmware {info['firmware']}, protocol "
        f"{info['protocol_version']}, {info['channels']} "
        f"channels, {info['sample_rate_hz']} Hz, limits {info['max_amplitude_ma']:g} mA / "
        f"{info['max_pulse_width_us']} us / {info['max_frequency_hz']:g} Hz / "
        f"{info['max_on_time_ms']} ms on, comm timeout {info['comm_timeout_ms']} ms{shapes}"
        f"{charge_text}"
    )


#: How the terminal names the sensors of ``summary.json`` ``lost_samples``.
_SENSOR_NAMES = {"gyro_rad_s": "gyroscope", "heel_switch": "heel switch"}


def _lost_line(lost: Mapping[str, int] | None) -> str | None:
    """The line on the sensors' lost samples; none when no sample was lost (or the
    summary predates the count)."""
    if not lost or not any(lost.values()):
        return None
    counts = ", ".join(f"{_SENSOR_NAMES.get(name, name)} {n}" for name, n in lost.items())
    return f"lost samples (no reading, empty in samples.csv): {counts}"


def render_timing(timing: Mapping[str, Any]) -> str:
    """One line on how the loop kept time (on a virtual clock: that it could not miss)."""
    warm = f"warm-up {_fmt(timing['warm_up_ms'], ' ms')} before the loop"
    if timing["clock"] == "virtual":
        return f"timing: virtual clock, every deadline met by construction; {warm}"
    late, lat = timing["lateness_us"], timing["latency_us"]
    why = timing.get("not_measured")
    if why:  # a clock paced by its source: zeros there would be by construction
        return (
            f"timing: {_fmt(timing['period_ms'], ' ms')} period, {timing['clock']} clock; "
            f"lateness and missed periods not measured: {why}; {timing['overruns']} "
            f"overruns; sensor to command median {_fmt(lat['median'], ' us')}, p99 "
            f"{_fmt(lat['p99'], ' us')}, max {_fmt(lat['max'], ' us')}; {warm}"
        )
    return (
        f"timing: {_fmt(timing['period_ms'], ' ms')} period, lateness median "
        f"{_fmt(late['median'], ' us')}, p90 {_fmt(late.get('p90'), ' us')}, p99 "
        f"{_fmt(late['p99'], ' us')}, p99.9 {_fmt(late.get('p99_9'), ' us')}, max "
        f"{_fmt(late['max'], ' us')}; {timing['misses']} missed periods "
        f"({_fmt(timing['missed_percent'], ' %')}), {timing['overruns']} overruns; sensor to "
        f"command p99 {_fmt(lat['p99'], ' us')}; {warm}"
    )
