"""Detection metrics (scikit-learn), from scores plus a threshold chosen without test labels."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

COUNT_KEYS = ("tp", "fp", "tn", "fn")

MIN_VAL_NORMAL = 20  # fewer normal validation windows cannot set a 0.99 quantile: thresholds fall back to training


def detection_metrics(labels: Sequence[int], scores: Sequence[float], threshold: float) -> dict[str, float]:
    """P/R/F1/accuracy at ``threshold`` (score > threshold is anomalous) plus AUROC/AUPR.

    Ranking metrics are NaN when the labels hold a single class: undefined, not zero.
    """
    # imported here: sklearn costs seconds, and a deployed ClientApp starts a fresh process per message
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    pred = (s > threshold).astype(int)
    p, r, f1, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    both = len(np.unique(y)) == 2
    return {
        "precision": float(p),
        "recall": float(r),
        "f1": float(f1),
        "accuracy": float(accuracy_score(y, pred)) if len(y) else math.nan,
        "auroc": float(roc_auc_score(y, s)) if both else math.nan,
        "aupr": float(average_precision_score(y, s)) if both else math.nan,
        "threshold": float(threshold),
        "tp": int(tp),
        "fp": int(fp),
        "tn": int(tn),
        "fn": int(fn),
    }


def pooled_metrics(per_silo: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Overall figures across silos: P/R/F1/accuracy from summed confusion counts (micro),
    AUROC/AUPR as the example-weighted mean of the silos where they are defined."""
    tp, fp, tn, fn = (sum(int(m[k]) for m in per_silo) for k in COUNT_KEYS)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    out = {
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "accuracy": (tp + tn) / max(1, tp + fp + tn + fn),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }
    for key in ("auroc", "aupr"):
        pairs = [(m[key], m["tp"] + m["fp"] + m["tn"] + m["fn"]) for m in per_silo]
        pairs = [(v, n) for v, n in pairs if v is not None and not math.isnan(v)]  # null: undefined, read back
        weight = sum(n for _, n in pairs)
        out[key] = sum(v * n for v, n in pairs) / weight if weight else math.nan
    return out
