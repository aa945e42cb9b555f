"""`--require` checks on summary figures: named failures, exit 3; unknown names exit 2."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.cli import main
from controller.trial.figures import flatten
from controller.trial.require import OPERATORS, parse_requirement, parse_requirements
from controller.validation import ConfigError

SUMMARY = {
    "stopped_by": "duration",
    "clearance": {"toe_drag_events": 3, "toe_clearance_min_mm": {"median": 12.5, "p5": None}},
    "detector": None,
    "watchdog": {"interventions": [{"rule": "x"}]},
}


def test_flatten_gives_dotted_names():
    assert flatten(SUMMARY) == {
        "clearance.toe_clearance_min_mm.median": 12.5,
        "clearance.toe_clearance_min_mm.p5": None,
        "clearance.toe_drag_events": 3,
        "detector": None,
        "stopped_by": "duration",
        "watchdog.interventions": '[{"rule": "x"}]',
    }


@pytest.mark.parametrize(
    ("check", "passes"),
    [
        ("clearance.toe_drag_events<=3", True),
        ("clearance.toe_drag_events<3", False),
        ("clearance.toe_drag_events >= 3", True),
        ("clearance.toe_drag_events>3", False),
        ("clearance.toe_drag_events==3", True),
        ("clearance.toe_drag_events!=3", False),
        ("clearance.toe_clearance_min_mm.median>10", True),
        ("stopped_by==duration", True),
        ("stopped_by!=duration", False),
        ("clearance.toe_clearance_min_mm.p5>0", False),  # null: not measured, not passed
    ],
)
def test_checks(check, passes):
    assert (parse_requirement(check).failure(flatten(SUMMARY)) is None) == passes


def test_failure_names_the_check_and_the_value():
    message = parse_requirement("clearance.toe_drag_events<=2").failure(flatten(SUMMARY))
    assert message == "clearance.toe_drag_events<=2 failed: clearance.toe_drag_events = 3"


def test_unknown_figure_is_named_with_close_names():
    with pytest.raises(ConfigError) as err:
        parse_requirement("clearance.toe_drags<=2").failure(flatten(SUMMARY))
    assert "clearance.toe_drags: no such figure" in err.value.problems[0]
    assert "clearance.toe_drag_events" in err.value.problems[0]


def test_malformed_checks_are_all_named():
    with pytest.raises(ConfigError) as err:
        parse_requirements(["a.b=<2", "a.b<x", "ok<=1"])
    assert len(err.value.problems) == 2
    assert "'a.b=<2'" in err.value.problems[0] and "needs a number" in err.value.problems[1]


def test_text_check_against_a_number_is_a_usage_error():
    with pytest.raises(ConfigError, match="not a number"):
        parse_requirement("stopped_by<3").failure(flatten(SUMMARY))


@pytest.fixture(scope="module")
def trial_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("req") / "t"
    assert main(["sim", "--duration-s", "4", "--out", str(out)]) == 0
    return out


def test_sim_exits_3_naming_the_failed_check(trial_dir, capsys):
    summary = json.loads((trial_dir / "summary.json").read_text())
    charge = summary["stim"]["charge_uc_per_stride"]
    args = ["sim", "--duration-s", "4", "--out", str(trial_dir), "--overwrite"]
    assert main([*args, "--require", f"stim.charge_uc_per_stride<={charge}"]) == 0
    capsys.readouterr()
    code = main([*args, "--require", "stopped_by==duration",
                 "--require", f"stim.charge_uc_per_stride<{charge}"])
    assert code == 3
    err = capsys.readouterr().err
    assert f"stim.charge_uc_per_stride<{charge} failed" in err  # as written
    assert "stopped_by" not in err


def test_sim_unknown_figure_exits_2(trial_dir, capsys):
    args = ["sim", "--duration-s", "4", "--out", str(trial_dir), "--overwrite"]
    assert main([*args, "--require", "clearance.drags<=2"]) == 2
    assert "clearance.drags: no such figure" in capsys.readouterr().err


@pytest.mark.parametrize("check", ["clearance.toe_drag_events<=nan",
                                   "clearance.toe_drag_events!=NaN"])
def test_a_check_against_nan_is_a_usage_error(tmp_path, capsys, check):
    """``--require 'clearance.toe_drag_events<=nan'`` ran the trial and failed it (exit 3):
    NaN compares false with everything, so such a check can never be met (or, with !=,
    never fail). It is a malformed check, refused before the trial runs."""
    out = tmp_path / "t"
    assert main(["sim", "--duration-s", "1", "--out", str(out), "--require", check]) == 2
    err = capsys.readouterr().err
    assert f"{check!r}: " in err and "not a number (NaN)" in err
    assert not out.exists()


# A CI job's checks come from its variables (``--require "figure<=$MAX"``): a check is
# read as written, and its messages repeat the bound as written.

NAMES = st.from_regex(r"[a-z_][a-z0-9_.]{0,24}", fullmatch=True)
BOUNDS = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)


@given(name=NAMES, op=st.sampled_from(list(OPERATORS)), bound=BOUNDS)
def test_a_check_is_read_and_named_as_written(name, op, bound):
    """``--require 'x<=1234567'`` failed naming ``x<=1.23457e+06`` (the bound's short
    float form), and a check naming a bound it never had cannot be fixed from the log."""
    check = parse_requirement(f"{name}{op}{bound}")
    assert (check.name, check.op, check.limit) == (name, op, float(bound))
    assert str(check) == f"{name}{op}{bound}"
    figures = {name: float(bound) + 1.0 if float(bound) < 1e15 else -1.0}
    if (message := check.failure(figures)) is not None:
        assert message.startswith(f"{name}{op}{bound} failed: {name} = ")


@given(name=NAMES, op=st.sampled_from(list(OPERATORS)), space=st.sampled_from(["", " "]))
def test_a_check_without_a_bound_names_its_operator(name, op, space):
    """``--require "x<=$MAX"`` with ``MAX`` unset read as ``x < '='``: "< needs a number,
    got '='"; it names the operator written and says the value is missing."""
    text = f"{name}{space}{op}{space}"
    with pytest.raises(ConfigError) as err:
        parse_requirement(text)
    assert err.value.problems == [f"{text!r}: {op} needs a value after it, got none"]
