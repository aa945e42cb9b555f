"""A host killed mid-train (SIGKILL: no chance to say goodbye) on the mid level, which
``fes run`` does not use (``tests/test_p24_walk.py`` kills ``fes run`` on the low level,
where the pulses end with the host): the emulated P24 runs the train on its own until
2 s after the last keep-alive it received, then stops, as documented."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import textwrap
import time

from hw.p24.device import KEEP_ALIVE_S
from hw.p24.driver import POLL_S
from hw.p24.emulator import serve_p24_in_thread

HOST = textwrap.dedent("""
    import sys, time
    from controller.ports import StimCommand
    from hw.p24.driver import P24Stimulator
    stim = P24Stimulator(sys.argv[1], layer=sys.argv[2])
    stim.connect()
    print("connected", flush=True)
    while True:  # the loop: a 40 Hz train, commanded every 2 ms
        stim.apply(0.0, [StimCommand(0, True, 30.0, 250.0, 40.0)])
        time.sleep(0.002)
""")


def test_a_killed_host_leaves_the_device_stimulating_no_longer_than_its_keep_alive():
    log = io.StringIO()
    emulator, finish = serve_p24_in_thread(log)
    host = subprocess.Popen([sys.executable, "-c", HOST, emulator.path, "mid"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None and host.stdout.readline().strip() == "connected"
        time.sleep(0.3)  # mid-train
        host.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        host.wait(timeout=10)
        time.sleep(KEEP_ALIVE_S + 0.3)
    finally:
        if host.poll() is None:
            host.kill()
        finish()
    events = [json.loads(line) for line in log.getvalue().splitlines()]
    pulses = [e["monotonic_s"] for e in events if e["event"] == "pulse"]
    assert len([t for t in pulses if t < killed]) >= 10  # it was stimulating
    after = [t for t in pulses if t >= killed]
    (timeout,) = [e["monotonic_s"] for e in events if e["event"] == "keep_alive_timeout"]
    # The last keep-alive went out at most POLL_S before the kill; 2 s later, the end.
    assert killed + KEEP_ALIVE_S - POLL_S - 0.05 <= timeout <= killed + KEEP_ALIVE_S
    assert max(pulses) < timeout and len(after) >= 60  # it did run on, at 40 Hz
