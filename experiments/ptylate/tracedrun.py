"""``fes run`` with every write to the link and every read of its reader stamped:
``python tracedrun.py TRACE.json run ...`` (the arguments of ``fes``)."""

import atexit
import json
import sys
import threading
import time

import hw.p24.driver as driver
import hw.transport as transport

trace_path = sys.argv.pop(1)
writes: list = []
reads: list = []
sends: list = []
names: dict[int, str] = {threading.get_native_id(): "MainThread"}
written = [0]
read_so_far = [0]
original_write, original_read = transport.Transport.write, transport.Transport.read
original_send = driver.P24Stimulator.send
original_run = threading.Thread.run


def write(self, data):  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    original_write(self, data)
    t1 = time.monotonic()
    written[0] += len(data)
    writes.append((t0, t1, threading.get_native_id(), len(data), written[0]))


def read(self):  # type: ignore[no-untyped-def]
    data = original_read(self)
    if data:
        read_so_far[0] += len(data)
        reads.append((time.monotonic(), threading.get_native_id(), len(data), read_so_far[0]))
    return data


def send(self, layer, packet, what, now):  # type: ignore[no-untyped-def]
    t = time.monotonic()
    original_send(self, layer, packet, what, now)
    sends.append((now, t, time.monotonic(), what, written[0]))


def run(self):  # type: ignore[no-untyped-def]
    names[threading.get_native_id()] = self.name
    return original_run(self)


def dump() -> None:
    with open(trace_path, "w") as handle:
        json.dump({"writes": writes, "reads": reads, "sends": sends, "threads": names}, handle)


transport.Transport.write, transport.Transport.read = write, read
driver.P24Stimulator.send = send
threading.Thread.run = run
atexit.register(dump)

from controller.cli import main  # noqa: E402  (after the patches)

sys.exit(main(sys.argv[1:]))
