"""``TrialParts``: the wired stages of one trial, as the trial's runner
(``controller.trial.session``) and its files (``controller.trial.streams``) both see them.

A module of its own so that those two need not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from controller.clock import Clock
from controller.config import TrialConfig
from controller.deadlines import DeadlineMonitor
from controller.loop import PhaseDetector
from controller.ports import SensorSource
from controller.safety import Watchdog
from controller.stim.scheduler import StimScheduler
from controller.trial.recorder import TrialRecorder

if TYPE_CHECKING:
    from controller.trial.window import RowWindow, StreamedScores


@dataclass(frozen=True, slots=True)
class TrialParts:
    """The wired stages of one trial."""

    config: TrialConfig
    source: SensorSource
    detector: PhaseDetector
    scheduler: StimScheduler
    watchdog: Watchdog
    clock: Clock
    recorder: TrialRecorder
    deadlines: DeadlineMonitor
    # Rows scored as they pass and freed once written (a long simulated trial):
    # ``controller.trial.window``; None keeps every row for the summary.
    window: RowWindow | None = None
    # Rows scored in the log writer process as it writes them (a long paced trial, whose
    # rows are rings it must not wait on): ``controller.trial.window.StreamedScores``.
    scores: StreamedScores | None = None
