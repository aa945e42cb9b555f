"""Patient profiles: the shipped ones load, a bad value is refused naming the field."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from controller.resources import available, resolve
from controller.validation import ConfigError
from sim.patient import PatientProfile, load_patient

SHIPPED = (
    "healthy", "mild", "moderate", "severe", "spastic", "fatigue_prone", "heat_sensitive",
)
FOOT_DROP = ("healthy", "mild", "moderate", "severe")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_load_and_document_themselves(name):
    profile = load_patient(name)
    assert profile.description
    text = resolve("patients", name).read_text()
    assert text.startswith("#"), "each profile opens with comments saying what it is"


def test_shipped_profiles_are_listed():
    assert set(SHIPPED) <= set(available("patients"))


def test_weaker_profiles_are_weaker():
    strength = [load_patient(n).ta_strength_fraction for n in FOOT_DROP]
    assert strength == sorted(strength, reverse=True)


def test_only_the_profiles_of_an_effect_have_it():
    profiles = {n: load_patient(n) for n in SHIPPED}
    spastic = [n for n, p in profiles.items() if p.spastic_reflex_gain_nm_s_per_rad > 0.0]
    tiring = [n for n, p in profiles.items() if p.voluntary_fatigue_min_fraction < 1.0]
    warm = [n for n, p in profiles.items() if p.uhthoff_strength_loss_per_c > 0.0]
    stopping = [n for n, p in profiles.items() if p.bout_mean_strides > 0.0]
    assert (spastic, tiring, warm, stopping) == (
        ["spastic"], ["fatigue_prone"], ["heat_sensitive"], ["fatigue_prone"])


def test_healthy_lists_every_parameter_and_the_others_derive_from_it():
    healthy = tomllib.loads(resolve("patients", "healthy").read_text())
    assert "base" not in healthy
    defaults = {n for n, f in PatientProfile.model_fields.items() if not f.is_required()}
    effects = {n for n in defaults if n not in healthy}
    assert set(PatientProfile.model_fields) - effects <= set(healthy)
    for name in SHIPPED[1:]:
        assert "base" in tomllib.loads(resolve("patients", name).read_text()), name


def _write_variant(tmp_path: Path, name: str = "variant", **changes: object) -> Path:
    data = tomllib.loads(resolve("patients", "severe").read_text())
    data.update(changes)
    lines = [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"'
             for k, v in data.items()]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_derived_profile_overrides_only_what_it_lists(tmp_path):
    path = tmp_path / "warm_severe.toml"
    path.write_text('base = "severe"\ncore_temperature_c = 38.0\n'
                    'uhthoff_strength_loss_per_c = 0.4\n')
    derived, severe = load_patient(str(path)), load_patient("severe")
    assert derived.core_temperature_c == 38.0 and derived.uhthoff_strength_loss_per_c == 0.4
    assert derived.model_copy(update={"core_temperature_c": 37.0,
                                      "uhthoff_strength_loss_per_c": 0.0}) == severe


def test_a_base_can_be_a_file_next_to_the_profile(tmp_path):
    _write_variant(tmp_path, "mine", ta_strength_fraction=0.2)
    (tmp_path / "child.toml").write_text('base = "mine.toml"\nhip_compensation_mm = 0.0\n')
    child = load_patient(str(tmp_path / "child.toml"))
    assert child.ta_strength_fraction == 0.2 and child.hip_compensation_mm == 0.0


def test_profiles_that_derive_from_each_other_are_refused(tmp_path):
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    with pytest.raises(ConfigError, match="derive from each other"):
        load_patient(str(tmp_path / "a.toml"))


def test_an_inconsistent_template_is_refused(tmp_path):
    path = _write_variant(tmp_path, stance_knots_fraction=[0.0, 0.5, 0.4])
    with pytest.raises(ConfigError) as info:
        load_patient(str(path))
    assert any(p.startswith("stance_knots_fraction") for p in info.value.problems)


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
                "_ms", "_kg_m2", "_m", "_per_rad", "_deg", "_mm", "_m_s", "_s", "_strides",
                "_unitless", "_n", "_per_s", "_per_s2", "_per_n", "_per_n_s", "_c",
                "_c_per_min", "_per_c", "_sqrt_hz", "_sqrt_s", "_per_swing", "_factor", "_ratio")
    for name, field in PatientProfile.model_fields.items():
        if name == "description":
            continue
        assert name.endswith(suffixes), name
        kinds = {type(m).__name__ for m in field.metadata}
        if field.annotation is list or str(field.annotation).startswith("list"):
            assert {"MinLen", "MaxLen"} <= kinds, name
            (item,) = field.annotation.__args__  # type: ignore[union-attr]
            kinds = {type(m).__name__ for m in item.__metadata__[0].metadata}
        assert {"Ge", "Le"} <= kinds, name


def test_a_profile_missing_fields_without_a_base_is_told_it_may_derive(tmp_path):
    """A user's profile of a few fields (``cadence_steps_per_min = 90``) got 65 lines of
    'required field is missing' and no word that a profile may name a ``base`` and list
    only what differs (docs/simulator.md)."""
    path = tmp_path / "mine.toml"
    path.write_text("cadence_steps_per_min = 90.0\n")
    with pytest.raises(ConfigError) as err:
        load_patient(str(path))
    problems = err.value.problems
    assert any("required field is missing" in p for p in problems)
    assert problems[-1].startswith("base: a profile may start from a shipped one")
    assert "base = \"moderate\"" in problems[-1]
    path.write_text('base = "moderate"\ncadence_steps_per_min = 90.0\n')
    assert load_patient(str(path)).cadence_steps_per_min == 90.0


def test_a_complete_profile_with_a_bad_value_gets_no_base_hint(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('base = "moderate"\ncadence_steps_per_min = -1.0\n')
    with pytest.raises(ConfigError) as err:
        load_patient(str(path))
    assert not any(p.startswith("base:") for p in err.value.problems)
