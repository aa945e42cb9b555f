"""A recorded walk through ``fes run`` into openEMSstim's own firmware (both versions).

``fes run --sensors replay:CSV --stimulator openemsstim:PTY`` plays a Voisard et al. 2023
foot-IMU walk (subject 13, left foot: 10 m, a U-turn, 10 m back; 20 swings) in real
time through the detector, scheduler and watchdog into the firmware on its pty. (Walks
with radio dropouts of 30 ms and more, such as subject 7's, end in the watchdog's
sensor timeout, as a live sensor that lost them would.) The
firmware's timeline must show one train per commanded train (one per detected swing), each
starting and ending within 10 ms of the firmware's own floor after the command recorded in
``samples.csv``, at the calibrated intensity, with no byte lost, no garbled line, no
crash. Each version runs on its own (the walk takes 27 s): two trials and two firmware
processes at once on a 2-core machine kept ``fes run`` off the CPU past its heartbeat.

On a loaded machine the firmware's process itself can be kept off the CPU (a real board
never is): a train then starts or ends late, or an echo comes more than the driver's
300 ms after it was due and the link is declared lost. The harness logs the firmware
process's waits for a CPU (``FirmwareProcess.waits``, the kernel's count); a walk is run
again only when those waits, with ``fes run``'s own (``WalkRun.waits``), account for
every late train and such a silence (``starved_board_explains``), never for a reply
that no wait for a CPU delayed (a late product: the last test).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.shared_machine import (
    LATE_RUNS,
    SHARED_MACHINE_SAFETY,
    late_product,
    rerun_after_heartbeat_faults,
    starved_board_explains,
)
from helpers.walks import FOOT, OPENEMS_RISE, WALK, shortened_walk

from controller.bench.openems import Floors, harness_settings
from controller.bench.openems_harness import (
    VERSIONS,
    FirmwareProcess,
    SerialRow,
    connected_at_zero,
)
from controller.bench.openems_walk import WalkRun, replay_walk, settings_file
from hw.openems.driver import ECHO_TIMEOUT_S
from hw.openems.firmware import ECHO_PREFIX
from hw.openems.intensity import wiper
from hw.runqueue import paused_event

SWINGS = 20
SETTINGS = harness_settings()
#: How far past the firmware's own floor a train may start or end.
TOLERANCE_MS = 10.0


def bounds_ms(floors: Floors, trains: int) -> tuple[list[float], float]:
    """Each train's latest onset after its command, and the latest offset (ms)."""
    # the first start after connecting also sets the on-time (a longer line)
    onsets = [min(floors.onset_t_ms) + TOLERANCE_MS] + [min(floors.onset_ms) + TOLERANCE_MS] * (
        trains - 1)
    return onsets, min(floors.off_ms) + TOLERANCE_MS


def late_replies(run: WalkRun, floors: Floors) -> list[tuple[str, float, float, float]]:
    """What the firmware did too late (``starved_board_explains``'s terms): trains that
    started or ended past their bounds, and an echo the driver gave up waiting for (its
    window from when it was due to when the firmware printed it; never printed: no
    bound is known, so nothing can account for it)."""
    late = []
    onset_bounds, offset_bound = bounds_ms(floors, len(run.commanded))
    for k, (commanded, train, bound) in enumerate(
            zip(run.commanded, run.delivered, onset_bounds, strict=False)):
        for what, start, end, limit in (("onset", commanded.start_s, train.on_s, bound),
                                        ("offset", commanded.end_s, train.zero_s, offset_bound)):
            if 1e3 * (end - start) > limit:
                late.append((f"train {k + 1}'s {what}", start, end,
                             end - start - limit / 1e3))
    fault = run.summary.get("board", {}).get("fault") or ""
    silent = re.match(r"no echo of '(.*)' from the board", fault)
    if silent:
        since = run.summary["board"]["fault_since_monotonic_s"]
        echoed = [row.t_s for row in run.serial if row.kind == "tx_line" and row.t_s > since
                  and row.text.replace("\\t", "\t") == ECHO_PREFIX + silent[1]]
        end = echoed[0] if echoed else float("inf")
        late.append((f"the echo of {silent[1]!r}", since, end, end - since - ECHO_TIMEOUT_S))
    return late


def walk_through(program: Path, tmp_path: Path, walk: Path, config: Path,
                 floors: Floors) -> WalkRun:
    """``replay_walk`` into one firmware; a run that a stalled machine ended with a
    heartbeat fault, or whose late trains or silence the firmware process's own waits
    for a CPU account for, is run again (``rerun_after_heartbeat_faults``)."""

    def attempt(k: int) -> tuple[int, str, WalkRun]:
        run = replay_walk(program, tmp_path / f"attempt{k}", walk, config, SETTINGS)
        return run.code, run.stderr, run

    return rerun_after_heartbeat_faults(attempt, board_late=lambda r: starved(r, floors))[2]


def starved(run: WalkRun, floors: Floors) -> str:
    """Text when the waits for a CPU account for every late reply (run again)."""
    late = late_replies(run, floors)
    return starved_board_explains(late, run.waits) if late else ""


@pytest.mark.skipif(not WALK.is_file(), reason="the shared Voisard et al. data is not here")
@pytest.mark.parametrize("version", VERSIONS)
def test_a_replayed_walk_is_delivered_swing_by_swing(openems_programs, openems_floors,
                                                      tmp_path, version):
    walk = shortened_walk(tmp_path / "walk.csv")
    config = tmp_path / "trial.toml"
    config.write_text(FOOT + SHARED_MACHINE_SAFETY + OPENEMS_RISE)
    floors = openems_floors[version]
    run = walk_through(openems_programs[version], tmp_path, walk, config, floors)
    full = wiper(SETTINGS.calibration.intensity(35.0))
    assert run.code == 0, run.stderr
    link = run.summary["board"]["link"]
    assert run.summary["board"]["fault"] is None and link["garbled_echoes"] == 0
    assert link["echoes"] == link["lines_sent"]
    assert run.lost_bytes == 0 and run.garbled_lines == 0 and not run.crashed
    assert len(run.commanded) >= SWINGS
    assert len(run.delivered) == len(run.commanded)
    onset_bounds, offset_bound = bounds_ms(floors, len(run.commanded))
    onsets, offsets = run.latencies_ms()
    for onset, offset, bound, commanded, train in zip(
            onsets, offsets, onset_bounds, run.commanded, run.delivered, strict=True):
        assert 0.0 < onset <= bound, onsets
        assert 0.0 < offset <= offset_bound, offsets
        assert wiper(commanded.intensity) == full and full in train.wipers
    # Every train starts at the unit's lowest output (3.87 uC), what the watchdog
    # delivered and recorded: the ramp's first level the unit gives (17.37 mA, 5.21 uC
    # from off) clamped to the 4 uC a command may rise at 400 uC/s. (Through fes run the
    # watchdog checked the commanded 17.5 mA until the split back end exposed the
    # driver's mapping: no clamp, a start at intensity 13.)
    lowest = SETTINGS.calibration.output_ma(1)
    clamps = [i for i in run.summary["watchdog"]["interventions"]
              if i["rule"] == "max_charge_rise_uc_per_s" and i["channel"] == 0]
    assert [i["delivered"] for i in clamps] == [f"on {lowest:.4g} mA 300 us 40 Hz"] * len(
        run.delivered)
    assert [train.wipers[0] for train in run.delivered] == [wiper(1)] * len(run.delivered)
    assert run.connected_at_zero == []
    # The recording paces the loop: its lateness is not measured, and the summary says
    # so rather than reporting zeros; the host's own latency is measured.
    timing = run.summary["timing"]
    assert timing["clock"] == "replay" and timing["misses"] is None
    assert set(timing["lateness_us"].values()) == {None}
    assert timing["not_measured"].startswith("the replayed recording paces the loop")
    assert timing["latency_us"]["median"] > 0.0


@pytest.mark.skipif(not WALK.is_file(), reason="the shared Voisard et al. data is not here")
def test_a_trial_stalled_past_the_on_time_reports_what_was_not_delivered(openems_programs,
                                                                          tmp_path):
    """``fes run`` stopped (SIGSTOP) during a train for hold_ms + 300 ms: the board ends
    the train by itself; resumed, the trial ends with the stimulation the board did not
    deliver in its summary, and the pads were never connected at no output."""
    walk = shortened_walk(tmp_path / "walk.csv")
    config = tmp_path / "trial.toml"
    config.write_text(FOOT + SHARED_MACHINE_SAFETY + OPENEMS_RISE)
    firmware = FirmwareProcess(openems_programs["aa7f198"], tmp_path)
    run = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "run", "--no-status", "--duration-s", "6",
         "--sensors", f"replay:{walk}", "--stimulator", f"openemsstim:{firmware.path}",
         "--stimulator-settings", str(settings_file(SETTINGS, tmp_path)),
         "--config", str(config),
         "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60.0
        while not any(c.stimulating for c in firmware.timeline()):
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.01)
        time.sleep(0.1)
        run.send_signal(signal.SIGSTOP)
        time.sleep(SETTINGS.hold_ms / 1000.0 + 0.3)
        run.send_signal(signal.SIGCONT)
        _, err = run.communicate(timeout=60.0)
    finally:
        if run.poll() is None:
            run.kill()
        firmware.stop()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert run.returncode != 0, err
    assert "not delivered" in summary["board"]["fault"], summary["board"]
    assert connected_at_zero(firmware.timeline(), 0) == []


@pytest.mark.skipif(not WALK.is_file(), reason="the shared Voisard et al. data is not here")
def test_a_late_product_is_not_taken_for_a_starved_machine(openems_programs, openems_floors,
                                                           tmp_path, monkeypatch):
    """Every line the driver writes made to reach the port 60 ms late (a slow link,
    ``late_product``): its trains start and end past their bounds, and no wait for a CPU
    accounts for them, so the walk would not be run again."""
    walk = shortened_walk(tmp_path / "walk.csv")
    config = tmp_path / "trial.toml"
    config.write_text(FOOT + SHARED_MACHINE_SAFETY + OPENEMS_RISE)
    for name, value in late_product("openemsstim", 0.06).items():
        monkeypatch.setenv(name, value)
    floors = openems_floors["aa7f198"]

    def attempt(k: int) -> tuple[int, str, WalkRun]:
        run = replay_walk(openems_programs["aa7f198"], tmp_path / f"late{k}", walk, config,
                          SETTINGS, ["--duration-s", "8"])
        return run.code, run.stderr, run

    run = rerun_after_heartbeat_faults(attempt, runs=LATE_RUNS)[2]
    late = late_replies(run, floors)
    assert len(late) >= 4 and len(run.delivered) >= 2, (late, run.stderr)
    assert starved(run, floors) == "", late


def test_a_silence_is_set_beside_the_firmwares_waits_from_when_its_echo_was_due():
    """The driver's echo timeout (``fes run`` ended, link lost): the echo the firmware
    printed 450 ms after it was due is 150 ms over the driver's 300 ms; a firmware that
    waited 160 ms for a CPU meanwhile accounts for it, one that waited 100 ms does not,
    and an echo never printed is accounted for by nothing."""
    floors = Floors(*([[1.0]] * 11))
    fault = "no echo of 'C0I100T1000G' from the board 300 ms after it was due: unplugged"
    echo = SerialRow(10.45, "tx_line", "\\tUSB: received command: C0I100T1000G")

    def run(waited_s: float, serial: list[SerialRow]) -> WalkRun:
        return WalkRun("aa7f198", 5, fault, {"board": {
            "fault": fault, "fault_since_monotonic_s": 10.0, "fault_monotonic_s": 10.31}},
            [], [], 0, False, 0, [], [paused_event(10.0, 10.45, waited_s)], serial)

    late = late_replies(run(0.16, [echo]), floors)
    assert [(w, s, e) for w, s, e, _ in late] == [("the echo of 'C0I100T1000G'", 10.0, 10.45)]
    assert late[0][3] == pytest.approx(0.15)
    assert "the echo" in starved(run(0.16, [echo]), floors)
    assert starved(run(0.10, [echo]), floors) == ""
    assert starved(run(0.45, []), floors) == ""
