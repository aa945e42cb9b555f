"""The compiled simulated loop is the Python loop, byte for byte, only faster.

``fes sim`` runs ``controller.trial.compiled_loop`` on the virtual clock; a live trial runs
``controller.loop.run_loop``. Both drive the same stage objects, so every file of a
trial must be identical whichever ran it: samples (sensors, phase, delivered commands,
the limb's truth), events, and the summary with the watchdog's interventions. The
configs cover both detectors' inputs, both modes of ramp, predicted triggers, two
channels, the timed modes, clamps, and faults that latch the watchdog.
"""

import contextlib
import csv
import json
import os
import signal
import threading

import pytest

from controller.config import load_config
from controller.trial.simulated import run_simulated_trial

#: Safety limits a case sets after the config check, as a watchdog stricter than the
#: config would be.
UNCHECKED = "unchecked safety"
CASES = {
    "default": {},
    # A watchdog stricter than the config was checked against (applied after the check):
    # every onset of the pulse-width ramp rises too fast in charge and is clamped.
    "odfs_asymmetric_clamped": {"sim": {"patient": "fatigue_prone"}, "stim": {"preset": "odfs"},
                                UNCHECKED: {"max_charge_rise_uc_per_s": 60.0}},
    "two_channels_predicted": {"stim": {"preset": "peroneal_calf"}, "sim": {"patient": "mild"}},
    "heel_switch_walkaide": {"stim": {"preset": "walkaide"}, "detector": {"sensor": "heel"}},
    "fused_force_sensor_fault": {
        "detector": {"sensor": "fused", "heel_input": "force"},
        "sim": {"patient": "heat_sensitive"},
    },
    "duty_cycle_fault_latches": {"safety": {"max_duty_cycle": 0.2}, "loop": {"duration_s": 25.0}},
    "training_mode_1khz": {"stim": {"mode": "training"}, "loop": {"sample_rate_hz": 1000.0}},
    "stimulation_off": {"stim": {"enabled": False}, "sim": {"patient": "severe"}},
}
WALL_CLOCK_FIGURES = ("real_time_factor",)


def _trial(tmp_path, name, overrides, compiled):
    layers = {**overrides, "loop": {"duration_s": 12.0, **overrides.get("loop", {})}}
    unchecked = layers.pop(UNCHECKED, {})
    config = load_config(overrides=layers)
    config = config.model_copy(update={"safety": config.safety.model_copy(update=unchecked)})
    out = tmp_path / ("compiled" if compiled else "python") / name
    summary = run_simulated_trial(config, out, compiled=compiled)
    return summary, out


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_trial_is_the_python_trial_byte_for_byte(tmp_path, name):
    fast, fast_dir = _trial(tmp_path, name, CASES[name], compiled=True)
    slow, slow_dir = _trial(tmp_path, name, CASES[name], compiled=False)
    for file in ("samples.csv", "events.csv", "config.json"):
        assert (fast_dir / file).read_bytes() == (slow_dir / file).read_bytes(), file
    for summary in (fast, slow):
        for key in WALL_CLOCK_FIGURES:
            summary.pop(key)
        summary["timing"].pop("warm_up_ms")
    assert json.dumps(fast, sort_keys=True) == json.dumps(slow, sort_keys=True)


def test_the_fault_cases_do_exercise_the_watchdog(tmp_path):
    """Guards the comparison above: it must include clamps and latched faults."""
    clamped, _ = _trial(tmp_path, "odfs", CASES["odfs_asymmetric_clamped"], compiled=True)
    assert clamped["watchdog"]["clamped_commands"] > 0
    latched, _ = _trial(tmp_path, "duty", CASES["duty_cycle_fault_latches"], compiled=True)
    assert latched["watchdog"]["faults"] == 1
    assert latched["watchdog"]["interventions"][0]["rule"] == "max_duty_cycle"


def test_an_estop_signal_during_a_compiled_trial_turns_the_output_off(tmp_path, monkeypatch):
    """SIGUSR1 is handled between compiled blocks: from the e-stop on, nothing is on."""
    import controller.trial.compiled_loop as compiled

    installed = compiled.estop_signals

    @contextlib.contextmanager
    def estop_soon(watchdog):
        with installed(watchdog):
            timer = threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGUSR1))
            timer.start()
            try:
                yield
            finally:
                timer.cancel()

    monkeypatch.setattr(compiled, "estop_signals", estop_soon)
    config = load_config(overrides={"loop": {"duration_s": 300.0}})
    summary = run_simulated_trial(config, tmp_path)
    fault = summary["watchdog"]["interventions"][0]
    assert fault["rule"] == "emergency_stop"
    assert fault["requested"] == "e-stop (SIGUSR1)"
    with (tmp_path / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    after = [row for row in rows if float(row["time_s"]) > fault["t_s"]]
    assert after, "the trial went on after the e-stop"
    assert sum(float(row["stim_on"]) for row in rows) > 0  # it stimulated before
    assert all(row["stim_on"] == "0" and row["pulses"] == "0" for row in after)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_a_runaway_schedule_reaches_no_output_on_either_path(tmp_path, monkeypatch, compiled):
    """A scheduler asking for 95 mA (past config validation, which would refuse it): the
    delivered amplitude never exceeds the 60 mA limit and, once it is asked for, every
    output stays off."""
    from controller.stim import envelope, scheduler

    made = scheduler.make_params

    def runaway(config):
        params = made(config)
        params[1, envelope.P_AMPLITUDE_MA] = 95.0
        return params

    monkeypatch.setattr(scheduler, "make_params", runaway)
    config = load_config(overrides={"loop": {"duration_s": 6.0}})
    summary = run_simulated_trial(config, tmp_path, compiled=compiled)
    watchdog = summary["watchdog"]
    assert watchdog["faults"] == 1
    fault = next(i for i in watchdog["interventions"] if i["delivered"] == "all off")
    assert fault["rule"] == "max_amplitude_ma"
    with (tmp_path / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert max(float(row["amplitude_ma"]) for row in rows) <= config.safety.max_amplitude_ma
    after = [row for row in rows if float(row["time_s"]) >= fault["t_s"]]
    assert after and all(row["stim_on"] == "0" for row in after)
    assert all(row["pulses"] == "0" for row in after[1:])


def test_x_real_time_counts_the_loop_not_the_stop_after_it(tmp_path, monkeypatch):
    """``fes sim`` prints the trial's x real time (``real_time_factor``): simulated time
    over the loop's wall time, compilation excluded. A first run on one CPU compiles the
    watchdog's ``stop_all`` kernel only when the trial calls it, after its last block
    (66-160 ms in a 60 s trial's loop of some 22 ms: ``725x`` where a second run printed
    ``2700x``). Here that stop takes 100 s of a fake clock, which nothing else advances
    but by 1 ms a reading: the figure must not see it."""
    from controller.safety import Watchdog
    from controller.trial import compiled_loop

    clock = {"now": 0.0}

    def perf_counter() -> float:
        clock["now"] += 0.001
        return clock["now"]

    stop_all = Watchdog.stop_all

    def slow_stop_all(self: Watchdog) -> None:
        clock["now"] += 100.0
        stop_all(self)

    monkeypatch.setattr(compiled_loop.time, "perf_counter", perf_counter)
    monkeypatch.setattr(Watchdog, "stop_all", slow_stop_all)
    config = load_config(overrides={"loop": {"duration_s": 2.0}})
    summary = run_simulated_trial(config, tmp_path, compiled=True)
    assert summary["stopped_by"] == "duration"
    assert summary["real_time_factor"] > 1.0  # 2 s in a few ms; with the stop, 0.02
