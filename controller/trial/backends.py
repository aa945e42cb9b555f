"""What a live trial runs against: its sensor source and its stimulator, by kind.

``fes run --port URL`` runs against the project's board (docs/protocol.md), which is
both: it streams the sensors and stimulates. A stimulator without sensors (openEMSstim)
needs a separate source, named with ``--sensors replay:PATH`` (a recorded walk played in
real time), and is named with ``--stimulator KIND:URL``. ``STIMULATORS`` maps each kind
to its driver; a new back end is one more entry (the P24: ``p24``).

The live trial drives either through the one shape it knows, the project's board
driver's (``hw.board.Board``): a stimulator without sensors is wrapped with its source
in ``SplitBackend``.

``fes run --help`` lists the kinds from this registry, so the module imports its drivers,
the trial config and the recordings only where it uses them (tests/test_startup.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from controller.errors import ConfigError
from controller.ports import OutputSteps, Sample, SensorSource, StimCommand

if TYPE_CHECKING:
    from controller.config import TrialConfig
    from controller.detect.config import DetectorConfig
    from controller.trial.recording import Recording


class SensorlessStimulator(Protocol):
    """A ``Stimulator`` with a connection and fault reporting, and no sensors."""

    @property
    def channels(self) -> int: ...

    fault: Any
    stop_confirmed: bool

    def connect(self) -> object: ...

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None: ...

    def stop_all(self) -> None: ...

    def close(self) -> None: ...

    def add_fault_listener(self, listener: Callable[[Any], None]) -> None: ...

    def link_counters(self) -> dict[str, Any]: ...

    @property
    def off_without_host(self) -> str: ...

    @property
    def off_command(self) -> str: ...


@dataclass(frozen=True)
class StimulatorKind:
    """One kind of ``--stimulator``: what it is, its default settings file (None: it
    takes none), how to check a trial against its settings and how to open it."""

    help: str
    settings: Path | None
    check: Callable[[TrialConfig, Path | None], list[str]] | None = None
    open: Callable[[str, Path | None], SensorlessStimulator] | None = None


def _onset_problems(config: TrialConfig, steps: OutputSteps) -> list[str]:
    """``controller.safety.watchdog.onset_problems`` of the trial's active channels on a
    stimulator delivering ``steps``: a channel whose weakest output is a step from off
    the rise rule never lets through could never start (every onset clamped to off)."""
    from controller.safety.watchdog import onset_problems
    from controller.stim.settings import channel_path

    channels = [(channel_path(name), StimCommand(
        ch.channel, True, ch.amplitude_ma, ch.pulse_width_us, ch.frequency_hz,
        ch.interphase_gap_us, ch.anodic_width_ratio))
        for name, ch in config.stim.active_channels()]
    return onset_problems(steps, config.safety, channels)


def _openems_check(config: TrialConfig, path: Path | None) -> list[str]:
    from controller.stim.settings import channel_path
    from hw.openems import load_settings

    settings = load_settings(path)
    problems = []
    for name, ch in config.stim.active_channels():
        problems += settings.channel_problems(
            channel_path(name), ch.amplitude_ma, ch.pulse_width_us, ch.frequency_hz,
            ch.interphase_gap_us, ch.anodic_width_ratio, ch.ramp_parameter,
        )
        if ch.channel >= 2:
            problems.append(f"{channel_path(name)}.channel: {ch.channel}; openEMSstim has "
                            "channels 0 and 1")
    # The unit's lowest output is every train's first pulse (the watchdog sees it so).
    return problems + _onset_problems(config, settings.steps)


def _openems_open(url: str, path: Path | None) -> SensorlessStimulator:
    from hw.openems import OpenEmsStim, load_settings

    return OpenEmsStim(url, load_settings(path))


def _p24_check(config: TrialConfig, path: Path | None) -> list[str]:
    from controller.trial.session import output_channels
    from hw.board import BoardRequirements
    from hw.p24.limits import P24Steps, model_problems

    requirements = BoardRequirements(config.safety, config.loop.sample_rate_hz,
                                     channels=output_channels(config))
    return model_problems(requirements, "low") + _onset_problems(config, P24Steps("low"))


def _p24_open(url: str, path: Path | None) -> SensorlessStimulator:
    try:
        from hw.p24.driver import P24Stimulator
    except ImportError as err:  # the optional extra is missing
        raise ConfigError("--stimulator p24", [str(err)]) from None
    return P24Stimulator(url)


#: ``--stimulator KIND:URL``, by kind.
STIMULATORS: dict[str, StimulatorKind] = {
    "board": StimulatorKind(
        "the project's board (docs/protocol.md), which also streams the sensors: the "
        "same as --port URL", None,
    ),
    "openemsstim": StimulatorKind(
        "openEMSstim on its own firmware (upstream head or aa7f198), settings and "
        "calibration in configs/boards/openemsstim.toml or --stimulator-settings",
        Path("boards") / "openemsstim.toml", _openems_check, _openems_open,
    ),
    "p24": StimulatorKind(
        "a Hasomed P24 (ScienceMode 4, low-level pulses, through the science_mode_4 "
        "library: pip install 'fes-timing[sciencemode]')", None, _p24_check, _p24_open,
    ),
}
#: ``--sensors KIND[:PATH]``.
SENSORS = {
    "board": "the project's board's own stream (the default; needs the board as stimulator)",
    "replay": "replay:PATH, a recorded walk played in real time (a fes detect CSV, a "
    "Voisard IMU file or a gaitpdb file)",
}


@dataclass(frozen=True)
class BackendSpec:
    """The live trial's back end: ``board`` (the project's board at ``url``, sensors and
    stimulator) or a stimulator of ``kind`` at ``url`` with a recording replayed."""

    kind: str
    url: str
    replay: Path | None = None
    settings: Path | None = None
    #: ``replay`` as read already (``fes run`` reads it for its notes and rate before the
    #: trial), so that the trial does not read it again: a recorded hour at 500 Hz is 9 s
    #: and 58 MB of arrays to read.
    recording: Recording | None = field(default=None, compare=False, repr=False)

    def describe(self) -> dict[str, Any]:
        """The back end as ``summary.json`` reports it."""
        if self.kind == "board":
            return {"port": self.url}
        described: dict[str, Any] = {"stimulator": f"{self.kind}:{self.url}",
                                     "sensors": f"replay:{self.replay}"}
        if self.settings is not None:
            described["stimulator_settings"] = str(self.settings)
        return described


def parse_backend(
    port: str | None, sensors: str | None, stimulator: str | None, settings: Path | None
) -> BackendSpec:
    """The back end the options of ``fes run`` name; ``ValueError`` with the reason."""
    if port is not None and stimulator is not None:
        raise ValueError("give --port URL (the project's board) or --stimulator KIND:URL, "
                         "not both")
    if stimulator is None:
        if port is None:
            raise ValueError("no stimulator: give --port URL (the project's board) or "
                             "--stimulator KIND:URL")
        if not port.strip():  # --port "$PORT" with the variable unset
            raise ValueError("--port is empty: give the board's port (fes ports lists the "
                             "candidates)")
        stimulator = f"board:{port}"
    kind, _, url = stimulator.partition(":")
    if kind not in STIMULATORS or not url:
        kinds = ", ".join(f"{k}:URL" for k in STIMULATORS)
        raise ValueError(f"--stimulator {stimulator!r}: expected one of {kinds}")
    if settings is not None and STIMULATORS[kind].settings is None:
        raise ValueError(f"--stimulator-settings: the {kind} stimulator takes none")
    source, _, path = (sensors or "board").partition(":")
    if source not in SENSORS or (source == "replay") != bool(path):
        raise ValueError(f"--sensors {sensors!r}: expected board or replay:PATH")
    if kind == "board" and source != "board":
        raise ValueError("the project's board streams its own sensors: use it with "
                         "--sensors board (the default)")
    if kind != "board" and source == "board":
        raise ValueError(f"{kind} has no sensors: give --sensors replay:PATH")
    return BackendSpec(kind, url, Path(path) if path else None, settings)


def check_sensors(spec: BackendSpec, config: TrialConfig) -> None:
    """Refuse a gyroscope detector configured for the foot on the project's board's own
    stream (``ConfigError``): every board of its protocol, the board emulator and the
    AVR board alike, is worn on the shank, and its INFO names the gyroscope axis of the
    shank's sagittal rotation (docs/protocol.md, INFO ``sagittal_axis``); it has no way
    to say it is worn elsewhere. The foot's thresholds would run on a shank's signal.
    A replayed recording (``--sensors replay:PATH``) is whatever it was recorded on,
    but it must have the sensors the detector reads that play as lost when absent (the
    gyroscope, the heel force sensor): without them every sample would lack a sensor
    the watchdog needs (docs/safety.md, "Valid sensor samples"), and the trial would
    end in its sensor timeout at the start."""
    from controller.trial.session import watched_sensors

    detector = config.detector
    if spec.recording is not None:
        _check_recording_sensors(spec.recording, detector, watched_sensors(config))
    if spec.kind != "board" or detector.placement != "foot" or detector.sensor == "heel":
        return
    raise ConfigError("--sensors board", [
        "detector.placement: 'foot', but the project's board streams the sagittal "
        "angular velocity of the shank (docs/protocol.md: every board of its protocol, "
        "fes board-emulator and the AVR board too, is worn on the shank, and its INFO "
        "names the shank's axis): the foot's detector would read a shank's signal. Run "
        "with placement = 'shank'; a foot recording runs with --stimulator KIND:URL "
        "--sensors replay:PATH, or fes detect --placement foot"])


def _check_recording_sensors(recording: Recording, detector: DetectorConfig,
                             sensors: int) -> None:
    """``ConfigError`` naming the column a replayed recording lacks that the detector
    reads (``sensors``: those the watchdog needs, ``session.watched_sensors``) and that
    would play as lost at every sample. (A missing ``heel_switch`` column plays 0, no
    contact, as a board without a switch reports.)"""
    from controller.safety.sensors import GYRO_SENSOR, HEEL_FORCE_SENSOR

    sensor = f"detector.sensor = {detector.sensor!r}"
    lacking = []
    if sensors & GYRO_SENSOR and recording.gyro_rad_s is None:
        lacking.append((sensor, "the gyroscope", "gyro_rad_s"))
    if sensors & HEEL_FORCE_SENSOR and recording.heel_force_n is None:
        lacking.append((f"{sensor} with detector.heel_input = 'force'",
                        "the heel force sensor", "heel_force_n"))
    has = ", ".join(name for name in ("gyro_rad_s", "heel_switch", "heel_force_n")
                    if getattr(recording, name) is not None)
    if lacking:
        raise ConfigError(f"--sensors replay:{recording.path}", [
            f"{choice} reads {what}, but the recording has no {column} column (it has: "
            f"{has}): every sample would lack it, and the watchdog would end the trial "
            "in its sensor timeout at the start (docs/safety.md, \"Valid sensor "
            "samples\"). Choose the detector of the sensors it has (detector.sensor, "
            "detector.heel_input)" for choice, what, column in lacking])


def check_stimulator(spec: BackendSpec, config: TrialConfig) -> None:
    """Refuse a trial the stimulator cannot deliver (``ConfigError`` naming each field
    and its range); a bad settings file is a ``ConfigError`` too."""
    kind = STIMULATORS[spec.kind]
    if kind.check is None:
        return
    problems = kind.check(config, spec.settings)
    if problems:
        source = str(spec.settings or f"configs/{kind.settings}")
        raise ConfigError(f"{spec.kind} ({source}) against the trial", problems)


@dataclass
class SplitStats:
    """The link counters of a sensorless stimulator in the shape of the board's
    (``hw.board.LinkStats``) the status line reads; ``as_dict`` is the stimulator's own."""

    counters: Callable[[], dict[str, Any]]
    source: SensorSource
    frames_in: int = 0
    frames_out: int = 0
    bad_frames: int = 0
    lost_frames: int = 0
    missing_samples: int = 0
    resends: int = 0
    naks: int = 0
    board_rtt_last_ms: float | None = None
    #: Never reported by these stimulators (hw.board.LinkStats's, for the status line).
    stretched_statuses: int = 0
    pulse_stretch_max_us: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def refresh(self) -> None:
        """Read the status line's three link counters from the stimulator's own: an
        openEMSstim's echoed, sent and garbled lines, a P24's answers, packets sent and
        answers its library could not parse."""
        c = self.counters()
        self.frames_in = int(c.get("echoes", c.get("acks", 0)))
        self.frames_out = int(c.get("lines_sent", c.get("packets_out", 0)))
        self.bad_frames = int(c.get("garbled_echoes", c.get("bad_answers", 0)))

    def as_dict(self) -> dict[str, Any]:
        """The stimulator's counters, the replay's dropouts (grid points the recording
        has no sample for) and the ``time.monotonic()`` at which its sample 0 was due
        (to set the trial's times beside a device's own log)."""
        return {
            **self.counters(),
            "replay_dropouts": getattr(self.source, "dropouts", 0),
            "replay_start_monotonic_s": getattr(self.source, "started_monotonic_s", None),
        }


class SplitBackend:
    """A recorded walk and a sensorless stimulator, in the shape of ``hw.board.Board``
    that the live trial drives: reads come from the source (which paces the loop),
    commands go to the stimulator, faults and counters are the stimulator's."""

    def __init__(self, source: SensorSource, stimulator: SensorlessStimulator) -> None:
        self._source = source
        self._stimulator = stimulator
        self._stats = SplitStats(stimulator.link_counters, source)
        self.info = None

    @property
    def sample_period_s(self) -> float:
        return self._source.sample_period_s

    @property
    def channels(self) -> int:
        return self._stimulator.channels

    @property
    def resolution(self) -> OutputSteps | None:
        """The stimulator's mapping of a command to what it delivers, which the watchdog
        checks (``controller.ports.OutputSteps``); None when it delivers what it is
        asked. (Without this the watchdog in front of the split back end checked the
        commanded amplitudes, not openEMSstim's calibrated outputs.)"""
        steps = getattr(self._stimulator, "resolution", None)
        return steps if isinstance(steps, OutputSteps) else None

    @property
    def fault(self) -> Any:
        return self._stimulator.fault

    @property
    def stop_confirmed(self) -> bool:
        return self._stimulator.stop_confirmed

    @property
    def off_without_host(self) -> str:
        return self._stimulator.off_without_host

    @property
    def off_command(self) -> str:
        return self._stimulator.off_command

    @property
    def stop_attempts(self) -> int:
        return int(self._stimulator.link_counters().get("stops", 0))

    @property
    def stats(self) -> SplitStats:
        self._stats.refresh()
        return self._stats

    def connect(self) -> None:
        self._stimulator.connect()

    def read(self) -> Sample | None:
        if self._stimulator.fault is not None:
            return None  # the trial ends at the stimulator's fault
        return self._source.read()

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        self._stimulator.apply(t_s, commands)

    def stop_all(self) -> None:
        self._stimulator.stop_all()

    def close(self) -> None:
        self._stimulator.close()
        self._source.close()

    def add_fault_listener(self, listener: Callable[[Any], None]) -> None:
        self._stimulator.add_fault_listener(listener)

    def has_truth(self) -> bool:
        """A recording has no ground truth the trial could score against."""
        return False

    def truth(self, samples: int) -> tuple[dict[str, Any], list[tuple[float, str]]]:
        """None to give (``has_truth`` is False)."""
        return {}, []


def open_backend(spec: BackendSpec) -> SplitBackend:
    """The sensorless stimulator of ``spec`` with its replayed recording (the project's
    board is opened by the live trial itself)."""
    from controller.trial.recording import load_recording

    kind = STIMULATORS[spec.kind]
    assert kind.open is not None and spec.replay is not None
    recording = spec.recording if spec.recording is not None else load_recording(spec.replay)
    return SplitBackend(recording.source(), kind.open(spec.url, spec.settings))
