"""The shank's angular velocity around heel strike, on real walks and on the simulator.

``python -m controller.bench.shank MARPINO_DIR`` reads the Marpino walking dataset (the
``Dataset/Young`` folder of GitHub user Marpino's Walking-dataset: shank and foot IMUs
with two pressure sensors under each foot, 100 Hz; it has no licence, so it is read
from the folder the user names and nothing of it is shipped; the reader is
``controller.detect.marpino``) and prints, per stride, the figures behind the shank template of
``configs/patients/healthy.toml``, then the same figures for the simulated healthy walk.

Initial contact is taken from the foot's own IMU, not from the pressure sensors: when
the heel hits the floor, the floor's push behind the ankle jolts the foot toe down,
faster than any muscle turns it in the air, and its gyroscope drops by more than
``IMPACT_STEP_RAD_S`` from one 10 ms sample to the next (``heel_impact_s``). The pressure
sensors, at the 20 % of their range at which the reader dates contact, see it 55-75 ms
later (printed): once the shoe's heel is down under the sensor. Shank-gyroscope studies
that date heel strike against pressure insoles or footswitches (Aminian et al. 2002,
J Biomech 35:689: gyroscope heel strikes 10 ms after the footswitch; Catalfamo et al.
2010, Sensors 10:5683: within -25 ms of a pressure insole; both abstracts) carry such a
sensor's lag in their reference; a template fitted to the pressure contact puts every
heel-strike feature that much too late.

Figures per stride (the stride runs from one initial contact to the next, toe off from
the pressure sensors; the first and last step of each walk are left out):

* the shank's zero crossing from swing to stance, after the swing peak, against initial
  contact (the shank stops swinging forward as the heel lands: Behboodi et al. 2019,
  Phys Ther 99:739, figure caption, and Monaghan et al. 2009, Med Biol Eng Comput,
  abstract, detect heel strike there);
* the time of the first minimum after the swing peak of a ``SMOOTHING_S`` moving
  average, confirmed by a rise of ``RISE_RAD_S`` from it: the rule by which the shank
  detector dates heel strike (``controller.detect.gyro.SHANK``), so this is the detector's
  heel-strike error on a real shank;
* that minimum's depth after a 50 ms moving average, within 50 ms before to 150 ms
  after contact, and the median over stance (as ``sim.validate`` measures them);
* the median curve from 200 ms before to 250 ms after contact, each stride divided by
  its swing peak, and its root-mean-square distance from the simulated one.

Walkers alternate between a fit half and a check half (sorted by name); the profile's
parameters were fitted on the first and its comment quotes the second.
"""


from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from controller.detect.marpino import load_marpino
from controller.events import Event
from sim.recordings import recordings_folder
from sim.shank import COLUMNS, Strides, curve, simulated_strides, stride_figures

#: A fall of the foot's gyroscope larger than this from one 10 ms sample to the next,
#: while it turns toe down, is the heel's impact (rad/s).
IMPACT_STEP_RAD_S = 1.0
#: The impact is looked for from this long before the pressure contact ...
IMPACT_SEARCH_BEFORE_S = 0.15
#: ... to this long after it.
IMPACT_SEARCH_AFTER_S = 0.03


def heel_impact_s(t_s: np.ndarray, foot_rad_s: np.ndarray, toe_off_s: float,
                  contact_s: float) -> float | None:
    """Time of the heel's impact before the pressure ``contact_s``: the first sample after
    the foot's swing peak at which its gyroscope, already turning toe down, falls by more
    than ``IMPACT_STEP_RAD_S`` from the sample before (dated between the two); None if
    none does."""
    swing = np.flatnonzero((t_s >= toe_off_s) & (t_s < contact_s))
    if swing.size == 0:
        return None
    peak = swing[int(np.argmax(foot_rad_s[swing]))]
    for i in np.flatnonzero((t_s >= contact_s - IMPACT_SEARCH_BEFORE_S)
                            & (t_s <= contact_s + IMPACT_SEARCH_AFTER_S)):
        if i > peak and foot_rad_s[i] < 0.0 and foot_rad_s[i] - foot_rad_s[i - 1] < (
                -IMPACT_STEP_RAD_S):
            return float(0.5 * (t_s[i - 1] + t_s[i]))
    return None


def _marpino_strides(folder: Path) -> Iterator[tuple[str, tuple[float, ...], np.ndarray]]:
    loaded = load_marpino(folder)
    for shank, foot in zip(loaded.shank, loaded.foot, strict=True):
        assert shank.gyro_rad_s is not None and foot.gyro_rad_s is not None
        t = shank.t_s
        events = shank.reference
        swings = [(a, b) for (a, ea), (b, eb) in itertools.pairwise(events)
                  if ea == Event.TOE_OFF and eb == Event.HEEL_STRIKE]
        impacts = [heel_impact_s(t, foot.gyro_rad_s, to, hs) for to, hs in swings]
        for k in range(1, len(swings)):
            contact, next_contact = impacts[k - 1], impacts[k]
            toe_off, pressure = swings[k]
            if contact is None or next_contact is None:
                continue
            if not shank.steady.contains(np.array([contact, next_contact])).all():
                continue
            figures = (1e3 * (pressure - next_contact),
                       *stride_figures(t, shank.gyro_rad_s, contact, toe_off, next_contact))
            yield shank.walker, figures, curve(t, shank.gyro_rad_s, next_contact, figures[-1])


def marpino_strides(folder: Path) -> Strides:
    """Every steady stride of the Marpino walkers in ``folder`` with a heel impact found
    at both ends."""
    rows = list(_marpino_strides(folder))
    return Strides(np.array([r[1] for r in rows]), np.array([r[0] for r in rows]),
                   np.array([r[2] for r in rows]))


def describe(label: str, strides: Strides, reference: Strides | None = None) -> str:
    """Medians and quartiles of every figure, and the curve's distance from ``reference``."""
    parts = []
    for column, values in zip(COLUMNS, strides.figures.T, strict=True):
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        parts.append(f"{column} {median:.3g} ({q1:.3g} to {q3:.3g})")
    text = f"{label}: {len(strides.figures)} strides, " + ", ".join(parts)
    if reference is not None:
        distance = np.sqrt(np.mean((np.median(strides.curves, axis=0)
                                    - np.median(reference.curves, axis=0)) ** 2))
        text += f"; median curve {distance:.3f} of the swing peak (rms) from the real one"
    return text


def main(argv: list[str] | None = None) -> None:
    """Print the real figures (all walkers, fit half, check half) and the simulated ones."""
    parser = argparse.ArgumentParser(prog="python -m controller.bench.shank", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("marpino_dir", type=Path,
                        help="the Dataset/Young folder of the Marpino Walking-dataset (*.xlsx;"
                        " needs the `eval` extra)")
    folder = recordings_folder(parser, parser.parse_args(argv).marpino_dir, "*.xlsx",
                               "the Marpino workbooks (Dataset/Young/*.xlsx)")
    real = marpino_strides(folder)
    walkers = sorted(set(real.walkers))
    fit = np.isin(real.walkers, walkers[0::2])
    simulated = simulated_strides()
    print(describe(f"Marpino, {len(walkers)} walkers", real))
    print(describe(f"Marpino fit half, {len(walkers[0::2])} walkers", real.subset(fit)))
    print(describe(f"Marpino check half, {len(walkers[1::2])} walkers", real.subset(~fit)))
    print(describe("simulated healthy", simulated, real.subset(~fit)))


if __name__ == "__main__":
    main()
