"""One sample of the whole stimulation schedule as a kernel: ``schedule_step``.

Every channel of a trial and the walker's toe-off predictor live in two float64 arrays
that the caller owns, so that a compiled loop can run the scheduler without objects:

* ``params`` (``make_params``), one row per channel after a shared row 0: the
  predictor's parameters (``controller.stim.prediction``, from column
  ``P_PREDICTION``). A channel row holds the envelope's columns
  (``controller.stim.envelope``), then those of its mode (``controller.stim.walking``
  or ``controller.stim.timed``).
* ``state`` (``new_state``), the same rows: the predictor's state in row 0, each
  channel's envelope and mode state in the others.

``schedule_step`` takes the trial's mode (``MODE_CODES``, ``mode_code``) as its first
argument, first lets the predictor take in the events, then advances every channel and
writes its command row (``controller.ports.COMMAND_FIELDS``), in the order of
``stimulating_channels``. A trial that stimulates on no channel (stimulation disabled)
keeps one row, the peroneal channel's, whose envelope never starts: "off" on that
output. ``schedule_step_for(mode)`` is the kernel with the mode fixed when it is
compiled, so a walking trial compiles no timed train and a training one no gait
trigger (``controller.kernels.specialised``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from controller.kernels import dispatch_kernel, kernel, specialised
from controller.ports import COMMAND_ROW_SIZE
from controller.stim import envelope, prediction, timed, walking
from controller.stim.settings import ChannelConfig, StimConfig

#: The trial's mode, as ``schedule_step`` takes it; ``off`` when no channel stimulates.
MODE_CODES = {"off": 0, "walking": 1, "training": 2, "test": 3}
MODE_OFF = MODE_CODES["off"]
MODE_WALKING = MODE_CODES["walking"]

# Row 0 of the parameters: the predictor's parameters.
P_PREDICTION = 0
_SHARED_PARAMS_SIZE = P_PREDICTION + prediction.PARAMS_SIZE


def stimulating_channels(config: StimConfig) -> list[tuple[str, ChannelConfig]]:
    """The channels that stimulate in the trial's mode, peroneal first: every enabled one
    (walking, training), the named one (test), none when stimulation is disabled."""
    active = config.active_channels()
    if config.mode == "test":
        return [(name, ch) for name, ch in active if name == config.test.channel_name]
    return active


def mode_code(config: StimConfig) -> int:
    """The code of the trial's mode (``MODE_OFF`` without a stimulating channel)."""
    return MODE_CODES[config.mode] if stimulating_channels(config) else MODE_OFF


def _rows(config: StimConfig) -> list[ChannelConfig]:
    return [ch for _, ch in stimulating_channels(config)] or [config.peroneal]


def _timed_trains(config: StimConfig) -> tuple[float, float | None, float] | None:
    """``(on_ms, off_ms, start_ms)`` of the trains of training or test mode (``off_ms``
    None: a single burst); None when the gait times them."""
    if config.mode == "training":
        return config.training.on_ms, config.training.off_ms, config.training.start_ms
    if config.mode == "test":
        return config.test.on_ms, None, config.test.start_ms
    return None


def make_params(config: StimConfig) -> np.ndarray:
    """The parameter array of a trial's stimulation (see the module's docstring); the
    columns a row's own layout does not use stay zero."""
    shared = prediction.make_params(config.prediction)
    trains = _timed_trains(config)
    rows = [shared] + [
        walking.make_params(ch) if trains is None else timed.make_params(ch, *trains[:2])
        for ch in _rows(config)
    ]
    width = max(_SHARED_PARAMS_SIZE, walking.PARAMS_SIZE, timed.PARAMS_SIZE)
    params = np.zeros((len(rows), width))
    for row, values in zip(params, rows, strict=True):
        row[: values.size] = values
    return params


def new_state(config: StimConfig) -> np.ndarray:
    """The state array of a trial's stimulation before its first sample."""
    rows = _rows(config)
    width = max(prediction.state_size(config.prediction), walking.STATE_SIZE, timed.STATE_SIZE)
    state = np.zeros((1 + len(rows), width))
    prediction.init_state(state[0])
    trains = _timed_trains(config)
    for s in state[1:]:
        if trains is None:
            walking.init_state(s)
        else:
            timed.init_state(trains[2], s)
    return state


def new_commands(params: np.ndarray) -> np.ndarray:
    """The command rows ``schedule_step`` writes, one per channel row of ``params``."""
    return np.zeros((params.shape[0] - 1, COMMAND_ROW_SIZE))


@dispatch_kernel
def schedule_step(
    mode: int,
    params: np.ndarray,
    state: np.ndarray,
    t_s: float,
    phase: int,
    events: np.ndarray,
    commands: np.ndarray,
) -> None:
    """Every channel's command at ``t_s`` into ``commands``, one row per channel.

    ``mode`` is the trial's (``mode_code``), ``phase`` a ``controller.events.Phase``
    value and ``events`` the detector's outbox (``controller.detect.outbox``) of the
    events that became known at ``t_s``.
    """
    prediction.observe(params[0, P_PREDICTION:], state[0], events)
    predicted_s = state[0, prediction.S_NEXT_TOE_OFF_S]
    for i in range(commands.shape[0]):
        p = params[1 + i]
        s = state[1 + i]
        if mode == MODE_WALKING:
            walking.walking_step(p, s, t_s, phase, events, predicted_s)
        elif mode != MODE_OFF:
            timed.timed_step(p, s, t_s)
        envelope.write_command(p, s, commands[i])


@specialised
def schedule_step_for(mode: int) -> Callable[..., None]:
    """``schedule_step`` of one ``mode``, compiled with that mode's kernels alone:
    ``(params, state, t_s, phase, events, commands) -> None``."""

    @kernel
    def step(
        params: np.ndarray,
        state: np.ndarray,
        t_s: float,
        phase: int,
        events: np.ndarray,
        commands: np.ndarray,
    ) -> None:
        schedule_step(mode, params, state, t_s, phase, events, commands)

    return step
