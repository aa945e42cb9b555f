"""The emulated P24 with every read and write of its pty end stamped (the byte offset each
reaches) and every ``select`` that overran its timeout (with this thread's run-queue wait):
``python tracedemu.py LOG.jsonl TRACE.json``; prints the pty's path."""

import json
import select
import signal
import sys
import threading
import time

import hw.p24.emulator as emulator_module
import hw.pty as pty_module
from hw.runqueue import RunQueueWait

log = open(sys.argv[1], "w")  # noqa: SIM115  (closed at the end)
trace_path = sys.argv[2]
reads: list = []
sends: list = []
selects: list = []
got = [0]
sent = [0]
waits: list[RunQueueWait] = []
original_read, original_send = pty_module.DevicePty.read, pty_module.DevicePty.send
original_select = select.select


def read(self):  # type: ignore[no-untyped-def]
    data = original_read(self)
    if data:
        got[0] += len(data)
        reads.append((time.monotonic(), len(data), got[0]))
    return data


def send(self, pending):  # type: ignore[no-untyped-def]
    before = len(pending)
    if before:
        t0 = time.monotonic()
        original_send(self, pending)
        n = before - len(pending)
        if n:
            sent[0] += n
            sends.append((t0, time.monotonic(), n, sent[0]))


def timed_select(r, w, x, timeout):  # type: ignore[no-untyped-def]
    if not waits:
        waits.append(RunQueueWait())  # the serving thread's
    t0, q0 = time.monotonic(), waits[0].seconds() or 0.0
    out = original_select(r, w, x, timeout)
    t1, q1 = time.monotonic(), waits[0].seconds() or 0.0
    if t1 - t0 > timeout + 0.005:
        selects.append((t0, t1, timeout, round((q1 - q0) * 1e3, 2), bool(out[0])))
    return out


pty_module.DevicePty.read, pty_module.DevicePty.send = read, send
emulator_module.select = type("Select", (), {"select": staticmethod(timed_select)})
emulator = emulator_module.P24Emulator(log)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
print(emulator.path, flush=True)
serving = threading.Thread(target=emulator.run, args=(stop,), name="serve")
serving.start()
while serving.is_alive():
    serving.join(0.2)
log.close()
with open(trace_path, "w") as handle:
    json.dump({"sends": sends, "reads": reads, "late_selects": selects}, handle)
