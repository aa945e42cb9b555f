"""The simulated patient's leg: a ``SensorSource`` and a ``Stimulator`` in one object.

Each ``read`` returns the sensor sample at t = k * period and then advances the physics
by one period with the stimulation commanded so far, so the loop closes through the
limb: pulses of the peroneal channel (channel 0) recruit tibialis anterior
(``sim.muscle``), whose activation lifts the foot in swing (``sim.ankle``). Other
channels are accepted, kept and ignored by the physics.

All numerics of a sample run in one numba kernel (``limb_step``) over float64 arrays,
which chains the per-module kernels; the class only holds the arrays and dispatches,
so a later issue can fuse the whole closed loop into one compiled loop. All randomness
comes from the seed through ``numpy.random.SeedSequence``: the gait schedule and the
gyro noise use separate child streams, so the same seed gives the same trial bit for
bit however the loop is paced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np

from controller.ports import Sample, StimCommand
from controller.stim.pulses import advance_train, new_train
from sim import ankle, muscle, sensors
from sim.gait import (
    HEEL_STRIKE,
    LIMB_OFFSET_M,
    NEXT_HEEL_STRIKE,
    START_PHASE,
    TOE_OFF,
    GaitSchedule,
    build_schedule,
    locate_stride,
)
from sim.patient import PatientProfile

#: Semi-implicit Euler is stable up to 2; this margin keeps the swing dynamics accurate.
MAX_STEP_PER_MODE = 1.0
#: Gyro noise is drawn, and truth storage grows, in blocks of this many samples, so
#: memory follows the samples actually read, not the nominal duration. A new block is a
#: fixed, small piece of work (about 50 us), never a copy of what came before, so a
#: real-time loop sees the same cost at the first block and after hours.
BLOCK_SAMPLES = 4096

# Channel-0 command array.
C_ON = 0
C_AMPLITUDE_MA = 1
C_PULSE_WIDTH_US = 2
C_FREQUENCY_HZ = 3

# Sample output array.
O_GYRO = 0
O_HEEL_SWITCH = 1
O_HEEL_FORCE = 2

# Truth row, in the order of ``TRUTH_COLUMNS``.
T_ANKLE_DEG = 0
T_CLEARANCE_MM = 1
T_ACTIVATION = 2
T_PULSES = 3
TRUTH_COLUMNS = ("ankle_angle_deg", "toe_clearance_mm", "ta_activation", "pulses")


@numba.njit(cache=True)
def limb_step(
    k: int,
    dt_s: float,
    strides: np.ndarray,
    walk: np.ndarray,
    sensor_p: np.ndarray,
    noise: float,
    muscle_p: np.ndarray,
    muscle_s: np.ndarray,
    delay: np.ndarray,
    ankle_p: np.ndarray,
    ankle_s: np.ndarray,
    train: np.ndarray,
    command: np.ndarray,
    sample_out: np.ndarray,
    truth_row: np.ndarray,
) -> None:
    """Write sample ``k`` and its truth, then advance muscle and ankle one period.

    ``walk[0]`` is the stride row of the previous sample (a forward search cursor);
    ``noise`` is this sample's standard normal draw.
    """
    t = k * dt_s
    i = locate_stride(strides, int(walk[0]), t)
    walk[0] = i
    row = strides[i]
    sample_out[O_GYRO] = (
        sensors.gyro_template(strides, i, t, sensor_p) + sensor_p[sensors.P_NOISE_SD] * noise
    )
    sample_out[O_HEEL_SWITCH] = sensors.heel_switch(strides, i, t)
    sample_out[O_HEEL_FORCE] = sensors.heel_force(strides, i, t, sensor_p)

    clearance = 0.0
    if t >= row[TOE_OFF]:
        phase = (t - row[TOE_OFF]) / (row[NEXT_HEEL_STRIKE] - row[TOE_OFF])
        clearance = ankle.toe_clearance_m(ankle_s, ankle_p, phase, row[LIMB_OFFSET_M])
    activation = muscle_s[muscle.S_ACTIVATION]
    truth_row[T_ANKLE_DEG] = math.degrees(ankle_s[ankle.S_ANGLE])
    truth_row[T_CLEARANCE_MM] = 1e3 * clearance
    truth_row[T_ACTIVATION] = activation

    pulses = advance_train(train, command[C_ON] != 0.0, command[C_FREQUENCY_HZ], dt_s)
    truth_row[T_PULSES] = pulses
    charge_uc = 1e-3 * command[C_AMPLITUDE_MA] * command[C_PULSE_WIDTH_US]
    muscle.muscle_step(muscle_s, muscle_p, delay, pulses, charge_uc)

    t_next = (k + 1) * dt_s
    j = locate_stride(strides, i, t_next)
    nrow = strides[j]
    if t_next < nrow[TOE_OFF]:
        stance_s = nrow[TOE_OFF] - nrow[HEEL_STRIKE]
        since = t_next - nrow[HEEL_STRIKE]
        ankle.ankle_stance(ankle_s, ankle_p, j, since / stance_s, since, dt_s)
    else:
        swing_s = nrow[NEXT_HEEL_STRIKE] - nrow[TOE_OFF]
        ankle.ankle_swing_step(
            ankle_s, ankle_p, j, nrow[TOE_OFF], swing_s, t, t_next, activation
        )


class SimulatedLimb:
    """A simulated patient leg with a shank gyro, a heel switch and a peroneal channel.

    Implements ``controller.ports.SensorSource`` and ``controller.ports.Stimulator``.
    The trial has ``round(duration_s * sample_rate_hz)`` samples; ``true_events`` and
    ``truth`` give the exact gait events and the physical state for scoring.
    """

    def __init__(
        self,
        profile: PatientProfile,
        sample_rate_hz: float,
        duration_s: float,
        seed: int,
        channels: int = 2,
    ) -> None:
        if not (math.isfinite(sample_rate_hz) and sample_rate_hz > 0.0):
            raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz!r}")
        if not (math.isfinite(duration_s) and duration_s > 0.0):
            raise ValueError(f"duration_s must be positive, got {duration_s!r}")
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels!r}")
        fastest = ankle.fastest_mode_rad_s(profile)
        if fastest / sample_rate_hz > MAX_STEP_PER_MODE:
            raise ValueError(
                f"sample_rate_hz {sample_rate_hz:g} is too low for the ankle dynamics of "
                f"this profile; use at least {math.ceil(fastest / MAX_STEP_PER_MODE)} Hz"
            )
        self._profile = profile
        self._dt = 1.0 / sample_rate_hz
        self._n_samples = round(duration_s * sample_rate_hz)
        self._channels = channels
        gait_seed, noise_seed = np.random.SeedSequence(seed).spawn(2)
        self._schedule = build_schedule(profile, duration_s, np.random.default_rng(gait_seed))
        self._noise_rng = np.random.default_rng(noise_seed)
        self._noise = np.empty(0)
        self._noise_start = 0
        self._truth: list[np.ndarray] = []
        self._new_block(0)  # ready before the first sample, which must not wait for it

        first = 1  # the trial starts in stride row 1 (row 0 ends before t = 0)
        stance_phase = START_PHASE / (1.0 - profile.swing_fraction)
        self._walk = np.array([float(first)])
        self._sensor_p = sensors.sensor_params(profile)
        self._muscle_p = muscle.muscle_params(profile, self._dt)
        self._muscle_s = muscle.new_muscle_state()
        self._delay = muscle.new_delay_line(profile, self._dt)
        self._ankle_p = ankle.ankle_params(profile)
        self._ankle_s = ankle.new_ankle_state(self._ankle_p, stance_phase, first)
        self._train = new_train()
        self._command = np.zeros(4)
        self._commands = [StimCommand.off(c) for c in range(channels)]
        self._sample_out = np.zeros(3)
        self._k = 0
        self._closed = False

    @property
    def sample_period_s(self) -> float:
        """Time between samples."""
        return self._dt

    @property
    def channels(self) -> int:
        """Number of stimulation channels (channel 0 drives tibialis anterior)."""
        return self._channels

    @property
    def profile(self) -> PatientProfile:
        """The patient being simulated."""
        return self._profile

    @property
    def schedule(self) -> GaitSchedule:
        """The trial's stride table, drawn from the seed at construction."""
        return self._schedule

    @property
    def commands(self) -> tuple[StimCommand, ...]:
        """The command each channel holds now."""
        return tuple(self._commands)

    def warm_up(self) -> None:
        """Compile (or load from the cache) the physics kernel before the loop.

        Runs ``limb_step`` once with the argument types of ``read`` on copies of the
        state, so the trial is unchanged.
        """
        limb_step(
            0,
            self._dt,
            self._schedule.strides,
            self._walk.copy(),
            self._sensor_p,
            np.float64(0.0),
            self._muscle_p,
            self._muscle_s.copy(),
            self._delay.copy(),
            self._ankle_p,
            self._ankle_s.copy(),
            self._train.copy(),
            self._command.copy(),
            np.zeros_like(self._sample_out),
            np.zeros(len(TRUTH_COLUMNS)),
        )

    def read(self) -> Sample | None:
        """The sample at t = k * period, then one period of physics; None at the end."""
        k = self._k
        if self._closed or k >= self._n_samples:
            return None
        j = k - self._noise_start
        if j >= self._noise.size:
            self._new_block(k)
            j = 0
        out = self._sample_out
        limb_step(
            k,
            self._dt,
            self._schedule.strides,
            self._walk,
            self._sensor_p,
            self._noise[j],
            self._muscle_p,
            self._muscle_s,
            self._delay,
            self._ankle_p,
            self._ankle_s,
            self._train,
            self._command,
            out,
            self._truth[-1][j],
        )
        self._k = k + 1
        return Sample(k * self._dt, float(out[O_GYRO]), int(out[O_HEEL_SWITCH]),
                      float(out[O_HEEL_FORCE]))

    def _new_block(self, k: int) -> None:
        """Noise and truth storage for samples ``k`` to ``k + BLOCK_SAMPLES - 1``."""
        self._noise_start = k
        self._noise = self._noise_rng.standard_normal(BLOCK_SAMPLES)
        self._truth.append(np.zeros((BLOCK_SAMPLES, len(TRUTH_COLUMNS))))

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        """Hold each named channel's command from the next physics step on.

        A channel outside 0..channels-1, or a negative or non-finite field, is refused
        with ``ValueError`` before any command is taken, as a board would refuse it.
        """
        for cmd in commands:
            if not 0 <= cmd.channel < self._channels:
                raise ValueError(
                    f"channel {cmd.channel} out of range 0..{self._channels - 1}"
                )
            for name in ("amplitude_ma", "pulse_width_us", "frequency_hz"):
                value = getattr(cmd, name)
                if not (math.isfinite(value) and value >= 0.0):
                    raise ValueError(f"channel {cmd.channel}: {name} {value!r} is invalid")
        for cmd in commands:
            self._commands[cmd.channel] = cmd
        self._set_channel_zero()

    def stop_all(self) -> None:
        """Turn every channel off."""
        self._commands = [StimCommand.off(c) for c in range(self._channels)]
        self._command[:] = 0.0

    def close(self) -> None:
        """Stop stimulation and end the trial: ``read`` returns None from now on."""
        self.stop_all()
        self._closed = True

    def true_events(self) -> list[tuple[float, str]]:
        """Every true gait event in [0, duration) as (time_s, name), sorted by time."""
        return self._schedule.events()

    def truth(self) -> dict[str, np.ndarray]:
        """The physical state of every sample read so far, one array per column.

        ``ankle_angle_deg`` (positive dorsiflexion), ``toe_clearance_mm`` (0 in stance,
        negative is a toe drag), ``ta_activation`` (0..1) at the sample's time, and
        ``pulses``: channel-0 pulses delivered in the period that starts at the sample.
        """
        rows = np.concatenate(self._truth)[: self._k]
        columns = {name: rows[:, i].copy() for i, name in enumerate(TRUTH_COLUMNS)}
        columns["pulses"] = columns["pulses"].astype(np.int64)
        return columns

    def _set_channel_zero(self) -> None:
        """Channel 0's command into the kernel's array (on flag, mA, us, Hz), in place."""
        cmd = self._commands[0]
        numbers = self._command
        numbers[C_ON] = 1.0 if cmd.delivers else 0.0
        numbers[C_AMPLITUDE_MA] = cmd.amplitude_ma
        numbers[C_PULSE_WIDTH_US] = cmd.pulse_width_us
        numbers[C_FREQUENCY_HZ] = cmd.frequency_hz
