"""The safety layer between the controller and a ``Stimulator``.

``limits`` (the compiled absolute maxima, the configurable ``SafetyLimits`` and the pulse
arithmetic they are checked with), ``channels`` (per-channel history over time: on-time,
duty cycle, amplitude rise), ``watchdog`` (the ``Watchdog`` itself, the only path to a
stimulator, with its wall-clock monitor thread) and ``estop`` (signal and key e-stops).
The fault drills that time it on real threads are ``controller.bench.fault_latency``.

Nothing here imports the detector, the scheduler, the loop or a back end: the watchdog
sees only commands, samples, a phase-known flag and wall-clock time
(``tests/test_watchdog_imports.py`` checks this). ``controller.watchdog`` re-exports the
public names. ``docs/safety.md`` documents every limit, its source and its policy.
"""
