"""Scripted detector output and channel settings for the scheduler's tests
(``tests/test_scheduler.py``, ``tests/test_stim_kernel.py``)."""

from __future__ import annotations

from controller.events import DetectedEvent, Event, Phase
from controller.stim.settings import ChannelConfig

DT = 0.002

Script = list[tuple[float, Phase, tuple[Event | DetectedEvent, ...]]]


def samples(script: Script, end_s: float) -> Script:
    """``(t, phase, events)`` every DT until ``end_s``: ``script`` sets the phase from
    given times on, and its events come at the first sample at or after their time."""
    out: Script = []
    phase, k = Phase.STANCE, 0
    pending = sorted(script, key=lambda s: s[0])
    while k * DT < end_s:
        t = k * DT
        events: tuple[Event | DetectedEvent, ...] = ()
        while pending and pending[0][0] <= t + 1e-9:
            _, phase, events = pending.pop(0)
        out.append((t, phase, events))
        k += 1
    return out


def walking(toe_offs_s: list[float], swing_s: float = 0.45, latency_s: float = 0.1) -> Script:
    """What a gyro detector reports for strides with these true toe offs.

    Pre-swing 50 ms before toe off; toe off known ``latency_s`` after it (dated at the
    true time); mid swing; heel strike at the end of swing, known 20 ms later.
    """
    script: Script = []
    for to in toe_offs_s:
        hs = to + swing_s
        script += [
            (to - 0.05, Phase.PRE_SWING, ()),
            (to + latency_s, Phase.SWING, (DetectedEvent(Event.TOE_OFF, to + latency_s, to),)),
            (to + swing_s / 2 + 0.05, Phase.SWING,
             (DetectedEvent(Event.MID_SWING, to + swing_s / 2 + 0.05, to + swing_s / 2),)),
            (hs + 0.02, Phase.LOADING, (DetectedEvent(Event.HEEL_STRIKE, hs + 0.02, hs),)),
            (hs + 0.14, Phase.STANCE, ()),
        ]
    return script


#: A peroneal channel with every stage of the envelope.
CFG = ChannelConfig(amplitude_ma=40.0, ramp_up_ms=50.0, ramp_down_ms=100.0, extension_ms=120.0)
#: It started a lead before the predicted toe off.
PREDICTED = CFG.model_copy(
    update={"trigger": "predicted_toe_off", "lead_ms": 120.0, "fallback_trigger": "none"}
)
#: A calf channel stimulated before the predicted toe off and stopped at it.
CALF = ChannelConfig(
    channel=1, amplitude_ma=30.0, trigger="predicted_toe_off", lead_ms=250.0,
    fallback_trigger="none", stop="predicted_toe_off", ramp_up_ms=50.0, ramp_down_ms=30.0,
    extension_ms=0.0, timeout_ms=600.0,
)
