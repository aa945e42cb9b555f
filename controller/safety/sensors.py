"""Which sensors a sample must have valid for the watchdog to count it (the sensor
timeout, ``docs/safety.md`` "Valid sensor samples"): those the trial's detector reads.

The watchdog's ``limits`` array carries them in one slot after the ``SafetyLimits``
fields (``SENSORS``), a sum of the bits below, written when a trial builds its watchdog
from its config (``controller.trial.session.watched_sensors``) and read by the kernel
that judges every sample (``controller.safety.decide.sample_valid``).
"""

from __future__ import annotations

from controller.safety.rules import LIMIT_FIELDS

#: The slot of the ``limits`` array after the limits.
SENSORS = len(LIMIT_FIELDS)
GYRO_SENSOR = 1  # the sagittal gyroscope: finite, within +-100 rad/s
HEEL_SWITCH_SENSOR = 2  # the heel switch: exactly 0 or 1
HEEL_FORCE_SENSOR = 4  # the heel force sensor: finite, within +-10 kN
#: Every sensor of the rule as it was before it followed the detector (a gyroscope and
#: a heel switch), for a watchdog that is not told which sensors its detector reads.
DEFAULT_SENSORS = GYRO_SENSOR | HEEL_SWITCH_SENSOR


def check_sensors(sensors: int) -> int:
    """``sensors`` if it names at least one sensor and nothing else (a sum of
    ``GYRO_SENSOR``, ``HEEL_SWITCH_SENSOR`` and ``HEEL_FORCE_SENSOR``, one heel sensor
    at most); else ``ValueError``: a watchdog that requires no sensor would count every
    sample valid."""
    known = GYRO_SENSOR | HEEL_SWITCH_SENSOR | HEEL_FORCE_SENSOR
    both_heels = HEEL_SWITCH_SENSOR | HEEL_FORCE_SENSOR
    if (type(sensors) is not int or not 0 < sensors <= known
            or sensors & both_heels == both_heels):
        raise ValueError(f"sensors {sensors!r}: a sum of GYRO_SENSOR, HEEL_SWITCH_SENSOR "
                         "or HEEL_FORCE_SENSOR (one heel sensor), at least one")
    return sensors
