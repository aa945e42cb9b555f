"""Finding the board: serial ports, the USB-serial bridges they sit on, and probing.

A stimulator board reaches the host through a USB-serial bridge chip or a
microcontroller's own USB CDC port; the bridge's USB vendor and product IDs say which.
The table lists the bridges that open hardware boards commonly use (IDs as their
vendors publish them); a port on one of them is a candidate. Only a probe (HELLO, and
the board's INFO in reply) tells whether a board speaking ``docs/protocol.md`` is on it,
so probing is explicit: other serial devices need not like unexpected bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from serial.tools import list_ports

#: USB (vendor, product) IDs of common USB-serial bridges and CDC microcontrollers.
KNOWN_USB_SERIAL: dict[tuple[int, int], str] = {
    (0x0403, 0x6001): "FTDI FT232R USB-UART",
    (0x0403, 0x6010): "FTDI FT2232 dual USB-UART",
    (0x0403, 0x6015): "FTDI FT-X series USB-UART",
    (0x10C4, 0xEA60): "Silicon Labs CP210x USB-UART",
    (0x1A86, 0x7523): "WCH CH340 USB-UART",
    (0x2341, 0x0043): "Arduino Uno R3 (ATmega16U2 USB-serial)",
    (0x2341, 0x0042): "Arduino Mega 2560 R3 (ATmega16U2 USB-serial; the board of hw/avr)",
    (0x16C0, 0x0483): "Teensy USB serial",
    (0x0483, 0x5740): "STM32 USB virtual COM port",
    (0x2E8A, 0x000A): "Raspberry Pi Pico (RP2040) USB CDC",
}


@dataclass(frozen=True, slots=True)
class SerialPort:
    """A serial port of this machine, with what its USB IDs say about it."""

    device: str
    description: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    bridge: str | None

    @property
    def usb_id(self) -> str:
        """``VID:PID`` in hex, or ``-`` for a port that is not on USB."""
        if self.vid is None or self.pid is None:
            return "-"
        return f"{self.vid:04X}:{self.pid:04X}"


def serial_ports() -> list[SerialPort]:
    """Every serial port pyserial finds, candidates (known bridges) first, then by name."""
    ports = [
        SerialPort(
            device=info.device,
            description=info.description or "",
            vid=info.vid,
            pid=info.pid,
            serial_number=info.serial_number,
            bridge=KNOWN_USB_SERIAL.get((info.vid, info.pid))
            if info.vid is not None and info.pid is not None
            else None,
        )
        for info in list_ports.comports()
    ]
    return sorted(ports, key=lambda port: (port.bridge is None, port.device))
