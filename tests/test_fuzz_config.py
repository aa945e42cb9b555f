"""Fuzzing trial configs: generated TOML files, most of them close to valid, into
``fes check-config`` and (when accepted) a short ``fes sim``.

The generator walks the trial config's own models (``TrialConfig``), so every field any
package adds is fuzzed without a change here: values near and beyond each field's
bounds, of the wrong type, non-finite, huge, strings with control characters, unknown
keys, tables where values belong and the reverse; then the TOML text is sometimes
mutated byte by byte. Properties: exit 0 or 2, never a traceback; a config accepted is
within every limit the safety layer enforces, re-derived here with its own arithmetic;
an accepted config simulates (exit 0), unless it asks for what only a board can run (a
foot gyroscope; another muscle's channel on the simulated tibialis anterior's output):
then ``fes sim`` refuses it, exit 2, naming the field. The default run is a fixed
(derandomized) sample of 150 configs, a few seconds; ``-m slow`` draws 10,000 afresh.
"""

from __future__ import annotations

import math
import typing
from pathlib import Path
from typing import Any

import pytest
from helpers.fuzzing import check_outcome, fes, scratch, toml_document, weighted
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from controller.config import TrialConfig, load_config
from controller.resources import available
from controller.safety import limits as absolute

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {}
WRONG_TYPE = st.one_of(
    st.text(max_size=20), st.booleans(), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.integers(-(2**70), 2**70), st.sampled_from([math.nan, math.inf, -math.inf, 1e308]),
)
NAMES = st.one_of(
    st.sampled_from([*available("patients"), *available("stim"), "nobody", "", ".", "..",
                     "/", "a/b", "../../etc/passwd", "a" * 300, "x.toml", "nul\x00byte"]),
    st.text(max_size=30),
)


def _bounds(field: Any) -> tuple[float, float]:
    low, high = -1e6, 1e6
    for meta in field.metadata:
        for attr in ("ge", "gt"):
            if getattr(meta, attr, None) is not None:
                low = float(getattr(meta, attr))
        for attr in ("le", "lt"):
            if getattr(meta, attr, None) is not None:
                high = float(getattr(meta, attr))
    return low, high


def value_of(field: Any) -> st.SearchStrategy[Any]:
    """Values for one field: mostly of its type near its range, sometimes anything."""
    ann = field.annotation
    if typing.get_origin(ann) is typing.Literal:
        good = st.sampled_from(typing.get_args(ann))
    elif ann is bool:
        good = st.booleans()
    elif ann is str:
        good = NAMES
    elif ann in (int, float):
        low, high = _bounds(field)
        span = max(high - low, 1.0)
        near = st.floats(low - 0.1 * span, high + 0.1 * span, allow_nan=False)
        edges = st.sampled_from([low, high, low - 1e-9 * span, high + 1e-9 * span])
        good = weighted((2, near), (1, edges))
        if ann is int:
            good = good.map(lambda v: int(v))
    else:  # a mapping of named channel tables (stim.channels)
        good = st.dictionaries(st.text(min_size=1, max_size=8), config_table(
            typing.get_args(ann)[1]), max_size=2)
    return weighted((6, good), (1, WRONG_TYPE))


def config_table(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """A table for ``model``: a random subset of its fields, each maybe a sub-table,
    sometimes an unknown key."""
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            parts[name] = weighted((4, config_table(ann)), (1, WRONG_TYPE))
        else:
            parts[name] = value_of(field)
    return st.lists(st.sampled_from(sorted(parts)), max_size=6, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({k: parts[k] for k in keys})
    ).flatmap(lambda table: weighted(
        (3, st.just(table)),
        (1, st.builds(lambda extra: table | extra, st.dictionaries(
            st.text(min_size=1, max_size=8), st.integers(), max_size=1))),
    ))


#: A whole config: up to four sections of the trial config, each a generated table.
CONFIG = config_table(TrialConfig)


@st.composite
def config_text(draw: st.DrawFn) -> bytes:
    """A generated config as TOML, sometimes mutated byte by byte."""
    text = toml_document(draw(CONFIG)).encode()
    if draw(st.integers(0, 4)) == 0:
        data = bytearray(text)
        for _ in range(draw(st.integers(1, 5))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        text = bytes(data)
    return text


def within_every_limit(path: Path) -> None:
    """A config ``check-config`` accepted, checked against the safety layer's limits with
    this test's own arithmetic (not the code under test's)."""
    config = load_config(path)
    lim = config.safety
    for name in type(lim).model_fields:
        cap = getattr(absolute, f"ABSOLUTE_{name.upper()}", None)
        if cap is not None:
            assert getattr(lim, name) <= cap, name
    if not config.stim.enabled:
        return
    for _, ch in config.stim.active_channels():
        a1, w1, f, r = ch.amplitude_ma, ch.pulse_width_us, ch.frequency_hz, ch.anodic_width_ratio
        a2, w2 = a1 / r, w1 * r
        q = max(a1 * w1, a2 * w2) / 1000.0
        assert max(a1, a2) <= lim.max_amplitude_ma
        assert w1 <= lim.max_pulse_width_us and f <= lim.max_frequency_hz
        assert q <= lim.max_charge_per_phase_uc * (1 + 1e-12)
        rms_ma = math.sqrt((a1 * a1 * w1 + a2 * a2 * w2) * 1e-6 * f)
        assert rms_ma / lim.electrode_area_cm2 <= lim.max_rms_current_density_ma_per_cm2 * (
            1 + 1e-12)
        if q > 0:
            assert 2 * math.log10(q) - math.log10(lim.electrode_area_cm2) <= (
                lim.max_shannon_k + 1e-12)
        assert ch.ramp_up_ms > 0 and q / (ch.ramp_up_ms / 1000.0) <= (
            lim.max_charge_rise_uc_per_s * (1 + 1e-12))
        assert ch.ramp_down_ms <= lim.max_unknown_phase_ms


def not_simulated(path: Path) -> list[str]:
    """The fields of an accepted config that ``fes sim`` must refuse, by this test's own
    reading: the simulated patient wears one gyroscope, on the shank, so the foot's
    detector has nothing to read unless the heel sensor alone detects; and output 0 moves
    the simulated tibialis anterior, which only the peroneal channel may drive."""
    config = load_config(path)
    refused = []
    if config.detector.placement == "foot" and config.detector.sensor != "heel":
        refused.append("detector.placement")
    if config.stim.enabled:
        refused += [f"stim.channels.{name}.channel" for name, ch in config.stim.active_channels()
                    if name != "peroneal" and ch.channel == 0]
    return refused


def check_config_file(root: Path, data: bytes, simulate: bool) -> int:
    """``fes check-config`` on ``data``; if accepted, its limits and (``simulate``) a
    0.5 s ``fes sim``: it runs, or it refuses exactly what ``not_simulated`` names.
    Returns the exit code of check-config."""
    with scratch(root, "case") as folder:
        path = folder / "config.toml"
        path.write_bytes(data)
        code, err = fes(["check-config", str(path)], folder)
        check_outcome(code, err, frozenset({0, 2}))
        if code == 0:
            within_every_limit(path)
            if simulate:
                code_sim, err_sim = fes(["sim", "--config", str(path), "--duration-s", "0.5",
                                         "--out", str(folder / "run")], folder)
                refused = not_simulated(path)
                check_outcome(code_sim, err_sim, frozenset({2} if refused else {0}))
                assert all(field in err_sim for field in refused), (refused, err_sim)
        return code


def test_generated_configs_are_accepted_within_limits_or_named(tmp_path):
    codes: list[int] = []

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(config_text(), st.integers(0, 9))
    # what the 10,000-config run found (7 Dec 2026): valid for a board, refused by fes sim
    @example(b'[detector]\nplacement = "foot"\n', 0)
    @example(b'[stim]\npreset = "peroneal_calf"\n[stim.peroneal]\nchannel = 2\n'
             b'[stim.channels.calf]\nchannel = 0\n', 0)
    def run(data, k):
        codes.append(check_config_file(tmp_path, data, simulate=k == 0))

    run()
    assert codes.count(0) >= 5 and codes.count(2) >= 5  # both sides were reached


@pytest.mark.slow
def test_10000_generated_configs(tmp_path):
    codes: list[int] = []

    @settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(config_text(), st.integers(0, 9))
    def run(data, k):
        codes.append(check_config_file(tmp_path, data, simulate=k == 0))

    run()
    print(f"\nconfig fuzz: cases tried {len(codes)} (accepted {codes.count(0)}, refused "
          f"{codes.count(2)}), failures 0")
    assert len(codes) >= 10_000
