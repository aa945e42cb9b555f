"""Hasomed P24 (ScienceMode 4): ``driver.P24Stimulator`` is the ``controller.ports.
Stimulator``, through the ``science_mode_4`` library (the optional extra
``sciencemode``, imported only by ``driver``, ``connection`` and ``library``);
``limits`` holds what the device can do and how a command becomes its pulse;
``sciencemode``, ``device`` and ``emulator`` are the emulated device (ScienceMode 4's
device side, written from the public documentation), which needs no library."""
