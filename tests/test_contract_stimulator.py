"""The ``Stimulator`` contract, run on every back end that implements it.

The loop and the watchdog cannot tell which stimulator they drive, so every one must
behave the same in what they and a user can see: the channels it announces, commands it
refuses before anything changes, outputs on when commanded, every output off after
``stop_all`` (safe at any time, from any thread), and a pulse shape either delivered or
refused, never delivered as another pulse. ``tests/conftest.py`` lists the back ends:
the simulated limb, the board driver on the board emulator and on the AVR firmware in
simavr, the openEMSstim driver on both versions of its upstream firmware, the P24 driver
on its emulator. Each test judges the device by what it does on its side
(``Backend.outputs_on``), not by what the driver says.
"""

from __future__ import annotations

import math
import threading

import pytest

from controller.ports import StimCommand, Stimulator

ON = StimCommand(0, True, 35.0, 300.0, 40.0)
#: The ODFS preset's pulse shape: a 50 us interphase gap, the recovery phase 4 times as
#: long at a quarter of the current.
SHAPED_ON = StimCommand(0, True, 35.0, 300.0, 40.0, 50.0, 4.0)


def test_announces_its_channels_and_starts_with_every_output_off(stimulator):
    device = stimulator.device
    assert isinstance(device, Stimulator)
    assert device.channels >= 2
    assert stimulator.outputs_stay([])


def test_stop_all_is_safe_before_any_command_and_twice(stimulator):
    stimulator.device.stop_all()
    stimulator.device.stop_all()
    assert stimulator.outputs_stay([])


@pytest.mark.parametrize(
    "batch",
    [
        pytest.param([ON, StimCommand(9, True, 35.0, 300.0, 40.0)], id="channel_out_of_range"),
        pytest.param([ON, StimCommand(0, True, math.nan, 300.0, 40.0)], id="nan_amplitude"),
        pytest.param([StimCommand(0, True, 35.0, -300.0, 40.0)], id="negative_width"),
        pytest.param([ON, StimCommand(0, True, 35.0, 300.0, math.inf)], id="infinite_frequency"),
        pytest.param([ON, StimCommand(0, True, 35.0, 300.0, 40.0, -50.0)], id="negative_gap"),
        pytest.param([StimCommand(0, True, 35.0, 300.0, 40.0, 0.0, 0.5)], id="ratio_below_1"),
    ],
)
def test_a_batch_with_a_command_no_stimulator_can_deliver_is_refused_whole(stimulator, batch):
    """``ValueError``, and nothing of the batch is delivered: not even its good command."""
    with pytest.raises(ValueError):
        stimulator.device.apply(0.0, batch)
    assert stimulator.outputs_stay([])


def test_a_command_turns_its_channel_on_and_stop_all_turns_every_output_off(stimulator):
    device = stimulator.device
    device.apply(0.0, [ON])
    assert stimulator.outputs_become([0]) == [0]
    device.apply(0.002, [StimCommand(1, True, 20.0, 300.0, 40.0)])
    assert stimulator.outputs_become([0, 1]) == [0, 1]  # channel 0 kept its command
    device.stop_all()
    assert stimulator.outputs_become([]) == []
    assert stimulator.outputs_stay([])


def test_an_off_command_turns_only_its_channel_off(stimulator):
    device = stimulator.device
    device.apply(0.0, [ON, StimCommand(1, True, 20.0, 300.0, 40.0)])
    assert stimulator.outputs_become([0, 1]) == [0, 1]
    device.apply(0.002, [StimCommand.off(0)])
    assert stimulator.outputs_become([1]) == [1]
    device.apply(0.004, [StimCommand(1, True, 0.0, 300.0, 40.0)])  # zero amplitude: off
    assert stimulator.outputs_become([]) == []


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        pytest.param([ON, StimCommand.off(0)], [], id="on_then_off"),
        pytest.param([StimCommand.off(0), ON], [0], id="off_then_on"),
    ],
)
def test_a_channel_named_twice_in_one_batch_holds_the_last_command(stimulator, batch, expected):
    """The last command for a channel in a batch is the one it holds; an on followed by
    an off in the same batch never turns the output on (the watchdog's rise check
    relies on it: it keeps the last as what the channel holds)."""
    stimulator.device.apply(0.0, batch)
    assert stimulator.outputs_become(expected) == expected
    assert stimulator.outputs_stay(expected)


def test_stop_all_from_another_thread_wins_over_the_loop(stimulator):
    """The watchdog's monitor thread calls ``stop_all`` while the loop may be applying:
    whatever interleaving, nothing raises, and once the loop has stopped and ``stop_all``
    has run, every output is off."""
    device = stimulator.device
    errors: list[Exception] = []

    def loop() -> None:
        try:
            for k in range(50):
                device.apply(k * 0.002, [ON if k % 2 else StimCommand.off(0)])
        except Exception as err:
            errors.append(err)

    thread = threading.Thread(target=loop)
    thread.start()
    for _ in range(20):
        device.stop_all()
    thread.join()
    device.stop_all()
    assert errors == []
    assert stimulator.outputs_become([]) == []


def test_a_pulse_shape_is_delivered_or_refused_never_changed(stimulator):
    """A shaped command reaches a device that delivers shapes; one that cannot refuses
    it with ``ValueError`` rather than deliver its own pulse in its place."""
    device = stimulator.device
    if stimulator.shapes:
        device.apply(0.0, [SHAPED_ON])
        assert stimulator.outputs_become([0]) == [0]
    else:
        with pytest.raises(ValueError):
            device.apply(0.0, [SHAPED_ON])
        assert stimulator.outputs_stay([])
