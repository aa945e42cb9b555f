"""Machine-wide, every ~1 ms for SECONDS: every thread that sits in the kernel waiting for
a tty's flip-buffer work (wait channel ``__flush_work``) longer than 20 ms, and every
kernel worker that waited over 20 ms for a CPU between two samples, as JSON lines:
``python flushwaits.py OUT.jsonl SECONDS`` (then a summary on stdout)."""

import contextlib
import json
import os
import sys
import time


def read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def main() -> None:
    path, seconds = sys.argv[1], float(sys.argv[2])
    end = time.monotonic() + seconds
    waiting: dict[str, tuple[float, str]] = {}
    worker_waits: dict[str, int] = {}
    held, workers = [], []
    with open(path, "w") as out:
        while time.monotonic() < end:
            now = time.monotonic()
            seen = set()
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
            for pid in pids:
                with contextlib.suppress(OSError):
                    for tid in os.listdir(f"/proc/{pid}/task"):
                        with contextlib.suppress(OSError):
                            if read(f"/proc/{pid}/task/{tid}/wchan") == "__flush_work":
                                seen.add(tid)
                                if tid not in waiting:
                                    comm = read(f"/proc/{pid}/task/{tid}/comm").strip()
                                    waiting[tid] = (now, comm)
            for tid in [t for t in waiting if t not in seen]:
                since, comm = waiting.pop(tid)
                if now - since > 0.02:
                    event = {"tid": int(tid), "comm": comm, "from": since,
                             "ms": round((now - since) * 1e3, 1)}
                    held.append(event)
                    out.write(json.dumps(event) + "\n")
            for pid in pids:
                with contextlib.suppress(OSError):
                    comm = read(f"/proc/{pid}/comm").strip()
                    if not comm.startswith("kworker"):
                        continue
                    waited = int(read(f"/proc/{pid}/schedstat").split()[1])
                    before = worker_waits.get(pid, waited)
                    worker_waits[pid] = waited
                    if waited - before > 20_000_000:
                        event = {"kworker": comm, "t": now,
                                 "rq_ms": round((waited - before) / 1e6, 1)}
                        workers.append(event)
                        out.write(json.dumps(event) + "\n")
            time.sleep(0.001)
    print(f"in __flush_work over 20 ms: {len(held)}, longest (ms, thread): "
          f"{sorted(((e['ms'], e['comm']) for e in held), reverse=True)[:8]}")
    print(f"kernel workers over 20 ms without a CPU: {len(workers)}, longest: "
          f"{sorted(((e['rq_ms'], e['kworker']) for e in workers), reverse=True)[:8]}")


if __name__ == "__main__":
    main()
