"""Every config field is described, carries its unit in its name and is bounded, and
``configs/default.toml`` is generated from the models.

The models are found in the source (every class deriving from ``ConfigModel``, directly
or through another model), so a new model or field is checked without being listed
here. A number whose name has no unit, or that is not bounded on both sides, must be on
an exception list below with the reason.
"""

from __future__ import annotations

import ast
import importlib
import tomllib
import types
import typing
from pathlib import Path

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from controller.cli import main
from controller.commands.check_config import default_toml
from controller.config import TrialConfig
from controller.explain import allowed, explain
from controller.resources import default_config_path
from controller.validation import ConfigModel

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("controller", "sim", "hw")

#: Endings of a name that carry a physical unit (SI or the clinical one), including the
#: compound ones: ``_ma_per_s`` ends in ``_s``, ``_nm_per_rad`` in ``_rad``.
UNIT_SUFFIXES = (
    "_s", "_ms", "_us", "_min", "_hz", "_ma", "_ua", "_uc", "_n", "_nm", "_kg", "_m", "_mm",
    "_deg", "_rad", "_dps", "_c", "_cm2", "_s2", "_kg_m2", "_mm_per_swing",
)
#: Endings of a name that say the number is dimensionless: a fraction or ratio of two
#: quantities of the same unit, a count of strides, a multiple of body weight (``_bw``),
#: or a model constant without a unit (``_unitless``).
DIMENSIONLESS_SUFFIXES = (
    "_fraction", "_ratio", "_factor", "_cv", "_unitless", "_bw", "_strides",
)

#: Numbers whose name carries no unit, and why.
NO_UNIT = {
    "LoopConfig.cpu_index": "a CPU number (-1: none), not a quantity",
    "LoopConfig.realtime_priority": "a SCHED_FIFO priority level (0: normal scheduling), "
    "not a quantity",
    "SimConfig.seed": "a random seed, not a quantity",
    "EmulatorConfig.seed": "a random seed, not a quantity",
    "FirmwareSettings.declared_sagittal_axis": "an axis number (0 x, 1 y, 2 z), not a "
    "quantity",
    "ChannelConfig.channel": "an output number of the stimulator, not a quantity",
    "SafetyLimits.max_shannon_k": "Shannon's k is dimensionless by definition (Shannon "
    "1992); the name is the quantity's own",
    "SafetyLimits.max_duty_cycle": "a duty cycle is a fraction of time by definition; "
    "the name is the quantity's own",
    "FirmwareSettings.max_duty_cycle": "a fraction of time, as safety.max_duty_cycle it "
    "is compared with",
    "AvrBoardSettings.max_duty_cycle": "a fraction of time, as safety.max_duty_cycle it "
    "is compared with",
    "EmulatorConfig.speed": "board seconds per wall second, a ratio; named after its "
    "option `fes board-emulator --speed`",
    "LinkFaults.drop": "a probability per frame; named after `fes board-emulator --drop`",
    "LinkFaults.corrupt": "a probability per frame; named after `--corrupt`",
    "LinkFaults.duplicate": "a probability per frame; named after `--duplicate`",
    "LinkFaults.delay": "a probability per frame; named after `--delay`",
    "FirmwareSettings.channels": "a count of stimulation outputs, not a quantity",
    "FirmwareSettings.protocol_version": "a version number, not a quantity",
    "FirmwareSettings.firmware_version": "a version number (major, minor, patch)",
    "FirmwareSettings.board_id": "a serial number, not a quantity",
    "AvrBoardConfig.seed": "a random seed, not a quantity",
    "AvrBoardConfig.speed": "board seconds per wall second, a ratio; named after its "
    "option `fes board-emulator --speed`",
    "AvrBoardSettings.board_id": "a serial number, not a quantity",
}

#: Numbers that are not bounded on both sides, and why.
UNBOUNDED: dict[str, str] = {}

#: Fewest words of a description: a name restated in words is shorter.
MIN_DESCRIPTION_WORDS = 6


def model_classes() -> dict[str, type[ConfigModel]]:
    """Every config model of the project by class name, found in the source."""
    bases: dict[tuple[str, str], list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.ClassDef):
                    bases[(module, node.name)] = [
                        b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")
                        for b in node.bases
                    ]
    names = {"ConfigModel"}
    while True:
        more = {cls for (_, cls), of in bases.items() if names & set(of)} - names
        if not more:
            break
        names |= more
    found = {}
    for (module, cls), _ in bases.items():
        if cls in names:
            assert cls not in found, f"two config models named {cls}"
            found[cls] = getattr(importlib.import_module(module), cls)
    return found


MODELS = model_classes()
FIELDS = [(f"{cls}.{name}", field) for cls, model in sorted(MODELS.items())
          for name, field in model.model_fields.items()]


def _numbers(annotation: typing.Any) -> bool:
    """True for int or float, alone, optional, or as the items of a list or tuple."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _numbers(typing.get_args(annotation)[0])
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(_numbers(a) for a in args)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return bool(args) and all(_numbers(a) for a in args)
    return annotation in (int, float)


def number_fields() -> list[tuple[str, FieldInfo]]:
    return [(key, field) for key, field in FIELDS if _numbers(field.annotation)]


def test_the_models_are_found():
    assert {"TrialConfig", "LoopConfig", "SafetyLimits", "ChannelConfig", "GyroDetectorConfig",
            "HeelDetectorConfig", "FusionConfig", "PatientProfile", "FirmwareSettings",
            "EmulatorConfig", "LinkFaults"} <= set(MODELS)

    def subclasses(cls: type) -> set[type]:
        return {s for sub in cls.__subclasses__() for s in {sub, *subclasses(sub)}}

    # Every model imported anywhere in the project is one the source scan found.
    assert subclasses(ConfigModel) <= set(MODELS.values())


def test_every_field_has_a_description_that_says_more_than_its_name():
    bad = [f"{key}: {field.description!r}" for key, field in FIELDS
           if len((field.description or "").split()) < MIN_DESCRIPTION_WORDS]
    assert not bad, "fields without a description:\n" + "\n".join(bad)


def test_every_number_carries_its_unit_in_its_name():
    bad = [key for key, _ in number_fields()
           if not key.endswith(UNIT_SUFFIXES + DIMENSIONLESS_SUFFIXES) and key not in NO_UNIT]
    assert not bad, f"numbers without a unit in the name (or an entry in NO_UNIT): {bad}"


def test_every_number_is_bounded_below_and_above():
    bad = []
    for key, field in number_fields():
        limits = allowed(field)
        if not (">" in limits and "<" in limits) and key not in UNBOUNDED:
            bad.append(f"{key}: {limits or 'no bounds'}")
    assert not bad, "numbers not bounded on both sides:\n" + "\n".join(bad)


def test_exception_lists_name_existing_fields_that_need_them():
    keys = dict(FIELDS)
    numbers = dict(number_fields())
    assert set(NO_UNIT) <= set(numbers), set(NO_UNIT) - set(numbers)
    assert not [k for k in NO_UNIT if k.endswith(UNIT_SUFFIXES + DIMENSIONLESS_SUFFIXES)]
    assert set(UNBOUNDED) <= set(keys)


# --- configs/default.toml --------------------------------------------------------------


def test_shipped_default_toml_is_the_generated_one():
    shipped = default_config_path().read_text()
    assert shipped == default_toml(), (
        "configs/default.toml differs from the models: run "
        "`fes check-config --explain > configs/default.toml`"
    )


def test_default_toml_reads_back_as_the_default_config():
    data = tomllib.loads(default_toml())
    assert TrialConfig.model_validate(data) == TrialConfig()


def test_fes_check_config_explain_prints_the_default_toml(capsys):
    assert main(["check-config", "--explain"]) == 0
    assert capsys.readouterr().out == default_config_path().read_text()


def test_explaining_a_file_shows_its_own_values_and_channels(tmp_path, capsys):
    config = tmp_path / "calf.toml"
    config.write_text('[stim]\npreset = "peroneal_calf"\n[stim.peroneal]\namplitude_ma = 30\n')
    assert main(["check-config", "--explain", str(config)]) == 0
    text = capsys.readouterr().out
    data = tomllib.loads(text)
    assert data["stim"]["peroneal"]["amplitude_ma"] == 30.0
    assert set(data["stim"]["channels"]) == {"calf"}
    assert "[stim.channels.calf]" in text


def test_check_config_without_file_or_explain_is_a_usage_error(capsys):
    assert main(["check-config"]) == 2
    assert "--explain" in capsys.readouterr().err


def _bounded_value(field: FieldInfo) -> st.SearchStrategy[typing.Any]:
    """Values ``field`` accepts, drawn inside its bounds."""
    low = high = None
    strict_low = strict_high = False
    for meta in field.metadata:
        if getattr(meta, "ge", None) is not None:
            low = meta.ge
        if getattr(meta, "gt", None) is not None:
            low, strict_low = meta.gt, True
        if getattr(meta, "le", None) is not None:
            high = meta.le
        if getattr(meta, "lt", None) is not None:
            high, strict_high = meta.lt, True
    if field.annotation is int:
        return st.integers(low + strict_low, high - strict_high)
    return st.floats(low, high, exclude_min=strict_low, exclude_max=strict_high,
                     allow_nan=False)


def _scalar_leaves(model: type[BaseModel], path: tuple[str, ...] = ()):
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _scalar_leaves(annotation, (*path, name))
        elif annotation in (int, float):
            yield (*path, name), field


LEAVES = list(_scalar_leaves(TrialConfig))


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_any_config_within_the_bounds_reads_back_from_its_explanation(data):
    """Round trip: every number written by ``explain`` reads back exactly (floats at
    their extremes included), whatever the values within the fields' bounds."""
    tree: dict = {}
    for path, field in data.draw(st.lists(st.sampled_from(LEAVES), max_size=12)):
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = data.draw(_bounded_value(field))
    try:
        config = TrialConfig.model_validate(tree)
    except ValidationError:  # a cross-field rule (e.g. release below contact force)
        reject()
    assert TrialConfig.model_validate(tomllib.loads(explain(config, "x"))) == config


@pytest.mark.parametrize("key", sorted(NO_UNIT))
def test_no_unit_exceptions_say_why(key):
    assert len(NO_UNIT[key].split()) >= 4
