"""``evaluate --foot-reference gaitmap``: the shank detector scored against gaitmap's
events on the same leg's foot, on small synthetic Moving Reality exports written here
(never the study's data). The foot's sagittal gyro is Barth's stride template itself
(gaitmap's, so its DTW must find every stride), laid over the shank's strides; where
gaitmap is not installed the wiring tests are skipped and the refusal is tested."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest

from controller.detect import evaluate, footref
from tests.helpers.movingreality_exports import RATE_HZ, write_trial
from tests.helpers.shank_walks import walk

NEEDS_GAITMAP = pytest.mark.skipif(
    footref.gaitmap_problem() is not None,
    reason="gaitmap and gaitmap_mad not installed (the `gaitref` extra, AGPL-3.0 part; "
    "numpy < 2.1): the evaluation-only reference cannot run here",
)
STRIDES = 30


def template_foot(t_s: np.ndarray, toe_offs: np.ndarray, late_s: float) -> np.ndarray:
    """A foot's sagittal gyro (rad/s, positive in swing): Barth's template (gyr_ml,
    deg/s, from one toe-off dip to the next) stretched over each stride of the shank,
    ``late_s`` after the shank's toe off."""
    from gaitmap.stride_segmentation import BarthOriginalTemplate

    stored = BarthOriginalTemplate()  # kept divided by its scale (500 deg/s)
    template = stored.get_data()["gyr_ml"].to_numpy() * stored.scaling.scale
    phases = np.linspace(0.0, 1.0, template.size, endpoint=False)
    out = np.zeros_like(t_s)
    for start, end in itertools.pairwise(toe_offs + late_s):
        inside = (t_s >= start) & (t_s < end)
        out[inside] = np.interp((t_s[inside] - start) / (end - start), phases, template)
    return np.deg2rad(out)


def write_walk(folder: Path, late_s: float) -> None:
    """Both legs of one trial: the synthetic shank walk, and a foot whose template
    strides start ``late_s`` after the shank's toe offs."""
    sensors, accs = {}, {}
    for side, seed in (("left", 1), ("right", 2)):
        shank = walk(RATE_HZ, STRIDES, seed, stand_before_s=2.0)
        foot = template_foot(shank.t_s, shank.toe_off_s, late_s)
        sensors[f"{side}shank"] = np.vstack(
            (0.3 * shank.gyro_rad_s, shank.gyro_rad_s, 0.2 * shank.gyro_rad_s))
        sensors[f"{side}foot"] = np.vstack((0.1 * foot, foot, 0.1 * foot))
    n = min(g.shape[1] for g in sensors.values())
    sensors = {name: g[:, :n] for name, g in sensors.items()}
    accs = {name: np.tile([[0.3], [0.1], [9.8]], n) for name in sensors}
    write_trial(folder, "1019_pp01", "exported000", sensors, accs=accs)


def stroke_row(out: str, event: str) -> list[str]:
    """The cells of the 'all legs' row of ``event`` in the evaluation's output."""
    return next(line.split(" | ") for line in out.splitlines()
                if "gaitmap foot reference" in line and "| all legs |" in line
                and f"| {event} |" in line)


@NEEDS_GAITMAP
def test_the_shank_is_scored_against_the_foot_and_its_bias_follows_the_foot(
    tmp_path, capsys
):
    biases = {}
    for late_s in (0.0, -0.04):
        folder = tmp_path / f"late{late_s}"
        write_walk(folder, late_s)
        assert evaluate.main(["--movingreality", str(folder), "--foot-reference",
                              "gaitmap"]) == 0
        out = capsys.readouterr().out
        assert "foot sensor frames found: x=-X y=-Y z=+Z (2 legs)" in out
        for event in ("heel strike", "toe off"):
            cells = stroke_row(out, event)
            assert int(cells[4]) >= 2 * (STRIDES - 3)  # the foot's strides, both legs
            assert float(cells[5].rstrip(" %")) >= 95.0  # recall
            biases[late_s, event] = float(cells[7])
    for event in ("heel strike", "toe off"):  # a foot 40 ms earlier: the shank 40 ms later
        assert biases[-0.04, event] - biases[0.0, event] == pytest.approx(40.0, abs=10.0)


def test_without_gaitmap_the_option_is_refused_naming_what_is_missing(
    tmp_path, capsys, monkeypatch
):
    real = importlib.util.find_spec
    monkeypatch.setattr(footref.importlib.util, "find_spec",
                        lambda name, *a: None if name == "gaitmap_mad" else real(name, *a))
    write_trial(tmp_path, "1019_pp01", "exported000",
                {name: np.zeros((3, 50)) for name in ("leftfoot", "rightfoot", "leftshank",
                                                      "rightshank")})
    assert evaluate.main(["--movingreality", str(tmp_path), "--foot-reference",
                          "gaitmap"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "gaitmap_mad not installed" in captured.err
    assert "'.[gaitref]'" in captured.err and "AGPL-3.0" in captured.err
    assert "Traceback" not in captured.err


def test_the_option_without_a_foot_dataset_is_refused(tmp_path, capsys):
    assert evaluate.main(["--gaitpdb", str(tmp_path), "--foot-reference", "gaitmap"]) == 2
    err = capsys.readouterr().err
    assert "--foot-reference gaitmap: give --voisard DIR" in err
    assert "Traceback" not in err


@NEEDS_GAITMAP
def test_the_foot_detector_is_scored_against_the_reference_of_its_own_sensor(
    tmp_path, capsys
):
    write_walk(tmp_path, 0.0)
    assert evaluate.main(["--movingreality", str(tmp_path), "--placement", "foot",
                          "--foot-reference", "gaitmap"]) == 0
    out = capsys.readouterr().out
    assert "read as sagittal: Gyr_Y" in out
    for event in ("heel strike", "toe off"):
        cells = stroke_row(out, event)
        assert cells[:2] == [
            "| Moving Reality stroke, treadmill, foot IMU (1 walkers)",
            "shipped foot (chosen on Voisard) vs gaitmap foot reference (Barth DTW + Rampp) "
            "of the same foot (one sensor, two algorithms)"]
        assert int(cells[4]) >= 2 * (STRIDES - 3)  # the foot's strides, both legs
        assert float(cells[5].rstrip(" %")) >= 95.0  # recall
