"""``controller.detect.heelcolumn``: a heel column that cannot be the kind of sensor it is
read as is pointed out, at the limits of each kind (tests/test_detect_cli.py runs the
notes through ``fes detect``)."""

from __future__ import annotations

import numpy as np
import pytest

from controller.detect.config import load_detector_config
from controller.detect.heelcolumn import kind_note

SWITCH = load_detector_config()
#: A force sensor: contact at 20 N, released below 10 N (as --heel-threshold-n 20).
FORCE = load_detector_config(overrides={"detector": {"heel_input": "force", "heel": {
    "force": {"contact_force_n": 20.0, "release_force_n": 10.0}}}})


@pytest.mark.parametrize(("low", "high", "noted"), [
    (0.0, 1.0, False), (-0.5, 1.5, False),  # a switch, maybe with some noise
    (0.0, 1.51, True), (-0.51, 1.0, True),  # beyond it: a force read as a switch
])
def test_a_switch_column_reading_beyond_0_1_is_pointed_out(low, high, noted):
    heel = np.array([low, np.nan, high, low])
    note = kind_note(SWITCH, "heel", heel)
    assert (note is not None) == noted
    if noted:
        assert note == ("note", f"heel is read as a 0/1 heel switch (contact at 0.5 and "
                        f"above) but reads {low:.4g} to {high:.4g}: is it a force in N? Pass "
                        "--heel-threshold-n F (contact at F newtons, e.g. 20).")


@pytest.mark.parametrize(("low", "high", "said"), [
    (0.0, 400.0, None),
    (9.99, 61.0, None),  # leaves the ground and loads the heel to 3 x contact, just
    (9.99, 20.0, "heel barely loads: 99 % of its samples read under 19.9 N, less than 3 "
     "times the contact force of 20 N"),  # reaches contact, just: a flat landing
    (10.0, 400.0, "heel never falls below the release force of 10 N "
     "(detector.heel.force.release_force_n; it reads at least 10), so the heel never leaves "
     "the ground"),
    # the contact level follows a weak heel down to 12 N: 19.9 N is reached
    (0.0, 19.9, "heel barely loads: 99 % of its samples read under 19.7 N"),
    (0.0, 11.9, "heel never reaches the contact force of 12 N "
     "(detector.heel.force.contact_floor_n, the lowest the contact level follows the heel "
     "down to; it reads at most 11.9), so no contact is seen"),
])
def test_a_force_column_that_never_leaves_or_reaches_contact_is_pointed_out(low, high, said):
    note = kind_note(FORCE, "heel", np.array([low, high, np.nan]))
    assert (note.text[: len(said)] if note else None) == said


def test_a_column_without_a_reading_gets_no_note():
    assert kind_note(SWITCH, "heel", np.array([np.nan, np.nan])) is None
    assert kind_note(FORCE, "heel", np.array([])) is None
