"""E-stops from outside the loop: the API, POSIX signals and a key on the terminal."""

from __future__ import annotations

import os
import signal
import time

import pytest
from helpers.stimulators import RecordingStimulator

from controller.ports import StimCommand
from controller.safety import SafetyLimits, Watchdog
from controller.safety.estop import EStopKeys, estop_signals


def running_dog() -> tuple[Watchdog, RecordingStimulator]:
    out = RecordingStimulator()
    dog = Watchdog(out, SafetyLimits())
    dog.submit(0.0, [StimCommand(0, True, 5.0, 300.0, 40.0)])
    assert out.applied and dog.faults == 0
    return dog, out


def wait_for(condition, timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)
    return condition()


def test_sigusr1_is_an_estop_and_the_handlers_are_restored():
    dog, out = running_dog()
    before = signal.getsignal(signal.SIGUSR1)
    with estop_signals(dog):
        os.kill(os.getpid(), signal.SIGUSR1)
        assert wait_for(lambda: dog.latched)
    assert dog.fault is not None and dog.fault.rule == "emergency_stop"
    assert dog.fault.requested == "e-stop (SIGUSR1)"
    assert out.stops >= 1
    assert signal.getsignal(signal.SIGUSR1) is before


def test_sigterm_stops_the_output_and_interrupts_the_loop():
    dog, out = running_dog()
    with pytest.raises(KeyboardInterrupt), estop_signals(dog):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1.0)  # the handler interrupts this sleep
    assert wait_for(lambda: dog.latched)
    assert dog.fault is not None and dog.fault.requested == "e-stop (SIGTERM)"
    assert out.stops >= 1


def test_space_or_escape_on_the_terminal_is_an_estop():
    dog, out = running_dog()
    read_fd, write_fd = os.pipe()
    keys = EStopKeys(read_fd, dog).start()
    try:
        os.write(write_fd, b"ar\n")
        time.sleep(0.05)
        assert not dog.latched  # other keys do nothing
        os.write(write_fd, b" ")
        assert wait_for(lambda: dog.latched)
        assert dog.fault is not None and dog.fault.requested == "e-stop (key)"
        dog.reset()
        os.write(write_fd, b"\x1b")
        assert wait_for(lambda: dog.latched)
    finally:
        os.close(write_fd)
        keys.join(1.0)
        os.close(read_fd)
    assert dog.faults == 2 and out.stops >= 2
