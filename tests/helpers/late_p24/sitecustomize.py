"""A late product for ``tests/test_p24_walk.py``: with this folder on ``PYTHONPATH`` and
``FES_TEST_LATE_PULSE_S`` set, the P24 driver's I/O thread waits that long before the
first pulse of every train (a driver that is slow to start a train), so the test can
show that such lateness is never taken for a starved machine."""

from __future__ import annotations

import os
import time

_DELAY_S = float(os.environ.get("FES_TEST_LATE_PULSE_S", "0") or 0)

if _DELAY_S > 0:
    from hw.p24 import driver

    _step = driver._LowLevel.step

    def _late_step(self, now, wanted, alive, stop):  # type: ignore[no-untyped-def]
        if alive and any(p is not None and not on for p, on in zip(wanted, self._on,
                                                                    strict=True)):
            time.sleep(_DELAY_S)
            now = time.monotonic()
        _step(self, now, wanted, alive, stop)

    driver._LowLevel.step = _late_step  # type: ignore[method-assign]
