"""The safety layer between the controller and a ``Stimulator``.

``limits`` (the compiled absolute maxima, the configurable ``SafetyLimits`` and the pulse
arithmetic they are checked with), ``channels`` (per-channel state over time: on-time,
duty cycle, amplitude rise), ``watchdog`` (the ``Watchdog`` itself, the only path to a
stimulator, with its wall-clock monitor thread), ``estop`` (signal and key e-stops) and
``drill`` (fault drills on real threads, for the tests and the latency benchmark).

Nothing here imports the detector, the scheduler, the loop or a back end: the watchdog
sees only commands, samples, a phase-known flag and wall-clock time
(``tests/test_watchdog_imports.py`` checks this). ``controller.watchdog`` re-exports the
public names.
"""
