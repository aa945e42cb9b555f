"""The three detectors behind one interface: per sample for the loop, batch for files.

``GaitDetector.process(sample)`` is what the control loop calls; ``detect_batch`` runs
the very same compiled kernel over a whole recording (the batch loop is compiled too, so
a recording of an hour takes well under a second). Both go through ``detector_step``,
which dispatches on the detector kind, so the per-sample and batch results are identical
by construction (a test checks it sample by sample). Each runs it with the kind fixed
when it is compiled (``detector_step_for``, ``controller.kernels.specialised``): a
trial compiles only the detector it runs.

A ``DetectorSetup`` is what a kernel needs: which kind, its parameter array, its fresh
state, which heel signal feeds it (switch or force) and its gap limit. ``gyro_setup``,
``heel_setup`` and ``fused_setup`` build one from the configs; ``controller.detect.config``
builds the one a trial config asks for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from controller.detect import fused, gyro, heel, outbox
from controller.detect.axis import CHECKING, SAGITTAL, AxisCheck
from controller.detect.period import median_period_s
from controller.events import DetectedEvent, Event, Phase
from controller.kernels import dispatch_kernel, kernel, specialised
from controller.ports import Sample

GYRO = 0
HEEL = 1
FUSED = 2
KIND_NAMES = {GYRO: "gyro", HEEL: "heel", FUSED: "fused"}


@dispatch_kernel
def detector_step(
    kind: int,
    state: np.ndarray,
    params: np.ndarray,
    t_s: float,
    gyro_rad_s: float,
    heel_level: float,
    out: np.ndarray,
) -> int:
    """One sample through the detector of ``kind``: the phase, events into ``out``."""
    out[0] = 0.0
    if kind == GYRO:
        phase, event, t_event = gyro.gyro_step(state, params, t_s, gyro_rad_s)
        outbox.push(out, event, t_event)
    elif kind == HEEL:
        phase, event, t_event = heel.heel_step(state, params, t_s, heel_level)
        outbox.push(out, event, t_event)
    else:
        phase = fused.fused_step(state, params, t_s, gyro_rad_s, heel_level, out)
    return phase


@specialised
def detector_step_for(kind: int) -> Callable[..., int]:
    """``detector_step`` of one ``kind``, compiled with that detector alone:
    ``(state, params, t_s, gyro_rad_s, heel_level, out) -> phase``."""

    @kernel
    def step(
        state: np.ndarray,
        params: np.ndarray,
        t_s: float,
        gyro_rad_s: float,
        heel_level: float,
        out: np.ndarray,
    ) -> int:
        return detector_step(kind, state, params, t_s, gyro_rad_s, heel_level, out)

    return step


@specialised
def _batch_for(kind: int) -> Callable[..., int]:
    """``detector_step`` of one ``kind`` over a recording: fills the output arrays and
    returns the event count; ``out`` is the outbox reused at every sample."""

    @kernel
    def run_batch(
        state: np.ndarray,
        params: np.ndarray,
        t_s: np.ndarray,
        gyro_rad_s: np.ndarray,
        heel_level: np.ndarray,
        phases: np.ndarray,
        event_index: np.ndarray,
        event_code: np.ndarray,
        event_t_est: np.ndarray,
        out: np.ndarray,
    ) -> int:
        count = 0
        for i in range(t_s.size):
            phases[i] = detector_step(
                kind, state, params, t_s[i], gyro_rad_s[i], heel_level[i], out
            )
            for k in range(int(out[0])):
                event_index[count] = i
                event_code[count] = int(out[1 + 2 * k])
                event_t_est[count] = out[2 + 2 * k]
                count += 1
        return count

    return run_batch


@dataclass(frozen=True, eq=False)
class DetectorSetup:
    """Everything a detection kernel needs, built from the configs."""

    kind: int
    params: np.ndarray
    new_state: Callable[[], np.ndarray]
    heel_input: heel.HeelInput | None  # the heel signal the kernel reads (None: none)
    missing_limit_s: float  # longest gap that holds the phase

    @property
    def name(self) -> str:
        """``gyro``, ``heel`` or ``fused``."""
        return KIND_NAMES[self.kind]

    @property
    def uses_gyro(self) -> bool:
        """Whether the kernel reads the gyroscope."""
        return self.kind != HEEL

    @property
    def gyro_params(self) -> np.ndarray:
        """The gyroscope kernel's parameters (empty for the heel detector)."""
        if self.kind == GYRO:
            return self.params
        if self.kind == FUSED:
            return fused.gyro_params(self.params)
        return np.empty(0)

    def gyro_state(self, state: np.ndarray) -> np.ndarray | None:
        """The gyroscope kernel's part of a state of this detector (None: none)."""
        if self.kind == GYRO:
            return state
        if self.kind == FUSED:
            return fused.gyro_state(state)
        return None

    def check_period(self, sample_period_s: float) -> None:
        """Refuse a sample period for which every ordinary sample would count as a gap."""
        if not sample_period_s > 0.0:
            raise ValueError(f"sample period must be positive, got {sample_period_s} s")
        if self.missing_limit_s < 1.5 * sample_period_s:
            raise ValueError(
                f"samples {sample_period_s * 1000.0:.4g} ms apart "
                f"({1.0 / sample_period_s:.4g} Hz) are too far apart for the detector: its "
                f"unknown_after_missing_ms = {self.missing_limit_s * 1000.0:g} is shorter "
                f"than 1.5 sample periods ({1.5 * sample_period_s * 1000.0:.4g} ms), so "
                "every sample would count as missing data"
            )


def gyro_setup(config: gyro.GyroDetectorConfig) -> DetectorSetup:
    """The gyroscope detector (shank or foot, as ``config`` says)."""
    return DetectorSetup(
        GYRO, gyro.make_params(config), gyro.new_state, None, gyro.missing_limit_s(config)
    )


def heel_setup(config: heel.HeelDetectorConfig, heel_input: heel.HeelInput) -> DetectorSetup:
    """The heel detector on a 0/1 switch or on a force in newtons."""
    return DetectorSetup(
        HEEL,
        heel.make_params(config, heel_input),
        heel.new_state,
        heel_input,
        heel.missing_limit_s(config),
    )


def fused_setup(
    gyro_config: gyro.GyroDetectorConfig,
    heel_config: heel.HeelDetectorConfig,
    heel_input: heel.HeelInput,
    config: fused.FusionConfig,
) -> DetectorSetup:
    """The fused detector: gyroscope and heel sensor, each the fallback of the other."""
    return DetectorSetup(
        FUSED,
        fused.make_params(gyro_config, heel_config, heel_input, config),
        fused.new_state,
        heel_input,
        fused.missing_limit_s(gyro_config, heel_config),
    )


def _events(out: np.ndarray, t_known_s: float) -> list[DetectedEvent]:
    return [
        DetectedEvent(Event(int(out[1 + 2 * k])), t_known_s, float(out[2 + 2 * k]))
        for k in range(int(out[0]))
    ]


class GaitDetector:
    """A detector for a live loop, one sample per ``step`` or ``process``."""

    def __init__(self, setup: DetectorSetup, sample_rate_hz: float) -> None:
        if not sample_rate_hz > 0.0:
            raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
        setup.check_period(1.0 / sample_rate_hz)
        self.setup = setup
        self.sample_rate_hz = sample_rate_hz
        self._step = detector_step_for(setup.kind)
        self._state = setup.new_state()
        self._out = outbox.new_outbox()
        self._phase = Phase.UNKNOWN
        self._axis: AxisCheck | None = None
        self._axis_seen = False

    @property
    def phase(self) -> Phase:
        """The phase reported at the last sample (UNKNOWN before the first)."""
        return self._phase

    @property
    def kernel_arrays(self) -> tuple[int, np.ndarray, np.ndarray]:
        """The kind, live state and parameters ``detector_step`` runs on: a compiled
        loop (``controller.trial.compiled_loop``) steps this detector by calling the kernel
        on them, with the kind fixed when it is compiled (``phase`` then tells only what
        ``step`` last returned)."""
        return self.setup.kind, self._state, self.setup.params

    @property
    def mounting(self) -> int | None:
        """The gyroscope mounting check's verdict (``gyro.CHECKING``, ``MOUNTED``,
        ``FLIPPED``, ``UNDECIDED``), or None for a detector without a gyroscope check."""
        gyro_state = self.setup.gyro_state(self._state)
        if gyro_state is None or not gyro.checks_mounting(self.setup.gyro_params):
            return None
        return gyro.mounting(gyro_state, self.setup.gyro_params)

    def mounting_block(self) -> dict[str, object] | None:
        """The mounting check for a trial's summary (None: no gyroscope check)."""
        gyro_state = self.setup.gyro_state(self._state)
        if gyro_state is None or not gyro.checks_mounting(self.setup.gyro_params):
            return None
        return gyro.mounting_block(gyro_state, self.setup.gyro_params)

    def check_axis(self, declared: int) -> None:
        """Check the gyroscope's axis (``controller.detect.axis``) on the samples that
        carry all three (``Sample.gyro_xyz_rad_s``), axis ``declared`` (0 x, 1 y, 2 z)
        being the one read as sagittal. From the first such sample, ``process`` reports
        STANCE and no events until the axis is found sagittal (nothing gait-triggered is
        stimulated on an axis not yet checked), and UNKNOWN for good on a wrong axis.
        A source whose samples never carry the three axes leaves the check undone."""
        self._axis = AxisCheck(declared, 1.0 / self.sample_rate_hz)
        self._axis_seen = False

    @property
    def axis(self) -> int | None:
        """The axis check's verdict (``axis.CHECKING``, ``SAGITTAL``, ``WRONG_AXIS``), or
        None when no axis is checked (not asked, or no sample carried the three axes)."""
        return self._axis.verdict if self._axis is not None and self._axis_seen else None

    @property
    def axis_turns_most(self) -> int:
        """The gyroscope axis that has turned most while moving so far (0 x, 1 y, 2 z),
        -1 before any movement or without an axis check."""
        return self._axis.turns_most if self._axis is not None and self._axis_seen else -1

    def axis_block(self) -> dict[str, object] | None:
        """The axis check for a trial's summary (None: not asked for)."""
        if self._axis is None:
            return None
        if not self._axis_seen:
            return {"verdict": "not checked",
                    "message": "gyroscope axis not checked: the sensor sent no other axes"}
        return self._axis.result().block()

    def reset(self) -> None:
        """Forget everything, including what was learnt about the walker."""
        self._state = self.setup.new_state()
        self._phase = Phase.UNKNOWN
        if self._axis is not None:
            self.check_axis(self._axis.declared)

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the kernel before the loop; the state
        is left unchanged."""
        scratch = outbox.new_outbox()
        self._step(self._state.copy(), self.setup.params, 0.0, 0.0, 0.0, scratch)

    def step(
        self, t_s: float, gyro_rad_s: float = math.nan, heel_level: float = math.nan
    ) -> tuple[Phase, list[DetectedEvent]]:
        """Process one sample (NaN = lost or absent); return the phase and the events
        now known. ``heel_level`` is the switch (0/1) or the force in N, as set up."""
        phase = self._step(self._state, self.setup.params, t_s, gyro_rad_s, heel_level, self._out)
        self._phase = Phase(phase)
        if self._out[0] == 0.0:
            return self._phase, []
        return self._phase, _events(self._out, t_s)

    def process(self, sample: Sample) -> tuple[Phase, list[DetectedEvent]]:
        """The loop's entry point: ``step`` on the sample's sensors, held back by the
        axis check while it has not found the axis sagittal (``check_axis``)."""
        if self.setup.heel_input == "switch":
            heel_level = float(sample.heel_switch)
        else:
            heel_level = sample.heel_force_n
        phase, events = self.step(sample.t_s, sample.gyro_rad_s, heel_level)
        axis = self._axis
        if axis is None:
            return phase, events
        xyz = sample.gyro_xyz_rad_s
        if xyz is not None:
            self._axis_seen = True
            verdict = axis.add(sample.t_s, xyz)
        elif not self._axis_seen:
            return phase, events
        else:
            verdict = axis.verdict
        if verdict == SAGITTAL:
            return phase, events
        held = Phase.STANCE if verdict == CHECKING and phase != Phase.UNKNOWN else Phase.UNKNOWN
        self._phase = held
        return held, []


def detect_batch(
    setup: DetectorSetup,
    t_s: np.ndarray,
    gyro_rad_s: np.ndarray | None = None,
    heel_level: np.ndarray | None = None,
    state: np.ndarray | None = None,
) -> tuple[np.ndarray, list[DetectedEvent]]:
    """Run a fresh detector over a whole recording with the same kernel as ``GaitDetector``.

    A signal left out is read as missing. Returns the phase at every sample (int8
    values of ``Phase``) and the events in the order they became known. ``state`` (from
    ``setup.new_state()``), if given, is the detector's state and is left as the
    recording leaves it.
    """
    t = np.ascontiguousarray(t_s, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"t_s must be 1-D, got shape {t.shape}")
    signals = []
    for name, values in (("gyro_rad_s", gyro_rad_s), ("heel_level", heel_level)):
        if values is None:
            signals.append(np.full(t.size, np.nan))
            continue
        array = np.ascontiguousarray(values, dtype=np.float64)
        if array.shape != t.shape:
            raise ValueError(f"{name} has shape {array.shape}, t_s has {t.shape}")
        signals.append(array)
    if t.size > 1:
        setup.check_period(median_period_s(t))
    n = t.size
    phases = np.empty(n, dtype=np.int8)
    capacity = outbox.MAX_EVENTS * n
    event_index = np.empty(capacity, dtype=np.int64)
    event_code = np.empty(capacity, dtype=np.int64)
    event_t_est = np.empty(capacity)
    count = _batch_for(setup.kind)(
        setup.new_state() if state is None else state, setup.params, t,
        signals[0], signals[1],
        phases, event_index, event_code, event_t_est, outbox.new_outbox(),
    )
    events = [
        DetectedEvent(Event(int(event_code[k])), float(t[event_index[k]]), float(event_t_est[k]))
        for k in range(count)
    ]
    return phases, events


def gyro_mounting(
    config: gyro.GyroDetectorConfig, t_s: np.ndarray, gyro_rad_s: np.ndarray
) -> dict[str, object]:
    """The mounting check of ``config`` run over a whole recording
    (``gyro.mounting_block``: verdict, when, strides each way round)."""
    setup = gyro_setup(config)
    state = setup.new_state()
    detect_batch(setup, t_s, gyro_rad_s, state=state)
    return gyro.mounting_block(state, setup.params)


class GyroDetector(GaitDetector):
    """The gyroscope detector alone (the default of a trial)."""

    def __init__(self, config: gyro.GyroDetectorConfig, sample_rate_hz: float) -> None:
        super().__init__(gyro_setup(config), sample_rate_hz)
