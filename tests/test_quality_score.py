"""QualitySoftmax's Acc_k (``val-accuracy``) comes from validation windows that did not set the threshold,
so a silo with only normal validation windows no longer scores ~0.99 by construction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedlog.data.records import ANOMALY, NORMAL
from fedlog.detectors.base import Detector, validation_halves
from fedlog.windows import Split, Window


@dataclass
class ScoreParams:
    threshold_quantile: float = 0.99


class ScoreIsStart(Detector):
    """A detector whose anomaly score is written into each window (its ``start``)."""

    name = "score-is-start"
    Params = ScoreParams

    @property
    def module(self) -> torch.nn.Module:
        return torch.nn.Identity()

    def train_round(self, train, round_idx: int, epochs: int) -> dict[str, float]:
        return {"loss": 0.0, "examples": 0}

    def score(self, windows) -> np.ndarray:
        return np.array([w.start for w in windows], dtype=float)


def _windows(scores, label: int = NORMAL) -> list[Window]:
    return [Window(f"w{i}", float(s), float(s), [], [], label) for i, s in enumerate(scores)]


def _accuracy(val: list[Window]) -> tuple[float, bool]:
    return ScoreIsStart(ScoreParams()).validation_accuracy(Split(train=[], val=val, test=[]))


def test_all_normal_validation_is_not_near_one_by_construction() -> None:
    rng = np.random.default_rng(0)
    steady = _windows(rng.normal(size=200))
    drifting = _windows(np.concatenate([rng.normal(size=100), rng.normal(loc=5.0, size=100)]))
    steady_acc, labelled = _accuracy(steady)
    drift_acc, _ = _accuracy(drifting)
    assert not labelled
    assert steady_acc > 0.9  # held-out normals mostly below a threshold they did not set
    assert drift_acc < 0.2  # the later half scores above the earlier half's threshold: the client is penalised
    assert _accuracy(drifting) == (drift_acc, False)  # deterministic


def test_labelled_validation_counts_anomalies_of_the_held_out_half_only() -> None:
    rng = np.random.default_rng(1)
    calibration = _windows(rng.normal(size=60))
    held_out = _windows(rng.normal(size=50)) + _windows([10.0] * 10, ANOMALY)
    val = calibration + held_out
    first, second = validation_halves(val)
    assert list(first) == calibration and list(second) == held_out
    accuracy, labelled = _accuracy(val)
    assert labelled and accuracy > 0.9
