"""A closed-loop trial against the simulated patient, from config to files on disk.

Wires the stages of the data flow (simulated limb -> detector -> scheduler ->
watchdog -> simulated limb) under a virtual clock, then scores the trial against the
limb's exact ground truth and writes ``samples.csv``, ``events.csv`` and
``summary.json`` (plus ``config.json``, the full validated config, so that a trial can
be repeated). The files are written however the loop ended, also on Ctrl-C or an
error, so nothing recorded is lost.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from controller.clock import VirtualClock
from controller.config import TrialConfig
from controller.detect.config import build_detector
from controller.detect.events import EVENT_NAMES
from controller.loop import LoopOutcome, run_loop
from controller.stim.scheduler import StimScheduler
from controller.trial.files import write_events_csv, write_json, write_samples_csv
from controller.trial.recorder import TrialRecorder
from controller.trial.summary import TrialFacts, summarize
from controller.watchdog import Watchdog
from sim.limb import TRUTH_COLUMNS, SimulatedLimb
from sim.patient import load_patient


def run_simulated_trial(config: TrialConfig, out_dir: Path) -> dict[str, Any]:
    """Run one trial, write its files into ``out_dir`` and return the summary."""
    profile = load_patient(config.sim.patient)
    rate_hz = config.loop.sample_rate_hz
    # The limb has an output for every configured channel (only output 0 drives the ankle).
    outputs = 1 + max(ch.channel for _, ch in config.stim.named_channels())
    limb = SimulatedLimb(
        profile, rate_hz, config.loop.duration_s, config.sim.seed, channels=max(2, outputs)
    )
    watchdog = Watchdog(limb, config.safety)
    scheduler = StimScheduler(config.stim)
    n_samples = round(config.loop.duration_s * rate_hz)
    recorder = TrialRecorder(
        n_samples,
        channel=config.stim.peroneal.channel,
        extra_channels={
            name: ch.channel for name, ch in config.stim.channels.items() if ch.enabled
        },
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "config.json", config.model_dump())
    parts = (config, out_dir, limb, recorder, watchdog, scheduler)
    try:
        outcome = run_loop(
            limb,
            build_detector(config.detector, rate_hz),
            scheduler,
            watchdog,
            VirtualClock(),
            recorder,
            n_samples,
        )
    except BaseException:
        _write_trial(*parts, LoopOutcome(recorder.count, 0.0, "error"))
        raise
    return _write_trial(*parts, outcome)


def _write_trial(
    config: TrialConfig,
    out_dir: Path,
    limb: SimulatedLimb,
    recorder: TrialRecorder,
    watchdog: Watchdog,
    scheduler: StimScheduler,
    outcome: LoopOutcome,
) -> dict[str, Any]:
    columns = recorder.columns()
    truth = limb.truth()
    columns |= {name: truth[name][: recorder.count] for name in TRUTH_COLUMNS}
    end_s = recorder.count * limb.sample_period_s
    true_events = [(t, e) for t, e in limb.true_events() if t < end_s]
    detected = recorder.detected
    write_samples_csv(out_dir / "samples.csv", columns)
    write_events_csv(
        out_dir / "events.csv",
        [(t, "true", e) for t, e in true_events]
        + [(d.t_est_s, "detected", EVENT_NAMES[d.event]) for d in detected],
    )
    facts = TrialFacts(
        columns=columns,
        true_events=true_events,
        detected=detected,
        period_s=limb.sample_period_s,
        wall_s=outcome.wall_s,
        stopped_by=outcome.stopped_by,
        faults=watchdog.faults,
        clamped_commands=watchdog.clamped_commands,
        interventions=[asdict(i) for i in watchdog.interventions],
        stim_timeouts=scheduler.timeouts,
        stim_channels=scheduler.reports(),
    )
    m = config.metrics
    summary = summarize(
        facts, m.event_tolerance_ms, m.onset_window_ms, m.clearance_trim_fraction
    )
    summary["config"] = {"patient": config.sim.patient, "seed": config.sim.seed}
    write_json(out_dir / "summary.json", summary)
    return summary
