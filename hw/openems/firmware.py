"""What the host must know of openEMSstim's firmware, for the two upstream versions.

openEMSstim (Lopes et al., github.com/PedroLopes/openEMSstim) switches and scales the
output of a TENS/EMS unit: per channel two solid-state relays connect the unit to the
pads and one wiper of an AD5252 digital potentiometer scales it. Its Arduino Nano takes
the protocol ``C<channel>I<intensity>T<on-time ms>G`` over USB at 19200 baud. These facts
were read from its sketch and ``EMSSystem.cpp`` / ``EMSChannel.cpp`` (two versions, see
``../shared/boards/openemsstim/firmware/UPSTREAM.md``) and measured on their host build;
no firmware code is copied here (its licence forbids military use).

Behaviour the driver relies on:

- A line with ``G`` and a valid channel sets the on-time (``T``, capped at 5000 ms, kept
  for later lines), the intensity (``I``, kept), closes the pads and restarts the
  on-time; when the on-time ends the channel switches off by itself. A line with ``G``
  and no channel switches every channel off (``shutDown``); with no channel but a ``T``
  or ``I`` field the firmware indexes its channel array at -1 and crashes (a garbled
  line can do that, so no byte may be lost).
- Switching a channel off sets its wiper to 255 (no output), waits 50 ms (the whole
  firmware waits), then opens the pads. ``shutDown`` does that channel after channel.
- Every line read is printed back at once as ``\\tUSB: received command: <line>``
  (debug prints are on in upstream's sketch), followed by more prints; the 64-byte
  transmit buffer drains at the baud rate and the firmware waits for it after each line
  (``Serial.flush``). The prints therefore set the pace: about 30 ms per plain line,
  about 80 ms per wrapped line. The echo is the host's acknowledgement.
- ``head`` (upstream master, the sketch of 2017-02-01) takes the protocol over USB only
  wrapped as ``WV,<handle>,<hex of the command>.``; any other line is its single-key test
  mode (``1``/``2`` toggle a channel, ``q``/``a``/``w``/``s`` move a wiper). Its hex
  decoder reads ``A``-``F`` as 0-5, so only commands whose hex has decimal digits alone
  pass (``C``, ``I``, ``T``, ``G`` and digits do).
- ``aa7f198`` (2016-08-19) hands a plain line to the protocol.
- Both versions treat the line ``Connection End`` (the Bluetooth module's disconnect
  notice) as ``shutDown``, and both reply to an unknown one-character line in a way of
  their own, which is how the driver tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

BAUD_RATE = 19200
#: One byte on the 8N1 line.
BYTE_S = 10.0 / BAUD_RATE
#: The receive ring of the Nano's UART holds 64 bytes, 63 usable; a byte arriving at a
#: full ring is lost.
RX_RING_BYTES = 63
#: The transmit buffer: a print blocks only when it is full.
TX_BUFFER_BYTES = 64
CHANNELS = 2
#: The firmware caps every on-time at this.
MAX_ON_TIME_MS = 5000
#: ``EMSChannel::deactivate``: wiper to 255, then this wait, then the pads open.
DEACTIVATE_S = 0.050
#: The sketch prints this before every line it has read.
ECHO_PREFIX = "\tUSB: received command: "
#: Printed once at the end of ``setup()``.
SETUP_DONE = "SETUP DONE"
#: The first print of ``setup()``: the board has just been reset.
SETUP_START = "SETUP:"
#: The Bluetooth disconnect notice: ``shutDown`` on both versions, not wrapped.
DISCONNECT_LINE = "Connection End"
#: The probe: one character that neither version acts on.
PROBE_LINE = "?"
#: What each version prints for the probe after the echo (``aa7f198``:
#: ``EMSSystem::doCommand``; ``head``: its test mode's ``doCommand``).
PROBE_REPLIES = {
    "aa7f198": "Unknown command: ?",
    "head": "\tERROR: SINGLE-CHAR Command Unknown",
}
_NON_HEX = "\tCommand NON HEX:"
_DISCONNECTED = "\tBT: Disconnected"
_HEX_LENGTH = "\tEMS_CMD: HEX command length: "
_CONVERTED = "\tEMS_CMD: Converted HEX command: "


def _printed(text: str) -> int:
    """Bytes a ``println`` of ``text`` puts on the line."""
    return len(text) + 2


@dataclass(frozen=True, slots=True)
class Command:
    """One protocol command: ``C<channel>[I<intensity>][T<on-time>]G``; a field left
    out keeps the value the firmware has."""

    channel: int
    intensity: int | None = None
    on_time_ms: int | None = None

    @property
    def text(self) -> str:
        intensity = "" if self.intensity is None else f"I{self.intensity}"
        on_time = "" if self.on_time_ms is None else f"T{self.on_time_ms}"
        return f"C{self.channel}{intensity}{on_time}G"


@dataclass(frozen=True, slots=True)
class Line:
    """A line for the board and what it costs the firmware.

    ``rx_bytes`` go over the wire (with the newline); ``before_action`` bytes are printed
    before the line takes effect (a print waits while the transmit buffer is full),
    ``printed`` in all; ``deactivations`` are the 50 ms channel switch-offs done while
    the line is handled; ``deferred_off`` says the line only ends an on-time (``T0``), so
    the channel switches off in the firmware's next ``check()``, after its prints are
    out. ``command`` is the command the line carries (None for the stop line and the
    probe).
    """

    text: str
    rx_bytes: int
    before_action: int
    printed: int
    command: Command | None = None
    deactivations: int = 0
    deferred_off: bool = False

    @property
    def echo(self) -> str:
        """What the firmware prints first when it has read this line."""
        return ECHO_PREFIX + self.text

    def zero_delay_s(self, channel: int) -> float:
        """When ``channel`` reaches no output after the line takes effect: the all-off
        line switches the channels off one after the other (``EMSSystem::shutDown``),
        each after the previous one's 50 ms wait."""
        return channel * DEACTIVATE_S if self.deactivations == CHANNELS else 0.0


@dataclass(frozen=True, slots=True)
class Firmware:
    """One upstream version: how a command goes on the wire and what a line costs."""

    name: str
    #: Commands go out wrapped as ``WV,0,<hex>.`` (``head``) or as they are.
    wraps: bool
    #: The line that switches every channel off soonest: a plain channel-less ``G`` on
    #: ``aa7f198``; ``Connection End`` on ``head``, whose wrapped ``G`` prints four
    #: more lines before it acts.
    stop_text: str

    def command(self, command: Command) -> Line:
        """The line that carries ``command`` to this version."""
        text = command.text
        echo = _printed(ECHO_PREFIX + text)
        if self.wraps:
            hex_text = text.encode("ascii").hex().upper()
            if any(c in "ABCDEF" for c in hex_text):
                raise ValueError(f"{text!r} cannot be wrapped: the firmware misreads hex A-F")
            wrapped = f"WV,0,{hex_text}."
            printed = (
                _printed(ECHO_PREFIX + wrapped)
                + _printed(_HEX_LENGTH)
                + _printed(str(len(hex_text)))
                + _printed(hex_text)
                + _printed(_CONVERTED)
                + _printed(text)
            )
            text = wrapped
        else:
            printed = echo + _printed(_NON_HEX) + _printed(text)
        return Line(
            text, len(text) + 1, printed, printed, command,
            deferred_off=command.on_time_ms == 0,
        )

    def stop(self) -> Line:
        """The line that switches every channel off."""
        text = self.stop_text
        if text == DISCONNECT_LINE:
            printed = _printed(ECHO_PREFIX + text) + _printed(_DISCONNECTED)
        else:
            printed = _printed(ECHO_PREFIX + text) + _printed(_NON_HEX) + _printed(text)
        return Line(text, len(text) + 1, printed, printed, deactivations=CHANNELS)

    def probe(self) -> Line:
        """The probe line (its reply tells the versions apart)."""
        echo = _printed(ECHO_PREFIX + PROBE_LINE)
        printed = echo + _printed(_NON_HEX) + _printed(PROBE_LINE)
        return Line(PROBE_LINE, 2, printed, printed + _printed(PROBE_REPLIES[self.name]))


#: The two versions of the shared host build, by name.
FIRMWARES = {
    "head": Firmware("head", wraps=True, stop_text=DISCONNECT_LINE),
    "aa7f198": Firmware("aa7f198", wraps=False, stop_text="G"),
}


def recognise(lines: list[str]) -> str | None:
    """The version whose reply to ``PROBE_LINE`` is among the lines the board printed,
    or None."""
    for name, reply in PROBE_REPLIES.items():
        if reply in lines:
            return name
    return None
