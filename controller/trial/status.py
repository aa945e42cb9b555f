"""The status line of a real-time trial: where the walker is, how the loop keeps time and,
for a live trial, how the board's link is doing.

A log sink (``controller.trial.writer``) that runs in the log writer process, so the
printing never delays the loop and the loop's thread never touches the terminal: every
``interval_s`` of trial time it prints one line with the detected phase, the stimulation
on the recorded channel and the timing of the loop over that interval (median, 99th
percentile and maximum lateness, sensor-to-command latency) and since the start
(misses). ``fes sim --realtime`` and ``fes run`` both print it.

A live trial also has state that is not one row per sample: the cadence, the watchdog's
faults, the board's link counters and the gyroscope's mounting checks (while they run,
and if they find the sign flipped or the axis wrong, the line says so: that is why
nothing is stimulated). Its
loop publishes them into a ``SharedSnapshot`` of ``LIVE_FIELDS``
(``controller.trial.live.LiveStatus``), and the line given that snapshot adds them as
they were at the moment it is printed (the rows it reports reach the writer one or two
polls later, some 0.1 s at most).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

import numpy as np

from controller.detect import axis, gyro, weakheel
from controller.events import PHASE_NAMES, Phase
from controller.safety.rules import RULE_NAMES
from controller.sharedmem import SharedSnapshot

#: What a live trial publishes for the status line, beside the recorded rows: cadence
#: (NaN until two heel strikes), the watchdog's fault count and latched rule (a code of
#: ``RULE_NAMES``, 0 when none), the link's state (an index of ``LINK_STATES``), the
#: board driver's link counters (``hw.board.LinkStats``; the round trip NaN until the
#: board has reported one; the most a pulse phase ran past its end, 0 while none did),
#: the gyroscope's mounting check (a key of ``MOUNTING_STATES``), its axis check (a key
#: of ``AXIS_STATES``, and the axis that turns most) and the heel force's weak-heel check
#: (a key of ``HEEL_LOAD_STATES``).
LIVE_FIELDS = (
    "cadence_steps_per_min",
    "watchdog_faults",
    "watchdog_rule",
    "link_state",
    "frames_in",
    "frames_out",
    "bad_frames",
    "lost_frames",
    "missing_samples",
    "resends",
    "naks",
    "board_rtt_last_ms",
    "pulse_stretch_max_us",
    "gyro_mounting",
    "gyro_axis",
    "gyro_axis_turns_most",
    "heel_load",
    "heel_load_p99_n",
    "heel_load_floor_n",
)
(
    CADENCE_STEPS_PER_MIN,
    WATCHDOG_FAULTS,
    WATCHDOG_RULE,
    LINK_STATE,
    FRAMES_IN,
    FRAMES_OUT,
    BAD_FRAMES,
    LOST_FRAMES,
    MISSING_SAMPLES,
    RESENDS,
    NAKS,
    BOARD_RTT_LAST_MS,
    PULSE_STRETCH_MAX_US,
    GYRO_MOUNTING,
    GYRO_AXIS,
    GYRO_AXIS_TURNS_MOST,
    HEEL_LOAD,
    HEEL_LOAD_P99_N,
    HEEL_LOAD_FLOOR_N,
) = range(len(LIVE_FIELDS))
#: The link as ``link_state`` codes it: no fault, or the kind of the board's first fault.
LINK_STATES = ("ok", "link fault", "board fault", "host fault")
#: The gyroscope's mounting check as ``gyro_mounting`` codes it (``controller.detect.gyro``
#: verdicts; NO_GYRO_CHECK for a detector without one).
NO_GYRO_CHECK = -1
MOUNTING_STATES = {
    NO_GYRO_CHECK: "",
    gyro.CHECKING: " | gyro: checking its sign, no gait-triggered stimulation yet",
    gyro.MOUNTED: "",
    gyro.FLIPPED: " | gyro: SIGN FLIPPED, no stimulation (turn the sensor round)",
    gyro.UNDECIDED: " | gyro: sign UNDECIDED (its strides either way round do not tell), "
    "no gait-triggered stimulation",
}
#: The gyroscope's axis check as ``gyro_axis`` codes it (``controller.detect.axis``
#: verdicts; NO_GYRO_CHECK when no axis is checked); a wrong axis names the one that turns
#: most (``gyro_axis_turns_most``: 0 x, 1 y, 2 z).
AXIS_STATES = {
    NO_GYRO_CHECK: "",
    axis.CHECKING: " | gyro: checking its axis, no gait-triggered stimulation yet",
    axis.SAGITTAL: "",
    axis.WRONG_AXIS: " | gyro: WRONG AXIS, no stimulation (declare {most} the sagittal axis)",
}


#: The heel force's weak-heel check as ``heel_load`` codes it (``controller.detect.weakheel``
#: verdicts; NO_HEEL_CHECK without a heel force sensor); a weak heel names its 99th
#: percentile (``heel_load_p99_n``) and, when the contact level follows the heel, how far
#: down it goes (``heel_load_floor_n``; NaN: a fixed level). Stimulation goes on: see the
#: module.
NO_HEEL_CHECK = -1
WEAK_FIXED = (" | heel: BARELY LOADS (99 % under {p99:.0f} N): heel strikes missed, move "
              "the sensor under the heel or lower detector.heel.force.contact_force_n")
WEAK_FOLLOWED = (" | heel: BARELY LOADS (99 % under {p99:.0f} N, contact level followed "
                 "down to {floor:.0f} N): some heel strikes missed or late, move the sensor "
                 "under the heel")


def _heel_text(live: Mapping[str, float]) -> str:
    """The weak-heel warning of the line, or nothing while the heel loads."""
    if int(live["heel_load"]) != weakheel.WEAK:
        return ""
    floor = live["heel_load_floor_n"]
    text = WEAK_FIXED if np.isnan(floor) else WEAK_FOLLOWED
    return text.format(p99=live["heel_load_p99_n"], floor=floor)


def live_snapshot() -> SharedSnapshot:
    """An empty snapshot of ``LIVE_FIELDS`` in shared memory (make it before the log
    writer forks)."""
    return SharedSnapshot(LIVE_FIELDS)


def live_text(live: Mapping[str, float] | None) -> str:
    """The live trial's part of the line: cadence, watchdog and link."""
    if live is None:
        return "cadence -- | watchdog -- | link --"
    cadence = live["cadence_steps_per_min"]
    rule = RULE_NAMES[int(live["watchdog_rule"])]
    rtt = live["board_rtt_last_ms"]
    return (
        f"cadence {'--' if np.isnan(cadence) else f'{cadence:.0f}'} steps/min | "
        f"watchdog faults {live['watchdog_faults']:.0f}{f' latched {rule}' if rule else ''} | "
        f"link {LINK_STATES[int(live['link_state'])]}"
        f"{'' if np.isnan(rtt) else f', rtt {rtt:.1f} ms'}, frames in {live['frames_in']:.0f} "
        f"out {live['frames_out']:.0f} bad {live['bad_frames']:.0f} "
        f"lost {live['lost_frames']:.0f}, samples lost {live['missing_samples']:.0f}, "
        f"resent {live['resends']:.0f}, refused {live['naks']:.0f}"
        f"{_stretch_text(live['pulse_stretch_max_us'])}"
        f"{MOUNTING_STATES[int(live['gyro_mounting'])]}"
        f"{AXIS_STATES[int(live['gyro_axis'])].format(most=_axis_name(live))}"
        f"{_heel_text(live)}"
    )


def _stretch_text(stretch_us: float) -> str:
    """The board's report of pulses that ran long (its pulse engine forced a phase's end
    late: hw.protocol.Status.pulse_stretch_us), or nothing while every phase ended on
    time."""
    if not stretch_us > 0.0:
        return ""
    return f" | board: PULSES STRETCHED, a phase up to {stretch_us:.1f} us past its end"


def _axis_name(live: Mapping[str, float]) -> str:
    most = live["gyro_axis_turns_most"]
    return "xyz"[int(most)] if 0 <= most <= 2 else "another axis"


class StatusLine:
    """Prints a status line to ``stream`` every ``interval_s`` of trial time; with
    ``live``, the live trial's snapshot of ``LIVE_FIELDS`` as well."""

    def __init__(
        self, stream: TextIO, interval_s: float = 1.0, live: SharedSnapshot | None = None,
        clock: str = "wall",
    ) -> None:
        if not interval_s > 0.0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        if live is not None and live.names != LIVE_FIELDS:
            raise ValueError(f"live must hold LIVE_FIELDS, got {live.names}")
        self._stream = stream
        self._interval_s = interval_s
        self._live = live
        self._clock = clock  # the loop's clock, named where it does not measure lateness
        self._next_s = interval_s
        self._lateness: list[np.ndarray] = []
        self._latency: list[np.ndarray] = []
        self._samples = 0
        self._misses = 0

    def write(self, first: int, rows: Mapping[str, np.ndarray]) -> None:
        """Take a block of rows; print a line at each interval boundary it crosses."""
        time_s = rows["time_s"]
        start = 0
        while start < time_s.size:
            stop = int(np.searchsorted(time_s, self._next_s - 1e-9, side="left"))
            stop = max(start, min(stop, time_s.size))
            self._take(rows, start, stop)
            if stop == time_s.size:
                return
            self._take(rows, stop, stop + 1)
            self._print(rows, stop)
            self._next_s += self._interval_s
            start = stop + 1

    def _take(self, rows: Mapping[str, np.ndarray], start: int, stop: int) -> None:
        self._lateness.append(rows["lateness_us"][start:stop])
        self._latency.append(rows["latency_us"][start:stop])
        self._misses += int(rows["skipped_periods"][start:stop].sum())
        self._samples += stop - start

    def _print(self, rows: Mapping[str, np.ndarray], k: int) -> None:
        lateness = np.concatenate(self._lateness)
        latency = np.concatenate(self._latency)
        self._lateness.clear()
        self._latency.clear()
        on = rows["stim_on"][k] > 0.0
        stim = f"stim {rows['amplitude_ma'][k]:4.1f} mA" if on else "stim off    "
        live = "" if self._live is None else live_text(self._live.read()) + " | "
        owed = self._samples + self._misses
        if lateness.size and np.isnan(lateness).all():
            # A clock paced by its source (a board, a replay): a sample is due when it
            # arrives, lateness and misses are not measured (controller.deadlines).
            late = (f"lateness not measured ({self._clock} clock) | "
                    f"latency us p99 {np.percentile(latency, 99):.0f}")
        else:
            late = (f"lateness us median {np.median(lateness):.0f} "
                    f"p99 {np.percentile(lateness, 99):.0f} max {lateness.max():.0f} | "
                    f"latency us p99 {np.percentile(latency, 99):.0f} | "
                    f"misses {self._misses} ({100.0 * self._misses / owed:.3f} %)")
        self._stream.write(
            f"t {rows['time_s'][k]:7.1f} s | {PHASE_NAMES[Phase(int(rows['phase'][k]))]:9} | "
            f"{stim} | {live}{late}\n"
        )
        self._stream.flush()

    def close(self) -> None:
        """Nothing to release; the last partial interval is not printed."""
