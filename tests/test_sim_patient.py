"""Patient profiles: the shipped ones load, a bad value is refused naming the field."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from controller.resources import available, resolve
from controller.validation import ConfigError
from sim.patient import PatientProfile, load_patient

SHIPPED = ("healthy", "mild", "moderate", "severe")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_load_and_document_themselves(name):
    profile = load_patient(name)
    assert profile.description
    text = resolve("patients", name).read_text()
    assert text.startswith("#"), "each profile opens with comments saying what it is"


def test_shipped_profiles_are_listed():
    assert set(SHIPPED) <= set(available("patients"))


def test_weaker_profiles_are_weaker():
    strength = [load_patient(n).ta_strength_fraction for n in SHIPPED]
    assert strength == sorted(strength, reverse=True)


def _write_variant(tmp_path: Path, **changes: object) -> Path:
    data = tomllib.loads(resolve("patients", "severe").read_text())
    data.update(changes)
    lines = [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"'
             for k, v in data.items()]
    path = tmp_path / "variant.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_out_of_range_value_names_the_field_and_range(tmp_path):
    path = _write_variant(tmp_path, ta_strength_fraction=1.5)
    with pytest.raises(ConfigError) as info:
        load_patient(str(path))
    assert len(info.value.problems) == 1
    problem = info.value.problems[0]
    assert problem.startswith("ta_strength_fraction")
    assert "1.5" in problem and "<= 1.0" in problem


def test_saturation_below_threshold_is_refused(tmp_path):
    path = _write_variant(tmp_path, recruitment_saturation_uc=5.0)
    with pytest.raises(ConfigError) as info:
        load_patient(str(path))
    assert info.value.problems[0].startswith("recruitment_saturation_uc")
    assert "recruitment_threshold_uc" in info.value.problems[0]


def test_misspelt_field_is_refused(tmp_path):
    path = _write_variant(tmp_path, cadense_steps_per_min=100.0)
    with pytest.raises(ConfigError) as info:
        load_patient(str(path))
    assert "cadense_steps_per_min: unknown field" in info.value.problems[0]


def test_unknown_profile_name_lists_the_available_ones():
    with pytest.raises(ConfigError, match="severe"):
        load_patient("sevre")


def test_every_numeric_field_is_bounded_and_carries_a_unit():
    suffixes = ("_per_min", "_cv", "_fraction", "_rad_s", "_kg", "_bw", "_nm", "_uc", "_hz",
                "_ms", "_kg_m2", "_m", "_per_rad", "_deg", "_mm")
    for name, field in PatientProfile.model_fields.items():
        if name == "description":
            continue
        assert name.endswith(suffixes), name
        kinds = {type(m).__name__ for m in field.metadata}
        assert {"Ge", "Le"} <= kinds, name
