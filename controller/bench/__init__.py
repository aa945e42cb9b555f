"""Benchmarks and calibrations that print figures (``python -m controller.bench.<name>``);
never unit tests.

They sit above everything they measure (the loop, trials, detectors, the scheduler, the
watchdog, the simulator, the serial link), so that nothing they import has to import
upward: the back ends stay leaves. ``loop`` (the default, ``python -m controller.bench``)
and ``fault_latency`` time the real-time loop and the watchdog's fault drills; ``watchdog``,
``detector`` and ``scheduler`` the per-sample cost of each stage; ``simulator`` the
simulated patient and the closed loop as x real time; ``link`` the round trip over a
serial link to the board emulator; ``heelforce`` calibrates the heel force sensor model
against real insoles, ``heelwalkers`` scores the heel sensor on every gaitpdb walker;
``shank`` and ``landing`` measure the shank's heel-strike timing and the foot's landing
angle on real walks, for the simulated patient; ``startup`` times the
command line itself (``fes --help``, ``fes detect`` on a recording, the first ``fes sim``
after an install).
"""

#: The host's wall-clock fault timeouts (heartbeat, sensor, acknowledgement) at their
#: compiled maximum, 30 ms, as a ``[safety]`` table of a ``fes run``/``fes sim`` config: a
#: loaded machine keeps the trial's process off the CPU now and then, which the watchdog
#: rightly reports as a hung loop but which is not what a bench measures (nor the tests
#: that use it through ``tests/helpers/shared_machine.py``).
LOOSE_TIMEOUTS_TOML = ("[safety]\nheartbeat_timeout_ms = 30.0\nsensor_timeout_ms = 30.0\n"
                       "ack_timeout_ms = 30.0\n")
