"""A closed-loop trial against the simulated patient, from config to files on disk.

Wires the stages of the data flow (simulated limb -> detector -> scheduler ->
watchdog -> simulated limb) under a virtual clock; ``controller.trial.session`` runs it,
scores it against the limb's exact ground truth and writes the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.clock import VirtualClock
from controller.config import TrialConfig
from controller.detect.config import build_detector
from controller.loop import LoopOutcome
from controller.stim.scheduler import StimScheduler
from controller.trial.recorder import TrialRecorder
from controller.trial.session import (
    GroundTruth,
    TrialParts,
    output_channels,
    recorded_channels,
    run_trial,
)
from controller.watchdog import Watchdog
from sim.limb import TRUTH_COLUMNS, SimulatedLimb
from sim.patient import load_patient


def run_simulated_trial(config: TrialConfig, out_dir: Path) -> dict[str, Any]:
    """Run one trial, write its files into ``out_dir`` and return the summary."""
    profile = load_patient(config.sim.patient)
    rate_hz = config.loop.sample_rate_hz
    # The limb has an output for every configured channel (only output 0 drives the ankle).
    limb = SimulatedLimb(
        profile,
        rate_hz,
        config.loop.duration_s,
        config.sim.seed,
        channels=max(2, output_channels(config)),
    )
    n_samples = round(config.loop.duration_s * rate_hz)
    parts = TrialParts(
        config=config,
        source=limb,
        detector=build_detector(config.detector, rate_hz),
        scheduler=StimScheduler(config.stim),
        watchdog=Watchdog(limb, config.safety),
        clock=VirtualClock(),
        recorder=TrialRecorder(
            n_samples, config.stim.peroneal.channel, recorded_channels(config)
        ),
    )

    def finish(outcome: LoopOutcome) -> tuple[GroundTruth, dict[str, Any]]:
        truth = limb.truth()
        columns = {name: truth[name] for name in TRUTH_COLUMNS}
        extra = {"config": {"patient": config.sim.patient, "seed": config.sim.seed}}
        return GroundTruth(columns, limb.true_events()), extra

    _, summary = run_trial(parts, n_samples, out_dir, finish)
    return summary
