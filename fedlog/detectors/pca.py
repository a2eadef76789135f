"""PCA (Xu et al., SOSP'09, as in loglizer): the residual of a window's event-count vector.

Each window is a vector of event counts over the hashed buckets plus one slot for
unmatched lines, optionally divided by the window length, weighted by idf. The
principal subspace of normal training windows keeps ``variance`` of their
variance; the score is the squared prediction error (SPE), the squared norm of
the centred vector's part outside that subspace. An event never seen in normal
training has zero variance, so it lies wholly in the residual and its (large,
smoothed) idf weight counts in full: unseen events never vanish.

Threshold: by default Xu et al.'s Q-statistic (Jackson and Mudholkar), the SPE
that normal data exceeds with probability ``q_alpha`` given the residual
eigenvalues, label-free like every threshold here, and never below the base
class's 0.99 quantile of validation-normal SPEs. The quantile alone
(``threshold_mode = "quantile"``) fails on session logs such as HDFS: normal
windows repeat a handful of count patterns, their SPEs are a few near-zero
values, and the quantile lands between two of them, so a normal pattern rare in
validation (sessions cut by the end of the log) is flagged by the thousand
(measured: HDFS F1 0.12 with the quantile, 0.80 with the Q-statistic).

Federation exchanges sufficient statistics, never vectors: the module holds the
mean count vector, the mean outer product (second moment) and the document
share of each bucket (the share of windows containing it), all means over the
client's normal training windows. FedAvg weights replies by ``examples`` (that
number of windows), so it yields exactly the statistics of the pooled windows;
idf, covariance and subspace are derived from them when scoring. The window
count itself is not a mean and cannot be pooled by averaging: it travels as the
reply's ``examples``. Other strategies weight clients differently and give a
mixture of the clients' statistics instead (still a valid covariance).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import torch
from torch import nn

from fedlog.data.records import NORMAL
from fedlog.detectors.base import Detector, register
from fedlog.parse.hashing import N_SPECIAL, token_of
from fedlog.windows import Window

NORMALIZATIONS = ("none", "length")
CHUNK = 2048  # windows per dense count matrix: bounded memory on long test splits


@dataclass
class PCAParams:
    buckets: int = 1024  # the second moment is (buckets + 1)^2 float64: 8 MiB per reply at 1024
    variance: float = 0.95  # share of normal variance the principal subspace keeps (Xu et al.)
    normalize: str = "none"  # "length": counts / window length, so long and short windows compare
    idf: bool = True  # weight by idf: rare events weigh more, events in every window vanish
    idf_smoothing: float = 0.001  # pseudo-share added to every document share: unseen events get a finite idf
    threshold_quantile: float = 0.99
    threshold_mode: str = "q-statistic"  # Xu et al.'s Q_alpha (floored by the quantile), or "quantile" alone
    q_alpha: float = 0.001  # Xu et al.: false-alarm rate of normal data the Q-statistic allows


@dataclass(frozen=True)
class Subspace:
    """What scoring needs, derived from the pooled statistics."""

    weight: np.ndarray  # idf (or 1) per dimension
    centre: np.ndarray  # weighted mean
    active: np.ndarray  # dimensions seen in training (the only ones with variance)
    axes: np.ndarray  # principal axes over the active dimensions
    residual: np.ndarray  # eigenvalues left to the residual subspace


class MomentStats(nn.Module):
    """Means over normal windows of x, x x^T and [x > 0]: pooled exactly by FedAvg."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("second_moment", torch.zeros(dim, dim, dtype=torch.float64))
        self.register_buffer("doc_share", torch.zeros(dim, dtype=torch.float64))


@register
class PCA(Detector):
    name = "pca"
    Params = PCAParams
    THRESHOLD_MODES = ("q-statistic", "quantile")

    def __init__(self, params: PCAParams, seed: int = 42, device: str = "auto") -> None:
        super().__init__(params, seed, "cpu")  # one small eigendecomposition: nothing to accelerate
        if params.normalize not in NORMALIZATIONS:
            raise ValueError(f"pca.normalize must be one of {', '.join(NORMALIZATIONS)}, not {params.normalize!r}")
        if not 0 < params.variance <= 1:
            raise ValueError(f"pca.variance must be in (0, 1], not {params.variance}")
        self._module = MomentStats(params.buckets + 1)  # the last slot: unmatched lines

    @property
    def module(self) -> nn.Module:
        return self._module

    def vectors(self, windows: Sequence[Window]) -> np.ndarray:
        """Count vectors (buckets, then unmatched lines), length-normalised if asked."""
        dim = self.params.buckets + 1
        x = np.zeros((len(windows), dim))
        for i, w in enumerate(windows):
            slots = [dim - 1 if e is None else token_of(e, self.params.buckets) - N_SPECIAL for e in w.events]
            np.add.at(x[i], slots, 1.0)
            if self.params.normalize == "length" and slots:
                x[i] /= len(slots)
        return x

    def train_round(self, train: Sequence[Window], round_idx: int, epochs: int) -> dict[str, float]:
        """Refit the client's statistics (the same every round); the loss is the mean training SPE."""
        normal = [w for w in train if w.label == NORMAL]
        if not normal:
            raise ValueError("PCA learns from normal windows and this split has none")
        dim = self.params.buckets + 1
        mean, second, docs = np.zeros(dim), np.zeros((dim, dim)), np.zeros(dim)
        for lo in range(0, len(normal), CHUNK):
            x = self.vectors(normal[lo : lo + CHUNK])
            mean += x.sum(axis=0)
            second += x.T @ x
            docs += (x > 0).sum(axis=0)
        for buffer, total in ((self._module.mean, mean), (self._module.second_moment, second)):
            buffer.copy_(torch.from_numpy(total / len(normal)))
        self._module.doc_share.copy_(torch.from_numpy(docs / len(normal)))
        return {"loss": float(self.score(normal).mean()), "examples": len(normal)}

    def subspace(self) -> Subspace:
        """Only dimensions seen in training have variance, so the eigendecomposition runs on
        those (tens to hundreds), not on all buckets; the rest is residual by construction.
        """
        share = self._module.doc_share.numpy()
        mean = self._module.mean.numpy()
        eps = self.params.idf_smoothing
        weight = np.log((1 + eps) / (share + eps)) if self.params.idf else np.ones_like(share)
        active = np.flatnonzero(share > 0)
        m = mean[active]
        cov = self._module.second_moment.numpy()[np.ix_(active, active)] - np.outer(m, m)
        cov *= np.outer(weight[active], weight[active])
        values, axes = np.linalg.eigh(cov)
        values, axes = values[::-1].clip(min=0), axes[:, ::-1]
        total = values.sum()
        k = int(np.searchsorted(np.cumsum(values) / total, self.params.variance - 1e-12) + 1) if total > 0 else 0
        return Subspace(weight, weight * mean, active, axes[:, :k], values[k:])

    def q_statistic(self) -> float:
        """Jackson and Mudholkar's Q_alpha; 0 where the residual has no variance to model."""
        theta1, theta2, theta3 = ((self.subspace().residual ** i).sum() for i in (1, 2, 3))
        if theta1 <= 0 or theta2 <= 0:
            return 0.0
        h0 = 1 - 2 * theta1 * theta3 / (3 * theta2**2)
        c = NormalDist().inv_cdf(1 - self.params.q_alpha)
        base = c * math.sqrt(2 * theta2 * h0**2) / theta1 + 1 + theta2 * h0 * (h0 - 1) / theta1**2
        return float(theta1 * base ** (1 / h0)) if h0 > 0 and base > 0 else 0.0

    def threshold(self, val: Sequence[Window], train: Sequence[Window] = ()) -> float:
        base = super().threshold(val, train)
        if self.params.threshold_mode == "quantile":
            return base
        self.threshold_source += "+q-statistic"
        return max(base, self.q_statistic())

    def score(self, windows: Sequence[Window]) -> np.ndarray:
        sub = self.subspace()
        scores = []
        for lo in range(0, len(windows), CHUNK):
            y = self.vectors(windows[lo : lo + CHUNK]) * sub.weight - sub.centre
            explained = y[:, sub.active] @ sub.axes
            scores.append(((y**2).sum(axis=1) - (explained**2).sum(axis=1)).clip(min=0))
        return np.concatenate(scores) if scores else np.zeros(0)
