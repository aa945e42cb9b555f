"""``controller.detect.references``: reference events outside the recording they score
(its span widened by the matching tolerance) are refused when all are, noted when some
are (tests/test_detect_cli.py runs both through ``fes detect --truth``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controller.detect.csvfiles import CsvError
from controller.detect.references import outside_note
from controller.events import Event

T_S = np.arange(1001) * 0.01  # 0 to 10 s
PATH = Path("truth.csv")


def test_events_within_the_tolerance_of_the_ends_count_as_inside():
    truth = [(-0.1, Event.HEEL_STRIKE), (5.0, Event.TOE_OFF), (10.1, Event.HEEL_STRIKE)]
    assert outside_note(PATH, truth, T_S, tolerance_ms=100.0) is None
    note = outside_note(PATH, truth, T_S, tolerance_ms=50.0)
    assert note == ("note", "2 of 3 reference events lie outside the recording (the "
                    "recording runs from 0 to 10 s, the reference events from -0.1 to 10.1 "
                    "s); they count as missed.")


def test_a_reference_wholly_outside_the_recording_is_refused_naming_both_spans():
    in_ms = [(1000.0, Event.HEEL_STRIKE), (2150.0, Event.TOE_OFF)]
    with pytest.raises(CsvError) as error:
        outside_note(PATH, in_ms, T_S, tolerance_ms=100.0)
    assert str(error.value) == (
        "truth.csv: no reference event lies within the recording (the recording runs from "
        "0 to 10 s, the reference events from 1000 to 2150 s): is its time_s in seconds, on "
        "the recording's clock (not in ms or sample numbers)?")


def test_nothing_to_compare_is_no_note():
    assert outside_note(PATH, [], T_S, tolerance_ms=100.0) is None
    assert outside_note(PATH, [(1.0, Event.TOE_OFF)], T_S[:0], tolerance_ms=100.0) is None
