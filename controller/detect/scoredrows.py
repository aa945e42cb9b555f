"""Scored rows of the detector evaluation, shared by ``controller.detect.evaluate``,
``controller.detect.footref_eval`` and ``controller.detect.gaitpdb_eval``: the shipped
detector configuration, one scorer per walker, the pooled figures with the walker bias
spread, and the cost by which a setting is chosen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from controller.detect.config import DetectorConfig
from controller.detect.datasets import Recording
from controller.detect.score import Scorer, bias_spread_ms, pooled
from controller.events import DetectedEvent
from controller.resources import configs_root, load_toml


@dataclass(frozen=True)
class Row:
    """The pooled score of one configuration on one dataset, scored one way."""

    dataset: str
    configuration: str
    scored: str
    summary: dict[str, dict[str, Any]]


def walker_scores(
    recordings: Sequence[Recording],
    detected: Sequence[Sequence[DetectedEvent]],
    window: str,
    tolerance_s: float,
) -> dict[str, Scorer]:
    """One scorer per walker, over that walker's recordings in the named window."""
    scores: dict[str, Scorer] = {}
    for rec, events in zip(recordings, detected, strict=True):
        scorer = scores.setdefault(rec.walker, Scorer(tolerance_s))
        scorer.add(rec.reference, events, getattr(rec, window))
    return scores


def summarise(scores: Sequence[Scorer]) -> dict[str, dict[str, Any]]:
    """The pooled figures of ``scores`` (one per walker), with the walker bias spread."""
    summary = pooled(scores).summary()
    spread = bias_spread_ms(scores)
    for name, figures in summary.items():
        figures["bias_spread_ms"] = spread[name]
    return summary


def cost(scorer: Scorer) -> float:
    """How bad a configuration is on the walkers of ``scorer`` (smaller is better):
    misses and false detections as fractions plus the median absolute error in units of
    the matching tolerance, summed over the scored event kinds."""
    total = 0.0
    for summary in scorer.summary().values():
        recall, precision = summary["recall"], summary["precision"]
        error = summary["median_abs_error_ms"]
        total += (1.0 - (recall or 0.0)) + (1.0 - (precision or 0.0))
        total += 1.0 if error is None else error / (1000.0 * scorer.tolerance_s)
    return total


def shipped_config() -> DetectorConfig:
    """The ``[detector]`` table of the shipped ``configs/default.toml``, what ``fes sim``
    and ``fes detect`` run by default (read here directly: the trial config that composes
    every package's models sits above the detector)."""
    table = load_toml(configs_root() / "default.toml").get("detector", {})
    return DetectorConfig.model_validate(table)
