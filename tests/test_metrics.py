from __future__ import annotations

import math

import pytest

from fedlog.metrics import detection_metrics, pooled_metrics


def test_detection_metrics_at_threshold() -> None:
    m = detection_metrics([0, 0, 1, 1, 0], [0.1, 0.9, 0.8, 0.7, 0.2], threshold=0.5)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 2, 0)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == 1.0
    assert m["auroc"] == pytest.approx(4 / 6)  # 4 of 6 (anomaly, normal) pairs ordered


def test_single_class_ranking_metrics_are_undefined_not_zero() -> None:
    m = detection_metrics([0, 0, 0], [0.1, 0.2, 0.9], threshold=0.5)
    assert math.isnan(m["auroc"]) and m["fp"] == 1


def test_pooled_metrics_sum_confusion_counts() -> None:
    a = detection_metrics([0, 1, 1], [0.0, 1.0, 0.0], 0.5)
    b = detection_metrics([0, 0, 1], [1.0, 0.0, 1.0], 0.5)
    overall = pooled_metrics([a, b])
    assert (overall["tp"], overall["fp"], overall["fn"]) == (2, 1, 1)
    assert overall["f1"] == pytest.approx(2 / 3)


def test_robust_quantile_ignores_a_single_outlier_in_small_samples() -> None:
    import numpy as np

    from fedlog.detectors.base import robust_quantile

    small = np.array([0.1] * 43 + [7.0])
    assert robust_quantile(small, 0.99) == pytest.approx(0.1)
    large = np.linspace(0, 1, 1001)
    assert robust_quantile(large, 0.99) == pytest.approx(0.99)
