"""The numeric row form of a command, which the compiled stages pass between them."""

import dataclasses

import numpy as np

from controller.ports import (
    COMMAND_FIELDS,
    COMMAND_ROW_SIZE,
    StimCommand,
    command_of_row,
    write_row,
)


def test_row_fields_are_the_command_fields_in_order():
    assert tuple(f.name for f in dataclasses.fields(StimCommand)) == COMMAND_FIELDS


def test_a_command_survives_the_round_trip_through_a_row():
    command = StimCommand(3, True, 27.5, 250.0, 33.0, 50.0, 4.0)
    row = np.zeros(COMMAND_ROW_SIZE)
    write_row(command, row)
    assert command_of_row(row) == command
    write_row(StimCommand.off(1), row)
    assert command_of_row(row) == StimCommand.off(1)
