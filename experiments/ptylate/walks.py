"""Replayed walks into the emulated P24 beside BUSY busy loops, each byte's delivery timed
both ways and the kernel's workers watched:
``python walks.py BUSY RUNS TAG [EXTRA_TOML]`` (``\\n`` in EXTRA_TOML is a new line;
``BUSY_NICE`` in the environment sets the busy loops' nice value). See README.md."""

import bisect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parents[1]
sys.path.insert(0, str(CHECKOUT / "tests"))
from helpers.shared_machine import SHARED_MACHINE_SAFETY  # noqa: E402
from helpers.walks import FOOT, shortened_walk  # noqa: E402

from hw.runqueue import WaitWatch, waited_within  # noqa: E402

PYTHON = sys.executable


def per_thread(waits: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for w in waits:
        out.setdefault(w["tid"], []).append(w)
    return out


def delivery(sent: list, got: list, sent_end: int, got_end: int) -> list[tuple]:
    """(latency, write return, writer) per write: to the first read reaching its last byte."""
    offsets = [r[got_end] for r in got]
    out = []
    for w in sent:
        i = bisect.bisect_left(offsets, w[sent_end])
        if i < len(offsets):
            out.append((got[i][0] - w[1], w[1], w[2] if len(w) > 4 else None))
    return sorted(out)


def one_run(folder: Path, walk: Path, config: Path) -> str:
    emu = subprocess.Popen([PYTHON, str(HERE / "tracedemu.py"), str(folder / "p24.jsonl"),
                            str(folder / "emu.json")], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, cwd=CHECKOUT)
    assert emu.stdout is not None
    pty = emu.stdout.readline().strip()
    emu_watch = WaitWatch(emu.pid)
    load = os.getloadavg()[0]
    host = subprocess.Popen(
        [PYTHON, str(HERE / "tracedrun.py"), str(folder / "host.json"), "run", "--no-status",
         "--sensors", f"replay:{walk}", "--stimulator", f"p24:{pty}", "--config",
         str(config), "--duration-s", "9", "--out", str(folder / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    host_watch = WaitWatch(host.pid)
    sampler = subprocess.Popen([PYTHON, str(HERE / "sampler.py"), str(folder / "states.jsonl"),
                                str(host.pid), str(emu.pid)])
    classes = subprocess.Popen(["bash", "-c", f"sleep 8; ps -L -o tid=,cls=,rtprio= -p "
                                f"{host.pid} > {folder}/classes.txt"])
    _, err = host.communicate(timeout=120)
    classes.wait()
    waits = host_watch.stop()
    emu.send_signal(signal.SIGTERM)
    emu.wait(10)
    emu_waits = emu_watch.stop()
    sampler.wait(5)
    h = json.loads((folder / "host.json").read_text())
    e = json.loads((folder / "emu.json").read_text())
    names = {int(k): v for k, v in h["threads"].items()}
    out = delivery(h["writes"], e["reads"], 4, 2)
    back = delivery(e["sends"], h["reads"], 3, 3)
    calls = sorted(w[1] - w[0] for w in h["writes"])
    states = (folder / "states.jsonl").read_text().splitlines()
    worker = max((json.loads(x).get("rq_ms", 0) for x in states if "events_unbound" in x),
                 default=0)
    n = len(out)
    line = (f"load {load:.2f} exit {host.returncode}: unbound worker's longest run-queue wait "
            f"{worker} ms; {n} writes, call median {calls[n // 2] * 1e3:.3f} ms max "
            f"{calls[-1] * 1e3:.2f} ms; host write -> emulator read median "
            f"{out[n // 2][0] * 1e3:.2f} ms max {out[-1][0] * 1e3:.1f} ms, over 50 ms "
            f"{sum(x[0] > 0.05 for x in out)}")
    if back:
        line += (f"; emulator write -> host read max {back[-1][0] * 1e3:.1f} ms, over 50 ms "
                 f"{sum(x[0] > 0.05 for x in back)}")
    if (folder / "classes.txt").is_file():
        rows = [r.split() for r in (folder / "classes.txt").read_text().splitlines() if r]
        line += "; threads " + ", ".join(f"{names.get(int(r[0]), r[0])} {r[1]} {r[2]}"
                                         for r in rows)
    if host.returncode:
        line += "\n   " + (err.strip().splitlines() or [""])[-1][:240]
    latency, a, tid = out[-1]
    b = a + latency
    host_waits = {names.get(t, t): round(waited_within(ev, a, b) * 1e3, 1)
                  for t, ev in per_thread(waits).items()}
    emu_wait = {t: round(waited_within(ev, a, b) * 1e3, 1)
                for t, ev in per_thread(emu_waits).items()}
    held = [s for s in e["late_selects"] if s[1] > a and s[0] < b]
    line += (f"\n   worst: written {a:.3f} by {names.get(tid, tid)}, read {b:.3f}; run-queue "
             f"waits in it (ms): host {host_waits}, emulator {emu_wait}; emulator selects "
             f"overrunning their timeout in it (t0, t1, timeout, own run-queue ms, readable): "
             f"{held[:3]}")
    return line


def main() -> None:
    busy_n, runs, tag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    extra = sys.argv[4].replace("\\n", "\n") + "\n" if len(sys.argv) > 4 else ""
    root = Path("/tmp/ptylate") / tag
    root.mkdir(parents=True, exist_ok=True)
    walk = shortened_walk(root / "walk.csv")
    config = root / "trial.toml"
    config.write_text(FOOT + SHARED_MACHINE_SAFETY + extra)
    nice = os.environ.get("BUSY_NICE", "0")
    busy = [subprocess.Popen(["nice", "-n", nice, "python3", "-c", "while True: pass"])
            for _ in range(busy_n)]
    try:
        time.sleep(2)
        for k in range(runs):
            folder = root / f"run{k}"
            subprocess.run(["rm", "-rf", str(folder)], check=True)
            folder.mkdir()
            print(f"run {k} {one_run(folder, walk, config)}", flush=True)
    finally:
        for b in busy:
            b.kill()


if __name__ == "__main__":
    main()
