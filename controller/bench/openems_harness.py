"""openEMSstim's own firmware on a pty (the shared host build), for tests and the bench.

``../shared/boards/openemsstim`` (beside the checkout) holds openEMSstim's upstream
Arduino firmware, unchanged, with shims that compile it for Linux; its ``make`` builds
one program per upstream version (``head``, ``aa7f198``) that serves the firmware on a
pseudo-terminal and logs every change of a channel (pads, LED, potentiometer wiper) and
every line it reads or prints, stamped with ``time.monotonic()``. This module finds that
folder, builds it (into a directory of the caller's, as the folder is read-only in CI),
runs a firmware and reads its logs back. The firmware's process logs its own waits for a
CPU as ``paused`` events (``FirmwareProcess.waits``): the project's ``ppoll`` wrapper
(``hw.ppoll_waits``, preloaded) reads the kernel's count at every sleep of the harness,
at most 0.25 ms apart; without a C compiler a thread of this module samples that count
every millisecond instead (``hw.runqueue.WaitWatch``), which a loaded core keeps off the
CPU too. The firmware code itself cannot tell a loaded machine from a slow host, and the
shared harness is not the project's to change. Nothing of the firmware is copied into the
project (its licence forbids military use): it is built and run where it is.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hw import ppoll_waits
from hw.openems.driver import ECHO_TIMEOUT_S
from hw.openems.firmware import BAUD_RATE
from hw.runqueue import WaitWatch, waited_within
from hw.transport import Transport

#: The firmware folder, relative to a directory above the checkout.
SHARED_FOLDER = Path("shared") / "boards" / "openemsstim"
VERSIONS = ("head", "aa7f198")
#: The wiper position at which a channel gives no output.
WIPER_OFF = 255
#: The firmware's Stream timeout on its USB port (the sketch's ``setup()``:
#: ``Serial.setTimeout(50)``): ``readStringUntil`` ends a line whose next byte it has
#: not read within it.
LINE_TIMEOUT_S = 0.050


class HarnessUnavailable(RuntimeError):
    """The firmware cannot be built or run here; the message says why (a test skips)."""


def find_folder(start: Path) -> Path | None:
    """``shared/boards/openemsstim`` in ``start`` or a directory above it, or None."""
    for parent in (start, *start.parents):
        if (parent / SHARED_FOLDER / "Makefile").is_file():
            return parent / SHARED_FOLDER
    return None


def build_for_bench(prefix: str, build_dir: Path | None) -> tuple[Path, dict[str, Path]]:
    """For a bench command: a fresh work folder (named with ``prefix``) and both
    versions built (into ``build_dir``, default one in the work folder) from the folder
    beside the current directory's checkout; prints the load average, which every
    figure is quoted with."""
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    programs = build(find_folder(Path.cwd()), build_dir or workdir / "build")
    with open("/proc/loadavg", encoding="ascii") as handle:
        print(f"load average: {handle.read().split()[0]}")
    return workdir, programs


def build(folder: Path | None, build_dir: Path) -> dict[str, Path]:
    """Build both versions into ``build_dir``; their programs by version name."""
    if folder is None:
        raise HarnessUnavailable(
            f"openEMSstim's firmware folder ({SHARED_FOLDER}) is not beside the checkout"
        )
    for tool in ("make", "g++"):
        if shutil.which(tool) is None:
            raise HarnessUnavailable(f"{tool} is not installed: cannot build the firmware")
    done = subprocess.run(
        ["make", "-s", "-C", str(folder), f"BUILD={build_dir}"],
        capture_output=True, text=True, check=False,
    )
    programs = {v: build_dir / f"openems_fw_{v}" for v in VERSIONS}
    if done.returncode != 0 or not all(p.is_file() for p in programs.values()):
        raise HarnessUnavailable(f"building the firmware failed: {done.stderr[-400:]}")
    return programs


@dataclass(frozen=True, slots=True)
class Change:
    """One row of the firmware's timeline: a channel's state after a change."""

    t_s: float
    channel: int
    pad_a: int
    pad_b: int
    wiper: int
    event: str

    @property
    def stimulating(self) -> bool:
        """Pads connected and the wiper below the no-output end."""
        return bool(self.pad_a and self.pad_b and self.wiper < WIPER_OFF)

    @property
    def pads_closed(self) -> bool:
        return bool(self.pad_a and self.pad_b)


@dataclass(frozen=True, slots=True)
class SerialRow:
    """One row of the firmware's serial log (``rx_line``, ``tx_line``, ``rx_lost``,
    ``crash``, ``setup_done``, ``host_bytes``, ``end`` ...)."""

    t_s: float
    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Train:
    """One stretch of stimulation on a channel: from output on to the wiper at no
    output (``zero_s``) and to the pads open (``open_s``, None if they stayed closed);
    the wipers it went through."""

    on_s: float
    zero_s: float
    open_s: float | None
    wipers: tuple[int, ...]


class FirmwareProcess:
    """One firmware running on its pty, logging into ``workdir``; ``waits_by`` says how
    its waits for a CPU are known (``waits``): logged by its own process through the
    preloaded ``ppoll`` wrapper, or, where that cannot be built or would not be called
    (no C compiler or ``nm``, a program without a dynamic ``ppoll``), sampled from a
    thread of this process."""

    def __init__(
        self, program: Path, workdir: Path, real_boot: bool = False, max_seconds: float = 300.0
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.timeline_path = workdir / f"{program.name}_timeline.csv"
        self.serial_path = workdir / f"{program.name}_serial.csv"
        args = [str(program), "--timeline", str(self.timeline_path),
                "--serial", str(self.serial_path), "--max-seconds", f"{max_seconds:g}"]
        if real_boot:
            args.append("--real-boot")
        self.waits_path = workdir / f"{program.name}_waits.jsonl"
        self.waits_path.unlink(missing_ok=True)
        try:
            shim: Path | None = ppoll_waits.build_for(program, program.parent)
            self.waits_by = "logged by the firmware's own process (hw.ppoll_waits)"
        except ppoll_waits.ShimUnavailable as why:
            shim, self.waits_by = None, f"sampled from outside ({why})"
        env = None if shim is None else {**os.environ,
                                         **ppoll_waits.environment(shim, self.waits_path)}
        self._process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
        self._watch = WaitWatch(self._process.pid, self.waits_path) if shim is None else None
        assert self._process.stdout is not None
        self.path = ""
        for line in self._process.stdout:
            if line.startswith("PTY "):
                self.path = line.split()[1]
                if real_boot:  # the Nano resets as the port opens: setup runs now
                    break
            if line.startswith("READY"):
                break
        if not self.path:
            self.stop()
            raise HarnessUnavailable(f"{program.name} did not announce its pty")

    def waits(self) -> list[dict]:
        """The firmware process's waits for a CPU so far (``paused`` events: ``since_s``
        .. ``monotonic_s``, ``waited_ms`` of it without a CPU; ``hw.runqueue``): the ones
        its own process logged (``hw.ppoll_waits``), else ``WaitWatch``'s, never both
        (``waited_within`` adds up a thread's events: one wait would count twice)."""
        if self._watch is not None:
            return list(self._watch.events)
        return ppoll_waits.read_events(self.waits_path)

    @property
    def pid(self) -> int:
        """The firmware's process id."""
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """None while running; 128 + signal after a firmware crash."""
        return self._process.poll()

    def stop(self) -> int:
        """End the firmware (SIGTERM: its logs are closed cleanly); its exit code."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        if self._watch is not None:
            self._watch.stop()
        return self._process.returncode

    def timeline(self) -> list[Change]:
        """Every change logged so far."""
        with self.timeline_path.open(newline="") as handle:
            return [
                Change(float(r["t_mono_s"]), int(r["channel"]), int(r["pad_a"]),
                       int(r["pad_b"]), int(r["wiper"]), r["event"])
                for r in csv.DictReader(handle)
            ]

    def stimulating(self) -> list[int]:
        """The channels delivering output now (each channel's last logged state)."""
        last: dict[int, Change] = {}
        for change in self.timeline():
            last[change.channel] = change
        return sorted(ch for ch, change in last.items() if change.stimulating)

    def serial(self) -> list[SerialRow]:
        """Every serial log row so far."""
        return read_serial(self.serial_path)


def read_serial(path: Path) -> list[SerialRow]:
    """The rows of a firmware's serial log (``--serial``)."""
    with path.open(newline="") as handle:
        return [SerialRow(float(r["t_mono_s"]), r["kind"], r["text"])
                for r in csv.DictReader(handle)]


#: How the harness escapes a byte in its logs' text (``csv_text`` in its ``host.cpp``).
_ESCAPED = re.compile(r"\\(?:[trn]|x[0-9a-f]{2})")


def _byte_count(logged: str) -> int:
    """How many bytes a logged text stands for (an escape such as ``\\n`` is one)."""
    return len(_ESCAPED.sub("_", logged))


def lines_cut_by_the_machine(rows: Sequence[SerialRow], waits: Iterable[dict] = ()) -> str:
    """The lines the firmware cut short (``rx_line_timeout``: ``readStringUntil`` saw no
    next byte within ``LINE_TIMEOUT_S``) although that next byte had reached it in the
    same read from the pty as the byte before it, as text naming each (with the
    firmware's logged waits for a CPU in between, ``waits``); empty when no line was
    cut, or when one was cut where the host's bytes came apart (the host's doing: a
    line written in pieces or late), or a byte was lost.

    The firmware's build puts the bytes of one read on its modelled wire 0.52 ms apart
    and reads the next one as soon as it is due; between two bytes it does nothing
    else. So a line cut between two bytes that came in one read means the firmware's
    process did not run for ``LINE_TIMEOUT_S`` then: the machine kept it off the CPU
    (a loaded machine; with SIGSTOP for 60 ms, ``Connection End`` written whole was
    read as ``Connect`` and ``ion End``, and no channel went off). A Nano is never kept
    off its CPU; the run says nothing about the driver."""
    arrived: list[float] = []  # when each byte the host wrote reached the firmware
    read = 0  # bytes the firmware has read
    found: list[str] = []
    for row in rows:
        if row.kind == "host_bytes":
            arrived.extend([row.t_s] * _byte_count(row.text))
        elif row.kind == "rx_lost":
            return ""
        elif row.kind == "rx_line":
            read += _byte_count(row.text) + 1  # and its newline
        elif row.kind == "rx_line_timeout":
            n = _byte_count(row.text)
            cut = read + n  # the byte the firmware gave up waiting for
            if n == 0 or cut >= len(arrived) or arrived[cut] != arrived[cut - 1]:
                return ""
            waited_ms = 1000.0 * waited_within(waits, arrived[cut], row.t_s)
            found.append(
                f"the firmware cut the line {row.text!r} {1000.0 * (row.t_s - arrived[cut]):.0f}"
                f" ms after its next byte had come in the same read ({waited_ms:.0f} ms "
                "without a CPU logged meanwhile)")
            read = cut
    return "; ".join(found)


class LoggedLink:
    """The driver's link to a firmware's pty (a ``Transport``) that logs when each write
    returned (``*_writes.jsonl`` beside the firmware's logs), so that
    ``bytes_held_by_the_machine`` can tell how long bytes the driver had written took to
    reach the firmware. A ``hw.transport.Link``; its owner closes it."""

    def __init__(self, process: FirmwareProcess) -> None:
        self.url = process.path
        self.path = process.serial_path.with_name(
            process.serial_path.name.replace("_serial.csv", "_writes.jsonl"))
        self._link = Transport(process.path, BAUD_RATE)
        self._lock = threading.Lock()

    def read(self) -> bytes:
        return self._link.read()

    def write(self, data: bytes) -> None:
        self._link.write(data)
        done = time.monotonic()
        with self._lock, self.path.open("a", encoding="ascii") as log:
            log.write(json.dumps({"monotonic_s": done, "bytes": len(data)}) + "\n")

    def close(self) -> None:
        self._link.close()


def bytes_held_by_the_machine(rows: Sequence[SerialRow], writes: Sequence[dict]) -> str:
    """The writes of the driver (``LoggedLink``'s log) whose first byte reached the
    firmware (its ``host_bytes`` rows: the pty's bytes in order) ``ECHO_TIMEOUT_S`` or
    more after the write had returned, as text; empty when none did. The driver takes a
    line not echoed within that for a lost link, rightly; but a write that returned had
    handed its bytes to the kernel, and what held them (the pty's tty worker, the
    firmware's process waiting for a CPU: docs/hardware.md, "Bytes late on a loaded
    machine") is the machine's, as a USB link to a Nano is not."""
    arrived = arrivals(rows)
    found, first = [], 0
    for write in writes:
        if first < len(arrived) and arrived[first] - write["monotonic_s"] >= ECHO_TIMEOUT_S:
            found.append(f"{arrived[first] - write['monotonic_s']:.3f} s")
        first += write["bytes"]
    if not found:
        return ""
    return (f"{len(found)} write(s) of the driver reached the firmware "
            f"{ECHO_TIMEOUT_S * 1000:g} ms or more after they returned: {', '.join(found)}")


def arrivals(rows: Sequence[SerialRow]) -> list[float]:
    """When each byte the host wrote reached the firmware (its ``host_bytes`` rows), in
    the order written."""
    arrived: list[float] = []
    for row in rows:
        if row.kind == "host_bytes":
            arrived.extend([row.t_s] * _byte_count(row.text))
    return arrived


def first_write_after(rows: Sequence[SerialRow], writes: Sequence[dict],
                      t_s: float) -> tuple[float, float] | None:
    """The first write of the driver (``LoggedLink``'s log) that returned at or after
    ``t_s``: when it returned and when its first byte reached the firmware; None when
    there is none or its bytes never arrived. The span between is the machine's
    (``bytes_held_by_the_machine``)."""
    arrived, first = arrivals(rows), 0
    for write in writes:
        if write["monotonic_s"] >= t_s:
            return (write["monotonic_s"], arrived[first]) if first < len(arrived) else None
        first += write["bytes"]
    return None


def spoiled_by_the_machine(folder: Path) -> str:
    """Why a run of the driver against the firmware that logged into ``folder`` says
    nothing about the driver: a line cut by the machine (``lines_cut_by_the_machine``)
    or bytes it held (``bytes_held_by_the_machine``), as text; empty when neither."""
    found = []
    for serial_path in sorted(folder.glob("*_serial.csv")):
        rows = read_serial(serial_path)
        logs = {}
        for kind in ("waits", "writes"):
            path = serial_path.with_name(serial_path.name.replace("_serial.csv", f"_{kind}.jsonl"))
            logs[kind] = ([json.loads(line) for line in path.read_text().splitlines() if line]
                          if path.is_file() else [])
        found += [lines_cut_by_the_machine(rows, logs["waits"]),
                  bytes_held_by_the_machine(rows, logs["writes"])]
    return "; ".join(filter(None, found))


def trains(changes: list[Change], channel: int) -> list[Train]:
    """The stretches of stimulation on ``channel``, in order."""
    out: list[Train] = []
    on_s: float | None = None
    zero_s: float | None = None
    wipers: list[int] = []
    for c in (c for c in changes if c.channel == channel):
        if on_s is None:
            if c.stimulating:
                on_s, zero_s, wipers = c.t_s, None, [c.wiper]
            continue
        if zero_s is None:
            if c.stimulating:
                if c.wiper != wipers[-1]:
                    wipers.append(c.wiper)
                continue
            zero_s = c.t_s
        if not c.pads_closed:
            out.append(Train(on_s, zero_s, c.t_s, tuple(wipers)))
            on_s = None
        elif c.stimulating:  # output again before the pads opened
            out.append(Train(on_s, zero_s, None, tuple(wipers)))
            on_s, zero_s, wipers = c.t_s, None, [c.wiper]
    if on_s is not None:
        out.append(Train(on_s, zero_s if zero_s is not None else float("inf"), None,
                         tuple(wipers)))
    return out


def connected_at_zero(changes: list[Change], channel: int) -> list[float]:
    """When ``channel``'s pads were connected while its wiper was at no output: what a
    re-activation without an intensity does (a channel on, silent). Switching a channel
    off never does it (the firmware sets the wiper to no output, waits 50 ms, then opens
    the pads), however long that wait lasts on a loaded machine."""
    found, closed = [], False
    for c in (c for c in changes if c.channel == channel):
        if c.pads_closed and not closed and c.wiper == WIPER_OFF:
            found.append(c.t_s)
        closed = c.pads_closed
    return found
