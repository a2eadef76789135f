"""SHAP on window texts, mapped onto hashed event-id dimensions (FedXLog 3.3, Algorithm 1).

A Partition explainer with a whitespace Text masker explains the detector's
anomaly score of sampled windows; each word of a window text is one event id,
so a SHAP value lands on exactly one id. Per window, an id's value is the sum
over its occurrences. Ids are found by regex (8 hex chars), counted, and the
top-N kept. The paper keeps the N most *frequent* ids; we rank by mean |SHAP|
over the explained windows that contain the id: the ids that explain anomalies
are usually rare, and a frequency cut (or SHAP's usual mean over all windows,
which multiplies by frequency) lets ids present in every window crowd them out.

Which windows: label-free, as the threshold. Up to half of the sample are the
highest-scored windows above the detector's threshold (what an operator asks
about), the rest drawn at random from the others, with a fixed seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fedlog.explain.text import ID_RE, text_scorer, window_text
from fedlog.windows import Split, Window

MASK_WORD = "..."  # not an id: events_of_text drops it, so a masked event is absent


@dataclass
class IdExplanation:
    """One client's explanation over its top-N ids: ids and numbers only."""

    ids: list[str]
    frequency: np.ndarray  # occurrences in the explained windows
    windows: np.ndarray  # explained windows that contain the id (the merge weight)
    mean_shap: np.ndarray  # mean over those windows of the id's summed SHAP value
    mean_abs_shap: np.ndarray
    values: np.ndarray  # windows x ids: the id's summed SHAP value in each window (0 where absent)
    counts: np.ndarray  # windows x ids: occurrences
    base: np.ndarray  # per window: the score with every event masked
    samples: int


def sample_windows(scores: np.ndarray, threshold: float, n: int, seed: int) -> np.ndarray:
    """Indices: up to n/2 top-scored windows above the threshold, the rest at random."""
    n = min(n, len(scores))
    flagged = [i for i in np.argsort(-scores, kind="stable") if scores[i] > threshold][: n // 2]
    rest = np.setdiff1d(np.arange(len(scores)), flagged)
    rng = np.random.default_rng(seed)
    drawn = rng.choice(rest, size=min(n - len(flagged), len(rest)), replace=False)
    return np.sort(np.concatenate([np.asarray(flagged, dtype=int), drawn.astype(int)]))


def explain_texts(
    score_texts: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str], top_n: int, max_evals: int = 300
) -> IdExplanation:
    import shap  # here, not at module level: shap costs a second per ClientApp process that never explains

    masker = shap.maskers.Text(r"\s+", mask_token=MASK_WORD, collapse_mask_token=False)
    explainer = shap.PartitionExplainer(score_texts, masker)
    result = explainer(list(texts), max_evals=max_evals, batch_size=256, silent=True)
    per_window: list[dict[str, tuple[float, int]]] = []
    for words, values in zip(result.data, result.values):
        row: dict[str, tuple[float, int]] = {}
        for word, value in zip(words, values):
            match = ID_RE.fullmatch(str(word).strip())
            if match:
                total, count = row.get(match.group(), (0.0, 0))
                row[match.group()] = (total + float(value), count + 1)
        per_window.append(row)
    ids = sorted({i for row in per_window for i in row})
    values = np.array([[row.get(i, (0.0, 0))[0] for i in ids] for row in per_window]).reshape(len(texts), len(ids))
    counts = np.array([[row.get(i, (0.0, 0))[1] for i in ids] for row in per_window]).reshape(len(texts), len(ids))
    present = counts > 0
    windows = present.sum(axis=0)
    total_abs = np.abs(values).sum(axis=0)
    mean_abs = total_abs / np.maximum(windows, 1)
    keep = np.lexsort((np.array(ids), -mean_abs))[:top_n]  # ties broken by id: deterministic
    safe = np.maximum(windows[keep], 1)
    return IdExplanation(
        ids=[ids[k] for k in keep],
        frequency=counts[:, keep].sum(axis=0),
        windows=windows[keep],
        mean_shap=values[:, keep].sum(axis=0) / safe,
        mean_abs_shap=mean_abs[keep],
        values=values[:, keep],
        counts=counts[:, keep],
        base=np.asarray(result.base_values, dtype=float).reshape(len(texts)),
        samples=len(texts),
    )


def explain_split(detector, split: Split, samples: int, top_n: int, seed: int) -> tuple[IdExplanation, list[Window]]:
    """Explain a label-free sample of the split's test windows (validation if there is no test)."""
    windows = split.test or split.val
    if not windows:
        raise ValueError("no windows to explain")
    threshold = detector.threshold(split.val, split.train)
    chosen = [windows[i] for i in sample_windows(detector.score(windows), threshold, samples, seed)]
    explanation = explain_texts(text_scorer(detector.score), [window_text(w) for w in chosen], top_n)
    return explanation, chosen
