"""Safety watchdog: the only path from the controller to a ``Stimulator``.

The implementation lives in ``controller.safety`` (limits, per-channel history, the
watchdog and its monitor thread, e-stops); this module keeps the import path the rest of
the project uses. Like the package, it imports nothing from the detector or the
scheduler: it sees commands, samples and heartbeats only.
"""

from __future__ import annotations

from controller.safety.limits import SafetyLimits
from controller.safety.watchdog import Intervention, Watchdog, sample_ok

__all__ = ["Intervention", "SafetyLimits", "Watchdog", "sample_ok"]
