"""Every ~1 ms until the processes end: each thread's state, CPU and wait channel of the
given processes, and every kernel worker's state and run-queue wait, as JSON lines
(changes only): ``python sampler.py OUT.jsonl PID...``."""

import json
import os
import sys
import time


def stat_fields(path: str) -> list[str]:
    with open(path) as handle:
        text = handle.read()
    return text[text.rindex(")") + 2:].split()


def main() -> None:
    out = open(sys.argv[1], "w")  # noqa: SIM115  (the process ends with it)
    pids = [int(p) for p in sys.argv[2:]]
    last: dict[str, tuple] = {}
    not_workers: set[int] = set()
    worker_waits: dict[str, int] = {}
    previous = time.monotonic()
    while True:
        now = time.monotonic()
        alive = False
        for pid in pids:
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            alive = True
            for tid in tids:
                try:
                    fields = stat_fields(f"/proc/{pid}/task/{tid}/stat")
                    with open(f"/proc/{pid}/task/{tid}/wchan") as handle:
                        wchan = handle.read()
                except OSError:
                    continue
                key = (fields[0], int(fields[36]), wchan)
                if last.get(tid) != key:
                    last[tid] = key
                    out.write(json.dumps({"t": now, "pid": pid, "tid": int(tid),
                                          "state": key[0], "cpu": key[1],
                                          "wchan": wchan}) + "\n")
        if not alive:
            break
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in not_workers:
                continue
            try:
                with open(f"/proc/{entry}/comm") as handle:
                    comm = handle.read().strip()
                if not comm.startswith("kworker"):
                    not_workers.add(int(entry))
                    continue
                fields = stat_fields(f"/proc/{entry}/stat")
                with open(f"/proc/{entry}/schedstat") as handle:
                    waited = int(handle.read().split()[1])
            except OSError:
                continue
            before = worker_waits.get(entry, waited)
            worker_waits[entry] = waited
            key = (fields[0], int(fields[36]), comm)
            if last.get("k" + entry) != key or waited - before > 500_000:
                last["k" + entry] = key
                out.write(json.dumps({"t": now, "kworker": int(entry), "comm": comm,
                                      "state": key[0], "cpu": key[1],
                                      "rq_ms": round((waited - before) / 1e6, 2)}) + "\n")
        if now - previous > 0.02:
            out.write(json.dumps({"t": now, "sampler_gap_ms": round((now - previous) * 1e3, 1)})
                      + "\n")
        previous = now
        time.sleep(0.001)
    out.close()


if __name__ == "__main__":
    main()
