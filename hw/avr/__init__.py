"""The project's own board: AVR firmware in C and its simavr harness.

``firmware/`` is the board's firmware for an Arduino Mega 2560 (ATmega2560), built with
avr-gcc into the .elf/.hex a user flashes (docs/hardware.md); ``harness/`` runs that
.elf in simavr with its host link on a pty and its pins wired to the simulated patient;
``test/`` holds the host tests of the firmware's portable core. ``build`` runs the
Makefile; ``cosim`` is the Python half of the co-simulation (``fes board-emulator --mcu
avr``).
"""
