"""The safety layer between the controller and a ``Stimulator``.

``limits`` (the compiled absolute maxima, the configurable ``SafetyLimits``, ``Pulse``
and ``pulse_breaches``), ``rules`` (rule codes and names, the per-pulse limit table),
``pulse_math`` (the pulse arithmetic and per-pulse checks, as kernels), ``layout`` (the
float arrays the kernels share), ``channels`` (per-channel history over time: on-time,
duty cycle, amplitude rise, as kernels), ``decide`` (every per-sample decision as a
kernel a compiled loop can call), ``records`` (log records to ``Intervention``s),
``watchdog`` (the ``Watchdog`` shell, the only path to a stimulator, with its
wall-clock monitor thread) and ``estop`` (signal and key e-stops); the kernels are
compiled as all the project's are (``controller.kernels``).
The fault drills that time it on real threads are ``controller.bench.fault_latency``.

Nothing here imports the detector, the scheduler, the loop or a back end: the watchdog
sees only commands, samples, a phase-known flag and wall-clock time
(``tests/test_watchdog_imports.py`` checks this). The package exports the names the rest
of the project uses (``__all__``); ``docs/safety.md`` documents every limit, its source
and its policy.
"""

from controller.safety.limits import SafetyLimits
from controller.safety.watchdog import Intervention, Watchdog, sample_ok

__all__ = ["Intervention", "SafetyLimits", "Watchdog", "sample_ok"]
