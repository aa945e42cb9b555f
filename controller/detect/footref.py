"""An event reference nobody here wrote: a foot IMU processed offline by gaitmap.

Where a walk has no force-plate or pressure reference (the Moving Reality walkers after
a stroke, ``controller.detect.movingreality``), the same leg's *foot* sensor is run
through a published, maintained pipeline of the gaitmap library (Kuederle et al. 2024,
mad-lab-fau): stride segmentation by dynamic time warping against Barth's stride
template (Barth et al. 2015, ``BarthDtw``), then heel strike (initial contact, ``ic``)
and toe off (final contact, ``tc``) within each stride (Rampp et al. 2015,
``RamppEventDetection``). Both live in ``gaitmap_mad``, which is **AGPL-3.0** (gaitmap
itself is MIT): they are an optional evaluation-only extra (``pip install
'.[gaitref]'``), imported only here, only when asked for, never by a trial.

gaitmap wants its own foot sensor frame (FSF: x forward, y left, z up; accelerometer in
m/s^2, gyroscope in deg/s). An Xsens foot sensor's ``X, Y, Z`` are mapped to it from the
recording itself, the same way on every dataset (``sensor_frame``):

* **z** is the axis along which the accelerometer's median is largest over the samples
  in which the foot is still (gyro norm at most ``MOVING_RAD_S``: stance, standing), its
  sign that median's (the accelerometer reads +g pointing up). The dorsum slopes: on a
  steep one the forward axis wins (6 of the 38 Voisard trial-1 feet: z=+X, x=+Z), and
  the gravity alignment below then turns the frame about y to the same end;
* **y** is the axis that turns most while moving (the project's axis check,
  ``controller.detect.axis``: it must pass as sagittal), its sign from the project's
  mounting check on it with the shipped foot configuration (``mounted``: positive in
  swing, so the axis points to the walker's right, and FSF y, pointing left, is its
  negative; ``flipped``: the other way; undecided: the foot is left out, named);
* **x** = y x z (right-handed).

Then gaitmap's ``align_dataset_to_gravity`` turns z onto gravity (the dorsum slopes),
gaitmap converts the left or right foot to its body frame, and the pipeline runs with
its defaults except one setting: the DTW template's ``gyr_ml`` column alone
(``TEMPLATE_COLUMNS``; gaitmap's documentation says the default, all three gyro axes,
does not match turning strides). That setting was chosen on Voisard trial 1 (two tried)
and is reported on trials 2-6, which played no part (docs/detection.md). Rampp's events
are read per segmented stride (``annotated_original_event_list_``: every stride the DTW
found; the ``min_vel`` list drops one stride per walking bout).

This is another IMU algorithm, not force plates: its own error against the Voisard
labels is in docs/detection.md, and any figure scored against it carries that error.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from controller.detect.axis import MOVING_RAD_S, SAGITTAL, check_axes
from controller.detect.config import DetectorConfig
from controller.detect.datasets import FootImu
from controller.detect.detector import gyro_mounting
from controller.events import Event

#: The modules the reference needs (gaitmap: MIT; gaitmap_mad: AGPL-3.0).
MODULES = ("gaitmap", "gaitmap_mad")
#: How to get them (gaitmap 2.6 wants numpy < 2.1: a separate environment).
INSTALL = ("pip install -e '.[gaitref]' (gaitmap, MIT, and gaitmap_mad, AGPL-3.0; they "
           "need numpy < 2.1, so install into a separate venv)")
#: The DTW template's columns (see the module docstring).
TEMPLATE_COLUMNS = ("gyr_ml",)
_AXES = "XYZ"


def gaitmap_problem() -> str | None:
    """What is missing for the gaitmap reference (None: nothing)."""
    missing = [name for name in MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f"{' and '.join(missing)} not installed: {INSTALL}"


@dataclass(frozen=True)
class SensorFrame:
    """How a foot sensor's axes map onto gaitmap's foot sensor frame: FSF axis ``k`` is
    ``signs[k]`` times sensor axis ``axes[k]``."""

    axes: tuple[int, int, int]
    signs: tuple[float, float, float]

    def describe(self) -> str:
        """E.g. ``x=-X y=-Y z=+Z``."""
        return " ".join(f"{fsf}={'+' if s > 0 else '-'}{_AXES[a]}"
                        for fsf, a, s in zip("xyz", self.axes, self.signs, strict=True))

    def to_fsf(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` (n, 3) in the sensor's axes -> (n, 3) in the FSF."""
        return rows[:, list(self.axes)] * np.array(self.signs)


def sensor_frame(foot: FootImu, config: DetectorConfig) -> SensorFrame | str:
    """The sensor's axes mapped onto the FSF from the recording (see the module
    docstring), or why they cannot be."""
    still = np.linalg.norm(foot.gyr_rad_s, axis=1) <= MOVING_RAD_S
    median_acc = np.median(foot.acc_m_s2[still] if still.any() else foot.acc_m_s2, axis=0)
    up = int(np.argmax(np.abs(median_acc)))
    turns = check_axes(foot.t_s, foot.gyr_rad_s.T, 0, ("X", "Y", "Z"))
    ml = turns.turns_most
    confirmed = check_axes(foot.t_s, foot.gyr_rad_s.T, ml, ("X", "Y", "Z"))
    if confirmed.verdict != SAGITTAL:
        means = ", ".join(f"{m:.2f}" for m in confirmed.mean_abs_rad_s)
        return (f"no axis of the foot passes the axis check as sagittal (mean |omega| of X, "
                f"Y, Z while moving: {means} rad/s, over {confirmed.moving_s:.1f} s)")
    if ml == up:
        return f"the axis that turns most ({_AXES[ml]}) is the one gravity lies along"
    sign = gyro_mounting(config.gyro.foot, foot.t_s, foot.gyr_rad_s[:, ml])["verdict"]
    if sign not in ("mounted", "flipped"):
        return f"the sign of the foot's {_AXES[ml]} axis stays undecided"
    z_sign = 1.0 if median_acc[up] > 0 else -1.0
    y_sign = -1.0 if sign == "mounted" else 1.0
    # x = y cross z, with y and z signed unit sensor axes
    y_vec, z_vec = np.zeros(3), np.zeros(3)
    y_vec[ml], z_vec[up] = y_sign, z_sign
    x_vec = np.cross(y_vec, z_vec)
    x_axis = int(np.argmax(np.abs(x_vec)))
    return SensorFrame((x_axis, ml, up), (float(x_vec[x_axis]), y_sign, z_sign))


@dataclass(frozen=True)
class FootReference:
    """The gaitmap events of one foot (times on the foot's clock) and its frame."""

    events: list[tuple[float, Event]]
    frame: SensorFrame
    strides: int  # strides the DTW segmented


def gaitmap_events(foot: FootImu, config: DetectorConfig) -> FootReference | str:
    """Heel strikes and toe offs of ``foot`` by gaitmap (Barth DTW, Rampp events), or
    why there are none. Imports gaitmap: call only after ``gaitmap_problem()``."""
    import pandas as pd
    from gaitmap.event_detection import RamppEventDetection
    from gaitmap.preprocessing.sensor_alignment import align_dataset_to_gravity
    from gaitmap.stride_segmentation import BarthDtw, BarthOriginalTemplate
    from gaitmap.utils.coordinate_conversion import (
        convert_left_foot_to_fbf,
        convert_right_foot_to_fbf,
    )

    frame = sensor_frame(foot, config)
    if isinstance(frame, str):
        return frame
    data = pd.DataFrame(
        np.hstack([frame.to_fsf(foot.acc_m_s2), np.rad2deg(frame.to_fsf(foot.gyr_rad_s))]),
        columns=["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"],
    )
    try:
        data = align_dataset_to_gravity(data, foot.rate_hz)
    except ValueError as error:  # no window still enough to see gravity in
        return f"gaitmap could not align the foot to gravity: {error}"
    convert = convert_left_foot_to_fbf if foot.side == "left" else convert_right_foot_to_fbf
    body = convert(data)
    template = BarthOriginalTemplate(use_cols=list(TEMPLATE_COLUMNS))
    strides = BarthDtw(template=template).segment(body, sampling_rate_hz=foot.rate_hz)
    if strides.stride_list_.empty:
        return "gaitmap's stride segmentation found no stride"
    found = RamppEventDetection().detect(body, strides.stride_list_,
                                         sampling_rate_hz=foot.rate_hz)
    table = found.annotated_original_event_list_
    return FootReference(
        _events(foot.t_s, table["ic"], Event.HEEL_STRIKE)
        + _events(foot.t_s, table["tc"], Event.TOE_OFF),
        frame, len(strides.stride_list_),
    )


def _events(t_s: np.ndarray, samples: Sequence[float], kind: Event) -> list[tuple[float, Event]]:
    """The samples gaitmap names (NaN: not found in that stride) as (time, kind)."""
    return [(float(t_s[int(i)]), kind) for i in samples if np.isfinite(i)]
