"""The heel column of a recording, checked to be the kind of sensor it is read as.

A heel column is read either as a 0/1 switch (contact at 0.5 and above) or as a force
in newtons with a contact and a release force (``controller.detect.heel``). Read as the
wrong kind it still gives a signal, one the detector finds no step in, or too many:
``kind_note`` points out a switch that reads far beyond 1 (a force in newtons: contact
from 0.5 N, the offset of many force sensors) and a force that never falls below the
release force or never reaches the contact force; and warns of a heel force that reaches
contact but barely loads (its 99th percentile under ``WEAK_HEEL_FACTOR`` times the
contact force): a flat or forefoot landing, or a sensor that is not under the heel. On
the 612 gaitpdb feet (docs/detection.md) 10 are such feet, all of walkers with
Parkinson's disease; a fixed 20 N contact force found a median 75 % of their heel strikes
(98 % on the others), the shipped level that follows the heel 86 % (pooled), so the
warning stays: the cure is the sensor under the heel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from controller.detect.heel import adaptive_floor_n
from controller.detect.notes import Note

if TYPE_CHECKING:
    from controller.detect.config import DetectorConfig

#: A heel force whose 99th percentile stays under this many times the contact force
#: barely loads the heel.
WEAK_HEEL_FACTOR = 3.0


def kind_note(config: DetectorConfig, column: str, heel: np.ndarray) -> Note | None:
    """A note when the heel ``column`` cannot be what ``config`` reads it as (its
    ``heel_input``, and the forces of that sensor); None when it can."""
    finite = heel[np.isfinite(heel)]
    if finite.size == 0:
        return None
    low, high = float(finite.min()), float(finite.max())
    if config.heel_input == "switch" and (high > 1.5 or low < -0.5):
        return Note("note", (
            f"{column} is read as a 0/1 heel switch (contact at 0.5 and above) but reads "
            f"{low:.4g} to {high:.4g}: is it a force in N? Pass --heel-threshold-n F (contact "
            "at F newtons, e.g. 20)."
        ))
    contact = config.heel_config().contact_force_n
    release = config.heel_config().release_force_n
    floor = adaptive_floor_n(config.heel_config())
    if config.heel_input == "force" and low >= release:
        return Note("note", (
            f"{column} never falls below the release force of {release:g} N "
            f"(detector.heel.force.release_force_n; it reads at least {low:.4g}), so the heel "
            "never leaves the ground: has the sensor an offset (raise --heel-threshold-n "
            "above it), or is it in other units?"
        ))
    lowest, setting = (contact, "contact_force_n") if floor is None else (
        floor, "contact_floor_n, the lowest the contact level follows the heel down to")
    if config.heel_input == "force" and high < lowest:
        return Note("note", (
            f"{column} never reaches the contact force of {lowest:g} N "
            f"(detector.heel.force.{setting}; it reads at most {high:.4g}), so no "
            "contact is seen: is it a 0/1 switch (drop --heel-threshold-n) or in other "
            "units?"
        ))
    if config.heel_input == "force":
        return _weak_heel(column, float(np.percentile(finite, 99.0)), contact, floor)
    return None


def barely_loads(p99_n: float, contact_n: float) -> bool:
    """Whether a heel force whose 99th percentile is ``p99_n`` barely loads the heel: under
    ``WEAK_HEEL_FACTOR`` times the ``contact_n`` force."""
    return p99_n < WEAK_HEEL_FACTOR * contact_n


def _weak_heel(column: str, p99: float, contact: float, floor: float | None) -> Note | None:
    """A warning when the heel force barely loads (``barely_loads``)."""
    if not barely_loads(p99, contact):
        return None
    return Note("warning", weak_heel_text(column, p99, contact, floor,
                                          "lower --heel-threshold-n"))


def weak_heel_text(what: str, p99: float, contact: float, floor: float | None,
                   remedy: str) -> str:
    """What a heel force whose 99th percentile is ``p99`` means, and what to do.

    With a contact level that follows the heel down to ``floor`` (None: fixed at
    ``contact``) most heel strikes are still found (86 % on the gaitpdb feet that barely
    load, 60 % at a fixed 20 N), so the text says what stays true: some are missed or
    late, and the cure is the sensor moved under the heel; a lower floor only if swing
    reads less. With a fixed level, ``remedy`` (the option or setting of the contact
    force) is the other cure."""
    head = (
        f"{what} barely loads: 99 % of its samples read under {p99:.4g} N, less than "
        f"{WEAK_HEEL_FACTOR:g} times the contact force of {contact:g} N "
        "(detector.heel.force.contact_force_n). The walker lands flat or on the forefoot, "
        "or the sensor is not under the heel: "
    )
    if floor is None:
        return head + (
            "heel strikes will be missed or split, and where the heel stays off the "
            "detector loses the gait (unknown: no stimulation). "
            f"Move the sensor under the heel, or {remedy}."
        )
    return head + (
        f"the contact level follows the heel's own peak down to {floor:g} N "
        "(detector.heel.force.contact_floor_n), so most heel strikes are found, but some "
        "are missed or late, and where the heel stays under that level the detector loses "
        "the gait (unknown: no stimulation). Move the sensor under the heel (a lower "
        "contact_floor_n helps only if the heel reads less than it in swing)."
    )
