"""The simulated patient's leg: a ``SensorSource`` and a ``Stimulator`` in one object.

Each ``read`` returns the sensor sample at t = k * period and then advances the physics
by one period with the stimulation commanded so far, so the loop closes through the
limb: pulses of the peroneal channel (channel 0) recruit tibialis anterior
(``sim.muscle``), whose force lifts the foot in swing and brakes it in loading response
(``sim.ankle``), against the patient's own residual strength (``sim.voluntary``) and
spasticity. Other channels are accepted, kept and ignored by the physics.

The physics runs in steps of at most 1 ms (``MAX_STEP_S``, shorter if the profile's
stiffest mode needs it), several per sample at low sample rates, so the patient is the
same patient at 100 Hz and at 2 kHz; only the sensors are sampled at the loop's rate.
The pulses of a sample period all reach the muscle at the start of the period, so pulse
times are quantised to the sample period (2 ms at 500 Hz, 10 ms at 100 Hz).

All numerics of a sample run in one numba kernel (``limb_step``) over a few float64
arrays (every module's parameters in one array, every state in another), so calling it
costs little; ``run`` steps a whole command sequence inside one compiled loop, for
open-loop studies and sweeps, with exactly the same result as ``read``/``apply`` sample
by sample. All randomness comes from the seed through ``numpy.random.SeedSequence``:
the gait schedule and each sensor noise source use separate child streams, so the same
seed gives the same trial bit for bit however the loop is paced, and switching one noise
source on does not change the others.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from controller.eventlog import TrueEvents
from controller.kernels import in_python, kernel, pack
from controller.ports import Sample, StimCommand, check_commands
from controller.pulses import advance_train, new_train
from sim import ankle, muscle, sensors, voluntary
from sim.gait import (
    LIMB_OFFSET_M,
    NEXT_HEEL_STRIKE,
    TOE_OFF,
    GaitSchedule,
    build_schedule,
    locate_stride,
    stance_clock,
)
from sim.patient import PatientProfile

#: The simulated muscles by stimulator output: only tibialis anterior, on output 0 (the
#: peroneal nerve). Pulses on any other output are kept and drive nothing.
MUSCLES = {0: "tibialis anterior"}

#: Longest physics step. Semi-implicit Euler is stable up to 2 per mode; the step is
#: also kept below 1 / (fastest mode), which keeps the swing dynamics accurate.
MAX_STEP_S = 1e-3
MAX_STEP_PER_MODE = 1.0
#: Lowest sample rate: a period must not hold more than one pulse of a 100 Hz train.
MIN_SAMPLE_RATE_HZ = 100.0
#: Noise is drawn, and truth storage grows, in blocks of this many samples, so memory
#: follows the samples actually read, not the nominal duration.
BLOCK_SAMPLES = 4096
#: Truth rows of a limb that streams its truth as it goes (``SimulatedLimb.streaming``:
#: the board emulators, which send each row within a few samples of it): a ring, so
#: that no read copies the rows of the whole walk. Truth storage grown twofold copied
#: every row at samples 4,096 * 2**n: 2.3-55 ms at 2**18 (9 columns, 19 MB into fresh
#: pages), a board silent on the host's wall clock for longer than its 30 ms heartbeat
#: (docs/cli.md, "Long work").
STREAMING_TRUTH_ROWS = BLOCK_SAMPLES
#: The most blocks of noise ``SimulatedLimb.draw_noise_ahead`` draws (65,536 samples, a
#: minute at 1 kHz: 2.6 MB).
NOISE_AHEAD_BLOCKS = 16

# Offsets of each module's parameters in the limb's parameter array.
_SENSOR_P = 0
_MUSCLE_P = _SENSOR_P + sensors.N_PARAMS
_ANKLE_P = _MUSCLE_P + muscle.N_PARAMS
_VOLUNTARY_P = _ANKLE_P + ankle.N_PARAMS
_LIMB_P = _VOLUNTARY_P + voluntary.N_PARAMS
#: The limb's own parameters, after the modules'.
LIMB_PARAM_NAMES = (
    "period_s",  # sample period
    "steps",  # physics steps per sample
    "reflex_at",  # where the reflex delay line starts in the buffer array
)
(L_PERIOD_S, L_STEPS, L_REFLEX_AT) = range(_LIMB_P, _LIMB_P + len(LIMB_PARAM_NAMES))
N_PARAMS = _LIMB_P + len(LIMB_PARAM_NAMES)

# Offsets of each module's state in the limb's state array.
_SENSOR_S = 0
_MUSCLE_S = _SENSOR_S + sensors.N_STATE
_ANKLE_S = _MUSCLE_S + muscle.N_STATE
_VOLUNTARY_S = _ANKLE_S + ankle.N_STATE
_TRAIN_S = _VOLUNTARY_S + voluntary.N_STATE  # the channel-0 pulse train (2 entries)
S_CURSOR = _TRAIN_S + 2  # stride row of the previous sample (a forward search cursor)
N_STATE = S_CURSOR + 1

# Channel-0 command array.
COMMAND_NAMES = ("on", "amplitude_ma", "pulse_width_us", "frequency_hz")
(C_ON, C_AMPLITUDE_MA, C_PULSE_WIDTH_US, C_FREQUENCY_HZ) = range(len(COMMAND_NAMES))

# Sample output array.
OUTPUT_NAMES = ("gyro_rad_s", "heel_switch", "heel_force_n")
(O_GYRO, O_HEEL_SWITCH, O_HEEL_FORCE) = range(len(OUTPUT_NAMES))

# Truth row.
TRUTH_COLUMNS = (
    "ankle_angle_deg",
    "toe_clearance_mm",
    "ta_activation",
    "pulses",
    "foot_slap",
    "forefoot_impact_rad_s",
    "ta_fitness",
    "voluntary_max_nm",
    "reflex_torque_nm",
)
(
    T_ANKLE_DEG,
    T_CLEARANCE_MM,
    T_ACTIVATION,
    T_PULSES,
    T_FOOT_SLAP,
    T_IMPACT,
    T_FITNESS,
    T_VOLUNTARY_NM,
    T_REFLEX_NM,
) = range(len(TRUTH_COLUMNS))
_INTEGER_COLUMNS = ("pulses", "foot_slap")

# Children of the trial seed, one per random stream.
_GAIT_STREAM = 0
_NOISE_STREAMS = (1, 2, 3, 4, 5)  # one per sensor noise column, in column order
_DROPOUT_STREAM = 6  # the gyroscope's dropouts
#: The heel switch's dropouts: a stream added after the others, so that they keep their
#: numbers (``SeedSequence.spawn``'s first children do not depend on how many it spawns)
#: and a profile without heel switch dropouts walks, and reads, as it did before.
_HEEL_DROPOUT_STREAM = 7
_STREAMS = 8


@kernel
def _sample(
    k: int,
    m: int,
    strides: np.ndarray,
    features: np.ndarray,
    params: np.ndarray,
    sensor_p: np.ndarray,
    muscle_p: np.ndarray,
    ankle_p: np.ndarray,
    voluntary_p: np.ndarray,
    state: np.ndarray,
    sensor_s: np.ndarray,
    muscle_s: np.ndarray,
    ankle_s: np.ndarray,
    voluntary_s: np.ndarray,
    train: np.ndarray,
    muscle_delay: np.ndarray,
    reflex_delay: np.ndarray,
    dropouts: np.ndarray,
    noise: np.ndarray,
    command: np.ndarray,
    sample: np.ndarray,
    truth: np.ndarray,
) -> None:
    """Sample ``k`` on the module views of the packed arrays, under channel 0's
    ``command``, into ``sample``; row ``m`` of ``noise`` and ``truth``."""
    period = params[L_PERIOD_S]
    t = k * period
    i = locate_stride(strides, int(state[S_CURSOR]), t)
    state[S_CURSOR] = i
    sample[O_GYRO] = sensors.gyro_sample(
        strides, features, i, t, sensor_p, sensor_s, dropouts, noise, m
    )
    sample[O_HEEL_SWITCH] = sensors.heel_switch_sample(
        strides, i, t, sensor_p, sensor_s, dropouts, noise[m, sensors.N_BOUNCE]
    )
    load = sensors.heel_load_n(strides, i, t, sensor_p)
    reading = sensors.heel_sensor_load_n(load, strides, i, t, sensor_p)
    sample[O_HEEL_FORCE] = sensors.heel_force(reading, sensor_p, noise[m, sensors.N_FORCE])

    toe_off = strides[i, TOE_OFF]
    if t >= toe_off:
        phase = (t - toe_off) / (strides[i, NEXT_HEEL_STRIKE] - toe_off)
        clearance = ankle.toe_clearance_m(ankle_s, ankle_p, phase, strides[i, LIMB_OFFSET_M])
    else:
        clearance = ankle.forefoot_height_m(ankle_s, ankle_p, stance_clock(strides, i, t)[0])
    truth[m, T_ANKLE_DEG] = math.degrees(ankle_s[ankle.S_ANGLE])
    truth[m, T_CLEARANCE_MM] = 1e3 * clearance
    truth[m, T_ACTIVATION] = muscle_s[muscle.S_FORCE] / muscle_p[muscle.P_FORCE_REF_N]
    truth[m, T_FITNESS] = muscle.fitness(muscle_s, muscle_p)
    strength = voluntary.voluntary_max_nm(voluntary_s, voluntary_p, t)
    truth[m, T_VOLUNTARY_NM] = strength
    truth[m, T_REFLEX_NM] = ankle_s[ankle.S_REFLEX_NM]

    on = command[C_ON] != 0.0
    pulses = advance_train(train, on, command[C_FREQUENCY_HZ], period)
    truth[m, T_PULSES] = pulses
    charge_uc = 1e-3 * command[C_AMPLITUDE_MA] * command[C_PULSE_WIDTH_US]

    ankle_s[ankle.S_IMPACT_RAD_S] = 0.0
    ankle_s[ankle.S_SLAP] = 0.0
    steps = int(params[L_STEPS])
    h = period / steps
    j = i
    for s in range(steps):
        from_s = t + s * h
        to_s = from_s + h
        activation = muscle.muscle_step(
            muscle_s, muscle_p, muscle_delay, pulses if s == 0 else 0, charge_uc
        )
        j = locate_stride(strides, j, to_s)
        if s > 0:
            strength = voluntary.voluntary_max_nm(voluntary_s, voluntary_p, from_s)
            load = sensors.heel_load_n(strides, j, from_s, sensor_p)
        ankle.ankle_step(ankle_s, ankle_p, reflex_delay, strides, j, from_s, to_s, activation,
                         strength, load)
        effort = ankle_s[ankle.S_VOLUNTARY_NM] / strength if strength > 0.0 else 0.0
        voluntary.voluntary_step(voluntary_s, voluntary_p, effort)
    truth[m, T_IMPACT] = ankle_s[ankle.S_IMPACT_RAD_S]
    truth[m, T_FOOT_SLAP] = ankle_s[ankle.S_SLAP]


@kernel
def _views(
    params: np.ndarray, state: np.ndarray, buffers: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The module views of the packed arrays, in ``_sample``'s order: the parameters of
    the sensors, muscle, ankle and voluntary modules, their states and the pulse train,
    the muscle's and the reflex's delay lines."""
    reflex_at = int(params[L_REFLEX_AT])
    return (params[_SENSOR_P:_MUSCLE_P], params[_MUSCLE_P:_ANKLE_P],
            params[_ANKLE_P:_VOLUNTARY_P], params[_VOLUNTARY_P:_LIMB_P],
            state[_SENSOR_S:_MUSCLE_S], state[_MUSCLE_S:_ANKLE_S],
            state[_ANKLE_S:_VOLUNTARY_S], state[_VOLUNTARY_S:_TRAIN_S],
            state[_TRAIN_S:S_CURSOR], buffers[:reflex_at], buffers[reflex_at:])


@kernel
def run_block(
    k0: int,
    strides: np.ndarray,
    features: np.ndarray,
    params: np.ndarray,
    state: np.ndarray,
    buffers: np.ndarray,
    dropouts: np.ndarray,
    noise: np.ndarray,
    commands: np.ndarray,
    samples: np.ndarray,
    truth: np.ndarray,
) -> None:
    """Samples k0 .. k0 + len(commands) - 1 in one compiled loop.

    Row m of ``noise``, ``commands``, ``samples`` and ``truth`` belongs to sample k0 + m.
    ``limb_step`` is this for one sample.
    """
    (sensor_p, muscle_p, ankle_p, voluntary_p, sensor_s, muscle_s, ankle_s, voluntary_s,
     train, muscle_delay, reflex_delay) = _views(params, state, buffers)
    for m in range(commands.shape[0]):
        _sample(k0 + m, m, strides, features, params, sensor_p, muscle_p, ankle_p,
                voluntary_p, state, sensor_s, muscle_s, ankle_s, voluntary_s, train,
                muscle_delay, reflex_delay, dropouts, noise, commands[m], samples[m], truth)


@kernel
def limb_step(
    k: int,
    strides: np.ndarray,
    features: np.ndarray,
    params: np.ndarray,
    state: np.ndarray,
    buffers: np.ndarray,
    dropouts: np.ndarray,
    noise: np.ndarray,
    command: np.ndarray,
    sample_out: np.ndarray,
    truth: np.ndarray,
) -> None:
    """Write sample ``k`` (into ``sample_out``, and its truth into row k of ``truth``,
    modulo its rows),
    then advance the physics one sample period.

    ``noise`` is the current noise block (sample k uses its row k % BLOCK_SAMPLES);
    ``command`` is channel 0's command over the period. (It calls ``_sample`` directly:
    through ``run_block`` it would reshape ``command`` and ``sample_out`` into tables of
    one row, two calls into numba's helper library per sample, 5 % of a compiled
    closed loop's time.)
    """
    m = k % BLOCK_SAMPLES
    row = k if k < truth.shape[0] else k % truth.shape[0]  # fewer rows: a ring
    (sensor_p, muscle_p, ankle_p, voluntary_p, sensor_s, muscle_s, ankle_s, voluntary_s,
     train, muscle_delay, reflex_delay) = _views(params, state, buffers)
    _sample(k, 0, strides, features, params, sensor_p, muscle_p, ankle_p, voluntary_p, state,
            sensor_s, muscle_s, ankle_s, voluntary_s, train, muscle_delay, reflex_delay,
            dropouts, noise[m:m + 1], command, sample_out, truth[row:row + 1])


class StepArrays(NamedTuple):
    """The arguments of ``limb_step`` after the sample index, in order."""

    strides: np.ndarray
    features: np.ndarray
    params: np.ndarray
    state: np.ndarray
    buffers: np.ndarray
    dropouts: np.ndarray
    noise: np.ndarray
    command: np.ndarray
    sample: np.ndarray
    truth: np.ndarray


def _physics_steps(profile: PatientProfile, period_s: float) -> int:
    """Physics steps per sample: step at most ``MAX_STEP_S`` and stable for the profile."""
    step_s = min(MAX_STEP_S, MAX_STEP_PER_MODE / ankle.fastest_mode_rad_s(profile))
    return math.ceil(period_s / step_s - 1e-9)


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
        truth_rows: np.ndarray | None = None,
    ) -> None:
        """``truth_rows``, if given, is where the truth of every sample is kept (one row
        per sample of the trial, ``TRUTH_COLUMNS`` wide): memory the caller chose, e.g.
        shared with a process that streams it to disk. Fewer rows than the trial has
        samples make a ring: sample k's truth goes to row k modulo their number, for a
        caller that reads each row before it is written again (a long trial,
        ``controller.trial.window``; ``truth`` then holds the last rows only). By
        default storage grows with the samples read."""
        if not (math.isfinite(sample_rate_hz) and sample_rate_hz >= MIN_SAMPLE_RATE_HZ):
            raise ValueError(
                f"sample_rate_hz must be at least {MIN_SAMPLE_RATE_HZ:g}, got {sample_rate_hz!r}"
            )
        if not (math.isfinite(duration_s) and duration_s > 0.0):
            raise ValueError(f"duration_s must be positive, got {duration_s!r}")
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels!r}")
        self._profile = profile
        self._dt = 1.0 / sample_rate_hz
        self._n_samples = round(duration_s * sample_rate_hz)
        self._channels = channels
        streams = np.random.SeedSequence(seed).spawn(_STREAMS)
        self._schedule = build_schedule(profile, duration_s, streams[_GAIT_STREAM])
        used = sensors.noise_in_use(profile)
        self._noise_rngs = [
            np.random.default_rng(streams[s]) if used[c] else None
            for c, s in enumerate(_NOISE_STREAMS)
        ]
        self._noise = np.zeros((0, sensors.NOISE_COLUMNS))
        self._noise_block = -1  # which block of BLOCK_SAMPLES samples ``_noise`` is for
        # Blocks of noise drawn ahead (``draw_noise_ahead``), by block, and the thread
        # drawing them while it runs.
        self._noise_ahead: list[np.ndarray] = []
        self._drawn = threading.Condition()  # notified as each block is drawn ahead
        self._drawing: threading.Thread | None = None
        self._all_drawn = False
        self._stop_drawing_now = False
        self._drawing_failed: BaseException | None = None
        self._dropouts = sensors.draw_dropouts(
            profile, duration_s, np.random.default_rng(streams[_DROPOUT_STREAM]),
            np.random.default_rng(streams[_HEEL_DROPOUT_STREAM]),
        )

        steps = _physics_steps(profile, self._dt)
        step_s = self._dt / steps
        sensor_p = sensors.make_params(profile, self._dt)
        self._features = sensors.gyro_features(self._schedule.strides, sensor_p)
        muscle_p = muscle.make_params(profile, step_s)
        ankle_p = ankle.make_params(profile, step_s)
        muscle_delay = muscle.new_delay_line(profile, step_s)
        own = pack(LIMB_PARAM_NAMES, {
            "period_s": self._dt, "steps": steps, "reflex_at": muscle_delay.size,
        })
        self._params = np.concatenate(
            (sensor_p, muscle_p, ankle_p, voluntary.make_params(profile, step_s), own)
        )
        first = 1  # the trial starts in stride row 1 (row 0 ends before t = 0)
        stance_phase = float(in_python(stance_clock)(self._schedule.strides, first, 0.0)[0])
        self._state = np.concatenate((
            sensors.new_sensor_state(sensor_p),
            muscle.new_muscle_state(muscle_p),
            ankle.new_ankle_state(ankle_p, stance_phase, first),
            voluntary.new_voluntary_state(),
            new_train(),
            [first],
        ))
        self._buffers = np.concatenate(
            (muscle_delay, np.zeros(ankle.reflex_delay_length(profile, step_s)))
        )
        self._kernel_arrays = (self._schedule.strides, self._features, self._params,
                               self._state, self._buffers, self._dropouts)
        self._command = np.zeros(len(COMMAND_NAMES))
        self._commands = [StimCommand.off(c) for c in range(channels)]
        self._sample_out = np.zeros(len(OUTPUT_NAMES))
        self._own_truth = truth_rows is None  # grown as samples are read
        if truth_rows is None:
            truth_rows = np.zeros((min(self._n_samples, BLOCK_SAMPLES), len(TRUTH_COLUMNS)))
        elif (truth_rows.ndim != 2 or truth_rows.shape[1] != len(TRUTH_COLUMNS)
              or not 0 < truth_rows.shape[0] <= self._n_samples):
            raise ValueError(
                f"truth_rows must have shape {(self._n_samples, len(TRUTH_COLUMNS))} "
                f"(or fewer rows, a ring), got {truth_rows.shape}"
            )
        self._truth = truth_rows
        self._k = 0
        self._closed = False

    @classmethod
    def streaming(
        cls,
        profile: PatientProfile,
        sample_rate_hz: float,
        duration_s: float,
        seed: int,
        channels: int = 2,
    ) -> SimulatedLimb:
        """A limb whose truth is read as it goes (``truth_since``, a board emulator's
        debug frames), never whole: its truth rows are a ring of
        ``STREAMING_TRUTH_ROWS``, so memory and the time of every ``read`` stay the same
        however long the walk (see ``STREAMING_TRUTH_ROWS``)."""
        n_samples = round(duration_s * sample_rate_hz)
        rows = max(1, min(n_samples, STREAMING_TRUTH_ROWS))
        return cls(profile, sample_rate_hz, duration_s, seed, channels,
                   truth_rows=np.zeros((rows, len(TRUTH_COLUMNS))))

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

    def dropouts(self, sensor: str) -> np.ndarray:
        """The intervals (start_s, end_s), one row each, in which ``sensor``
        (``"gyro_rad_s"`` or ``"heel_switch"``) reads NaN: its dropouts, drawn from the
        seed at construction (a sample at t is lost when start_s <= t < end_s)."""
        column = 2 * sensors.DROPOUT_SENSORS.index(sensor)
        return sensors.dropout_intervals(self._dropouts, column)

    @property
    def commands(self) -> tuple[StimCommand, ...]:
        """The command each channel holds now."""
        return tuple(self._commands)

    @property
    def samples_read(self) -> int:
        """Samples produced so far (by ``read`` or ``run``)."""
        return self._k

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the physics kernel before the loop.

        Runs ``limb_step`` once with the argument types of ``read`` on copies of every
        array, so the trial itself is unchanged.
        """
        strides, features, params, state, buffers, dropouts = (
            a.copy() for a in self._kernel_arrays
        )
        noise = np.zeros((BLOCK_SAMPLES, sensors.NOISE_COLUMNS))
        truth = np.zeros((1, self._truth.shape[1]))
        limb_step(
            0, strides, features, params, state, buffers, dropouts,
            noise, self._command.copy(), self._sample_out.copy(), truth,
        )

    def read(self) -> Sample | None:
        """The sample at t = k * period, then one period of physics; None at the end."""
        k = self._k
        if self._closed or k >= self._n_samples:
            return None
        if k % BLOCK_SAMPLES == 0 or (self._own_truth and k >= self._truth.shape[0]):
            self._prepare(k, k + 1)
        out = self._sample_out
        limb_step(k, *self._kernel_arrays, self._noise, self._command, out, self._truth)
        self._k = k + 1
        gyro, switch, force = out.tolist()
        # A heel switch sample is 1 or 0 as ever, NaN when lost (a dropout).
        return Sample(k * self._dt, gyro, int(switch) if switch == switch else switch, force)

    def run(self, commands: np.ndarray) -> dict[str, np.ndarray]:
        """Step the limb open loop over a whole channel-0 command sequence.

        ``commands`` has one row (on flag, amplitude mA, pulse width us, frequency Hz)
        per sample from the next one on: row m is the command in force while sample
        k + m is simulated, as if it had been ``apply``-ed before that sample's ``read``.
        The run stops at the end of the trial. Returns the sensor samples as columns
        (``time_s``, ``gyro_rad_s``, ``heel_switch``, ``heel_force_n``; the heel
        switch 1.0 or 0.0, NaN where its sample was lost); the truth is in
        ``truth()`` as for ``read``. Same seed and commands, same numbers as ``read``.
        """
        commands = np.asarray(commands, dtype=float)
        if commands.ndim != 2 or commands.shape[1] != len(COMMAND_NAMES):
            raise ValueError("commands must have one row of 4 numbers per sample")
        if not (np.all(np.isfinite(commands)) and np.all(commands >= 0.0)):
            raise ValueError("commands must be finite and not negative")
        start = self._k
        count = 0 if self._closed else min(commands.shape[0], self._n_samples - start)
        samples = np.empty((count, len(OUTPUT_NAMES)))  # every row is written by the kernel
        done = 0
        while done < count:
            k = start + done
            self._prepare(k, start + count)
            n = min(count - done, BLOCK_SAMPLES - k % BLOCK_SAMPLES)
            noise = self._noise[k % BLOCK_SAMPLES: k % BLOCK_SAMPLES + n]
            run_block(k, *self._kernel_arrays, noise, commands[done:done + n],
                      samples[done:done + n], self._truth[k:k + n])
            done += n
            self._k = k + n
        if count:
            last = commands[count - 1]
            self._command[:] = last
            self._commands[0] = StimCommand(0, bool(last[C_ON]), *map(float, last[1:]))
        return {
            "time_s": (start + np.arange(count)) * self._dt,
            "gyro_rad_s": samples[:, O_GYRO],
            "heel_switch": samples[:, O_HEEL_SWITCH],
            "heel_force_n": samples[:, O_HEEL_FORCE],
        }

    def next_block(self) -> tuple[int, int, StepArrays]:
        """For a compiled closed loop: the next sample ``k``, how many samples from it
        share the current noise block (and lie within the trial; 0 at its end), and the
        arrays to call ``limb_step`` with for each of them. The caller writes channel
        0's command array as ``apply`` would, and then reports how far it got with
        ``advanced``."""
        k = self._k
        count = 0 if self._closed else max(0, min(
            self._n_samples - k, BLOCK_SAMPLES - k % BLOCK_SAMPLES
        ))
        if count:
            self._prepare(k, k + count)
        return k, count, StepArrays(*self._kernel_arrays, self._noise, self._command,
                                    self._sample_out, self._truth)

    def advanced(self, count: int, commands: Sequence[StimCommand]) -> None:
        """A compiled loop produced ``count`` more samples with ``limb_step`` and left
        ``commands`` held (the numbers of channel 0 are already in its command array)."""
        self._k += count
        for cmd in commands:
            self._commands[cmd.channel] = cmd

    def draw_noise_ahead(self) -> Callable[[], None]:
        """Draw the noise of the trial's first blocks (up to ``NOISE_AHEAD_BLOCKS``) from
        a thread of its own while the caller goes on; returns a function that stops it
        after the block it is drawing and waits until it has stopped (the blocks it did
        not draw are drawn when they are needed, as without it).

        Each block is drawn from the same generators in the same order as ``_prepare``
        draws it, only earlier, so the trial is the same sample for sample. numpy
        releases the interpreter lock while it draws, so on a machine with a free CPU
        the 70 us a block (1 ms of a minute at 1 kHz) leave the trial's own thread: a
        simulated trial draws them while it builds its stages and opens its files, and
        stops the drawing before it forks its log writer (a fork copies the calling
        thread only; the loop's first block is drawn by then).
        """
        if self._drawing is not None or self._noise_block >= 0:
            return self._stop_drawing
        blocks = min(NOISE_AHEAD_BLOCKS, -(-self._n_samples // BLOCK_SAMPLES))
        rngs = list(enumerate(self._noise_rngs))

        def draw() -> None:
            try:
                for _ in range(blocks):
                    if self._stop_drawing_now:
                        break
                    noise = np.zeros((BLOCK_SAMPLES, sensors.NOISE_COLUMNS))
                    for column, rng in rngs:
                        if rng is not None:
                            noise[:, column] = rng.standard_normal(BLOCK_SAMPLES)
                    with self._drawn:
                        self._noise_ahead.append(noise)
                        self._drawn.notify_all()
            except BaseException as err:  # raised where the noise is waited for
                self._drawing_failed = err
            finally:
                with self._drawn:
                    self._all_drawn = True
                    self._drawn.notify_all()

        self._drawing = threading.Thread(target=draw, name="limb noise", daemon=True)
        self._drawing.start()
        return self._stop_drawing

    def _stop_drawing(self) -> None:
        """Stop drawing noise ahead after the block being drawn; wait until stopped."""
        self._stop_drawing_now = True
        self._wait_for_noise()

    def _wait_for_noise(self, block: int | None = None) -> None:
        """Wait until the noise drawn ahead (``draw_noise_ahead``) holds ``block``, or
        until it is complete."""
        thread = self._drawing
        if thread is not None:
            if block is not None:
                with self._drawn:
                    self._drawn.wait_for(
                        lambda: len(self._noise_ahead) > block or self._all_drawn
                    )
            if block is None or self._all_drawn:
                thread.join()
                self._drawing = None
        if self._drawing_failed is not None:
            raise RuntimeError("drawing the limb's noise failed") from self._drawing_failed

    def _prepare(self, k: int, end: int) -> None:
        """Noise for sample ``k``'s block, and truth storage for the samples before ``end``.

        Storage grows at least twofold (amortised copies), never past the trial's end.
        New rows are left uninitialised: the kernel writes every column of a sample's
        row, and ``truth`` only returns the rows of samples produced.
        """
        if k // BLOCK_SAMPLES != self._noise_block:
            self._noise_block = k // BLOCK_SAMPLES
            self._wait_for_noise(self._noise_block)
            if self._noise_block < len(self._noise_ahead):  # drawn ahead: its pages mapped
                self._noise = self._noise_ahead[self._noise_block]
                return self._grow_truth(end)
            # One block's memory for the whole trial, rewritten in place: a fresh array
            # per block costs the kernel a page fault for each of its pages on first
            # touch. A column no source of noise uses stays zero.
            if self._noise.shape[0] != BLOCK_SAMPLES:
                self._noise = np.zeros((BLOCK_SAMPLES, sensors.NOISE_COLUMNS))
            for column, rng in enumerate(self._noise_rngs):
                if rng is not None:
                    self._noise[:, column] = rng.standard_normal(BLOCK_SAMPLES)
        self._grow_truth(end)

    def _grow_truth(self, end: int) -> None:
        """Truth storage for the samples before ``end`` (see ``_prepare``)."""
        rows = self._truth.shape[0]
        if end > rows and self._own_truth:
            truth = np.empty((min(max(2 * rows, end), self._n_samples), self._truth.shape[1]))
            truth[: self._k] = self._truth[: self._k]
            self._truth = truth

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        """Hold each named channel's command from the next physics step on.

        A command no stimulator can deliver (``controller.ports.check_commands``) is
        refused with ``ValueError`` before any command is taken, as a board refuses it.
        """
        check_commands(commands, self._channels)
        for cmd in commands:
            self._commands[cmd.channel] = cmd
            if cmd.channel == 0:
                number = self._command
                number[C_ON] = 1.0 if cmd.delivers else 0.0
                number[C_AMPLITUDE_MA] = cmd.amplitude_ma
                number[C_PULSE_WIDTH_US] = cmd.pulse_width_us
                number[C_FREQUENCY_HZ] = cmd.frequency_hz

    def stop_all(self) -> None:
        """Turn every channel off."""
        self._commands = [StimCommand.off(c) for c in range(self._channels)]
        self._command[:] = 0.0

    def close(self) -> None:
        """Stop stimulation and end the trial: ``read`` returns None from now on."""
        self.stop_all()
        self._closed = True

    def true_events(self) -> TrueEvents:
        """Every true gait event in [0, duration) as (time_s, name), sorted by time
        (``controller.eventlog.TrueEvents``: arrays, read as such a sequence)."""
        return self._schedule.events()

    def truth(self) -> dict[str, np.ndarray]:
        """The physical state of every sample produced so far, one array per column.

        At the sample's time: ``ankle_angle_deg`` (positive dorsiflexion),
        ``toe_clearance_mm`` (negative is a toe drag; in stance the forefoot's height while
        the foot turns down about the heel, 0 once the sole is flat), ``ta_activation``
        (tibialis anterior force as a fraction of its rested tetanic maximum),
        ``ta_fitness`` (its fatigue state, 1 rested), ``voluntary_max_nm`` (the
        strongest voluntary dorsiflexion available) and ``reflex_torque_nm`` (the
        plantarflexing torque of the stretch reflex). In the period that starts at the
        sample: ``pulses`` (channel-0 pulses delivered), ``forefoot_impact_rad_s`` (the
        forefoot's angular velocity onto the floor if a heel-first landing ended there,
        else 0) and ``foot_slap`` (1 if that landing was a foot slap: faster than the
        profile's ``foot_slap_velocity_rad_s`` and within loading response).
        """
        return self.truth_since(0)

    def truth_since(self, first: int) -> dict[str, np.ndarray]:
        """``truth`` of samples ``first`` onwards only: a streaming consumer (the board
        emulator) reads each row once instead of copying the whole trial every time.

        With a ring of truth rows (``truth_rows``, ``streaming``) only the samples the
        ring still holds can be read: ``ValueError`` for older ones."""
        ring = self._truth.shape[0]
        first = max(0, first)
        if self._k <= ring:
            rows = self._truth[first : self._k]
        elif first < self._k - ring:
            raise ValueError(
                f"the truth of sample {first} is gone: a ring of {ring} rows holds "
                f"samples {self._k - ring} to {self._k - 1}"
            )
        else:
            rows = self._truth[np.arange(first, self._k) % ring]
        columns = {name: rows[:, i].copy() for i, name in enumerate(TRUTH_COLUMNS)}
        for name in _INTEGER_COLUMNS:
            columns[name] = columns[name].astype(np.int64)
        return columns
