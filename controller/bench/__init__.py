"""Benchmarks and calibrations that print figures (``python -m controller.bench.<name>``);
never unit tests.

They sit above everything they measure (the loop, trials, detectors, the scheduler, the
watchdog, the simulator, the serial link), so that nothing they import has to import
upward: the back ends stay leaves. ``loop`` (the default, ``python -m controller.bench``)
and ``fault_latency`` time the real-time loop and the watchdog's fault drills; ``watchdog``,
``detector`` and ``scheduler`` the per-sample cost of each stage; ``simulator`` the
simulated patient and the closed loop as x real time; ``link`` the round trip over a
serial link to the board emulator; ``heelforce`` calibrates the heel force sensor model
against real insoles; ``shank`` and ``landing`` measure the shank's heel-strike timing and
the foot's landing angle on real walks, for the simulated patient; ``startup`` times the
command line itself (``fes --help``, ``fes detect`` on a recording, the first ``fes sim``
after an install).
"""
