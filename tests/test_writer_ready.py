"""The log writer is ready before a paced trial's first sample (``controller.trial.writer``).

Whatever its sinks do only the first time (numba compiling or loading a kernel, a
module imported, a library's first call) is done before the trial's clock starts, and
the trial waits for the writer to say so, for a bounded time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers.live import with_emulator

from controller.cli import main
from controller.trial import writer
from controller.trial.files import CsvStream

#: A paced ``fes sim --realtime`` of 3 s at 1 kHz whose rows are a ring of 256 (a quarter
#: of a second): the log writer has that long, once the loop runs, before rows it has not
#: written are overwritten. From sample 1500 on, the limb's first truth column reaches
#: the files as an infinity: a cell the CSV renderer leaves to Python (as a lateness of a
#: second or more would be). Its folder is argv[1], its config argv[2].
SMALL_RING = textwrap.dedent(
    """
    import sys
    import numpy as np
    from controller.cli import main
    from controller.trial import streams, window
    window.WINDOW_ROWS = 256
    rows = streams.TruthRows.rows

    def infinite_from_1500(self, start, stop):
        block = rows(self, start, stop)
        if stop > 1500:
            column = np.array(block[self.columns[0]])
            column[max(0, 1500 - start):] = np.inf
            block[self.columns[0]] = column
        return block

    streams.TruthRows.rows = infinite_from_1500
    sys.exit(main(["sim", "--realtime", "--duration-s", "3", "--out", sys.argv[1],
                   "--config", sys.argv[2]]))
    """
)


def test_a_first_runs_writer_loses_no_row_of_a_small_ring(tmp_path: Path) -> None:
    # A first run after an install (numba's cache empty): every kernel the log writer
    # uses is compiled before the loop starts, not on its first rows while the loop
    # runs (it compiled the pulse times of the scores there, some 0.5 s, and a second
    # renderer at the first cell Python formats: rows lost, the trial's output failed).
    config = tmp_path / "khz.toml"
    config.write_text("[loop]\nsample_rate_hz = 1000\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "empty-numba-cache")}
    folder = tmp_path / "trial"
    done = subprocess.run([sys.executable, "-c", SMALL_RING, str(folder), str(config)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (folder / "samples.csv").read_text().splitlines()
    truth = lines[0].split(",").index("ankle_angle_deg")  # the limb's first truth column
    rows = [line.split(",") for line in lines[1:]]
    assert [row[0] for row in rows] == [f"{k / 1000:.6f}" for k in range(3000)]
    assert {row[truth] for row in rows[1500:]} == {"inf"}
    assert (folder / "summary.json").exists()


@pytest.mark.parametrize("command", ["sim", "run"])
def test_a_writer_not_ready_in_time_ends_the_trial_before_its_first_sample(
        tmp_path: Path, monkeypatch, capsys, command: str) -> None:
    # The writer's warm-up hangs (here: its samples.csv stream's, in the writer
    # process only): fes sim --realtime and fes run wait READY_TIMEOUT_S for it, then
    # say why, exit 2 as for any output that cannot be written, with no traceback;
    # no trial is left behind, and fes run never said HELLO to the board.
    trial_process = os.getpid()
    warm_up = CsvStream.warm_up

    def hangs_in_the_writer(self: CsvStream) -> None:
        if os.getpid() != trial_process:
            time.sleep(120)
        warm_up(self)

    monkeypatch.setattr(CsvStream, "warm_up", hangs_in_the_writer)
    monkeypatch.setattr(writer, "READY_TIMEOUT_S", 0.5)
    folder = tmp_path / "trial"
    trial = ["--duration-s", "2", "--out", str(folder)]
    if command == "sim":
        code, board_log = main(["sim", "--realtime", *trial]), ""
    else:
        code, board_log = with_emulator(lambda port: main(["run", "--port", port, *trial]))
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"fes: cannot write {folder / 'samples.csv'}: its log writer was not ready " \
           "within 0.5 s" in err
    assert "nothing was sampled or stimulated" in err
    assert "Traceback" not in err
    assert not folder.exists()
    events = [json.loads(line)["event"] for line in board_log.splitlines()]
    assert "hello" not in events and "stream_start" not in events
