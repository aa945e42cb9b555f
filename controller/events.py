"""The gait vocabulary shared by detectors, scheduler, simulator, boards and metrics.

Phases and events are small integers so that numba kernels can return them; the names
are what appears in logs and CSV files. It sits beside ``controller.ports``, below the
detector, so that the back ends (a simulator's true events, a board's truth frames) can
name events without depending on the detector that finds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Phase(IntEnum):
    """Gait phase of the instrumented leg, as a detector believes it at a sample.

    UNKNOWN means the detector cannot tell (sensor lost, saturated, not yet locked on);
    the scheduler must treat it as "do not stimulate".
    """

    UNKNOWN = 0
    STANCE = 1
    PRE_SWING = 2
    SWING = 3
    LOADING = 4


class Event(IntEnum):
    """A gait event. NONE is the kernel's "nothing happened at this sample"."""

    NONE = 0
    HEEL_STRIKE = 1
    HEEL_OFF = 2
    TOE_OFF = 3
    MID_SWING = 4


PHASE_NAMES: dict[Phase, str] = {p: p.name.lower() for p in Phase}
EVENT_NAMES: dict[Event, str] = {e: e.name.lower() for e in Event if e is not Event.NONE}

#: How far a detected event may be from a true one of its kind and still match it: the
#: default of a trial's ``metrics.event_tolerance_ms`` and of ``fes detect --tolerance-ms``.
EVENT_TOLERANCE_MS = 100.0
#: The widest such window either accepts: a wider one can match a missed event with its
#: neighbour's detection (a stride is 0.9 s and more, so 500 ms is about half of the
#: shortest).
MOST_EVENT_TOLERANCE_MS = 500.0
EVENT_BY_NAME: dict[str, Event] = {name: e for e, name in EVENT_NAMES.items()}


@dataclass(frozen=True, slots=True)
class DetectedEvent:
    """A gait event: when it became known and when it is estimated to have happened.

    ``t_known_s - t_est_s`` is the detection latency.
    """

    event: Event
    t_known_s: float
    t_est_s: float

    @property
    def latency_s(self) -> float:
        """Time from the estimated event to its detection."""
        return self.t_known_s - self.t_est_s


# The integer codes numba kernels use (a kernel cannot return the enum members).
UNKNOWN = int(Phase.UNKNOWN)
STANCE = int(Phase.STANCE)
PRE_SWING = int(Phase.PRE_SWING)
SWING = int(Phase.SWING)
LOADING = int(Phase.LOADING)
NONE = int(Event.NONE)
HEEL_STRIKE = int(Event.HEEL_STRIKE)
HEEL_OFF = int(Event.HEEL_OFF)
TOE_OFF = int(Event.TOE_OFF)
MID_SWING = int(Event.MID_SWING)
