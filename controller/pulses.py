"""The pulses a stimulator board emits: when each pulse starts, and its biphasic shape.

Timing: a channel that is switched on emits its first pulse at the switch-on instant and
then one every 1/frequency seconds, as a board's pulse generator does; a change of
frequency takes effect from the next pulse. Both the simulated limb (which turns pulses
into muscle activation) and the trial metrics (which add up charge) use this one rule
(``advance_train``), so the charge a summary reports is the charge the limb received.
``train_pulse_times`` lists the exact start time of every pulse of a recorded trial with
the same rule, dating each command from the sample at which it was handed over; the
simulated limb acts on a command from its next physics step, so its ``pulses`` truth
column shows the same pulses one row later.

Shape: every pulse is biphasic and charge balanced (``BiphasicPulse``): a cathodic phase
that excites the nerve, an optional interphase gap, then an anodic phase that returns the
same charge, either mirror-image (symmetric) or longer and lower (asymmetric), as in the
clinical drop-foot stimulators (DESIGN.md). Charge per phase, mA x us = nC, is what
recruitment and the safety limits on charge depend on.

It belongs to the shared vocabulary beside ``controller.ports``: what every stimulator
emits for a command, so a back end (the simulated limb) uses it without depending on the
scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.kernels import allocating_kernel
from controller.ports import StimCommand

# Index of the train state array.
_PHASE = 0  # time until the next pulse, in seconds; negative or zero means "due now"
_RUNNING = 1  # 1.0 while the train is running


def new_train() -> np.ndarray:
    """A stopped pulse train."""
    return np.zeros(2)


@allocating_kernel
def advance_train(state: np.ndarray, on: bool, frequency_hz: float, dt_s: float) -> int:
    """Number of pulses emitted in the next ``dt_s`` seconds and update ``state``.

    The command holds for the whole interval. Switching on fires a pulse at once; a
    change of frequency takes effect from the next pulse.
    """
    if not on or frequency_hz <= 0.0:
        state[_RUNNING] = 0.0
        state[_PHASE] = 0.0
        return 0
    if state[_RUNNING] == 0.0:
        state[_RUNNING] = 1.0
        state[_PHASE] = 0.0
    period = 1.0 / frequency_hz
    pulses = 0
    # A pulse is due at every instant in [0, dt) where the countdown reaches zero.
    while state[_PHASE] < dt_s - 1e-12:
        pulses += 1
        state[_PHASE] += period
    state[_PHASE] -= dt_s
    return pulses


@allocating_kernel
def _pulse_times(
    t_s: np.ndarray, on: np.ndarray, frequency_hz: np.ndarray, dt_s: float, out: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    return _pulse_times_from(np.zeros(2), t_s, on, frequency_hz, dt_s, out)  # a stopped train


@allocating_kernel
def _pulse_times_from(
    state: np.ndarray, t_s: np.ndarray, on: np.ndarray, frequency_hz: np.ndarray, dt_s: float,
    out: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``_pulse_times`` from the train ``state`` (left as after the last sample)."""
    index = np.empty(out.size, dtype=np.int64)
    count = 0
    for k in range(t_s.size):
        first_s = state[_PHASE] if state[_RUNNING] == 1.0 else 0.0
        pulses = advance_train(state, on[k], frequency_hz[k], dt_s)
        for i in range(pulses):
            out[count] = t_s[k] + first_s + i / frequency_hz[k]
            index[count] = k
            count += 1
    return out[:count], index[:count]


def train_pulse_times(
    t_s: np.ndarray, on: np.ndarray, frequency_hz: np.ndarray, dt_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Start time of every pulse of a recorded channel, and the sample that emitted it.

    ``t_s``, ``on`` and ``frequency_hz`` are per-sample columns; each sample's command
    holds for ``dt_s``. Pulses are those ``advance_train`` counts, sample by sample, at
    the instants the board's generator fires them.
    """
    kernel, args = pulse_times_call(t_s, on, frequency_hz, dt_s)
    return kernel(*args)  # type: ignore[no-any-return]


def train_pulse_times_from(
    state: np.ndarray, t_s: np.ndarray, on: np.ndarray, frequency_hz: np.ndarray, dt_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """``train_pulse_times`` of the next rows of a recording, the train carried over in
    ``state`` (``new_train`` before the first rows): rows taken in pieces give the
    pulses of the whole, indexes counted from each piece's first row."""
    _, args = pulse_times_call(t_s, on, frequency_hz, dt_s)
    return _pulse_times_from(state, *args)  # type: ignore[no-any-return]


def pulse_times_call(
    t_s: np.ndarray, on: np.ndarray, frequency_hz: np.ndarray, dt_s: float
) -> tuple[Any, tuple[Any, ...]]:
    """The kernel ``train_pulse_times`` calls and its arguments (a first run compiles
    it ahead for these types: ``controller.trial.compiled_loop``)."""
    on_flags = np.asarray(on, dtype=float) > 0.5
    freq = np.asarray(frequency_hz, dtype=np.float64)
    # At most dt * f + 2 pulses fall in one sample (one due at its start, one per period),
    # summed without temporaries as long as the trial (fresh pages, each mapped on first
    # touch: 0.5 ms of a minute's scoring at 1 kHz).
    capacity = int(dt_s * freq.sum(where=on_flags) + 2.0 * np.count_nonzero(on_flags))
    return _pulse_times, (np.asarray(t_s, dtype=np.float64), on_flags, freq, dt_s,
                          np.empty(capacity))


@dataclass(frozen=True, slots=True)
class BiphasicPulse:
    """One charge-balanced biphasic pulse: cathodic phase, gap, anodic phase.

    The anodic phase lasts ``anodic_width_ratio`` times the cathodic one at
    ``1 / anodic_width_ratio`` of its current, so both phases carry the same charge
    (ratio 1: symmetric pulse).
    """

    cathodic_ma: float
    cathodic_us: float
    interphase_gap_us: float = 0.0
    anodic_width_ratio: float = 1.0

    @classmethod
    def of(cls, command: StimCommand) -> BiphasicPulse:
        """The pulse shape ``command`` asks for."""
        return cls(
            command.amplitude_ma,
            command.pulse_width_us,
            command.interphase_gap_us,
            command.anodic_width_ratio,
        )

    @property
    def anodic_ma(self) -> float:
        """Current of the charge-returning phase."""
        return self.cathodic_ma / self.anodic_width_ratio

    @property
    def anodic_us(self) -> float:
        """Duration of the charge-returning phase."""
        return self.cathodic_us * self.anodic_width_ratio

    @property
    def charge_per_phase_uc(self) -> float:
        """Charge of the cathodic phase (equal to the anodic one), microcoulombs."""
        return self.cathodic_ma * self.cathodic_us / 1000.0

    @property
    def net_charge_uc(self) -> float:
        """Cathodic minus anodic charge: zero for every pulse this model describes."""
        return self.charge_per_phase_uc - self.anodic_ma * self.anodic_us / 1000.0

    @property
    def duration_us(self) -> float:
        """From the start of the cathodic phase to the end of the anodic phase."""
        return self.cathodic_us + self.interphase_gap_us + self.anodic_us

    def phases(self, start_s: float) -> tuple[tuple[float, float, float], ...]:
        """``(start_s, end_s, current_ma)`` of both phases of a pulse fired at
        ``start_s``; cathodic current is negative, as a board's output swings."""
        cathodic_end = start_s + self.cathodic_us * 1e-6
        anodic_start = cathodic_end + self.interphase_gap_us * 1e-6
        return (
            (start_s, cathodic_end, -self.cathodic_ma),
            (anodic_start, anodic_start + self.anodic_us * 1e-6, self.anodic_ma),
        )
