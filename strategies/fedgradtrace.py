"""FedGradTrace (FedXLog 3.2.1, as reconstructed in DESIGN.md): Frobenius-norm weighting
with an auditable trajectory per client.

Delta_k = theta_k - theta_{t-1},  F_k = ||Delta_k||_F (all tensors),
w_k proportional to n_k / (1 + lambda * F_k / median_j F_j)   (lambda = 0 is FedAvg),
theta_t = theta_{t-1} + sum_k w_k Delta_k,
share_k = <w_k Delta_k, Delta> / ||Delta||^2 with Delta = sum_k w_k Delta_k (shares sum to 1).

Each client also reports F_k; the server recomputes it and rejects a reply whose
reported norm disagrees (a client cannot hide the size of its update).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord

from strategies.common import RobustFedAvg, to_numpy

NORM_KEY = "update-norm"


def flat(arrays: dict[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
    return np.concatenate([arrays[k].astype(np.float64).ravel() for k in keys])


def trace_weights(n: Sequence[float], norms: Sequence[float], lam: float) -> np.ndarray:
    n_arr, f = np.asarray(n, dtype=float), np.asarray(norms, dtype=float)
    median = float(np.median(f))
    scaled = f / median if median > 0 else np.zeros_like(f)
    raw = n_arr / (1.0 + lam * scaled)
    return raw / raw.sum()


def shares(weights: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Each client's part of the global update; sums to 1 whenever the update is non-zero."""
    contributions = weights[:, None] * deltas
    total = contributions.sum(axis=0)
    denom = float(total @ total)
    return contributions @ total / denom if denom > 0 else np.full(len(weights), 1.0 / len(weights))


class FedGradTrace(RobustFedAvg):
    def __init__(self, lam: float = 1.0, history: int = 3, norm_tolerance: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lam = lam
        self.norm_tolerance = norm_tolerance
        self.trajectories: dict[str, list[dict[str, float]]] = {}
        self.recent: dict[str, deque] = {}
        self.history = history

    def _aggregate(
        self, server_round: int, replies: list[Message], names: list[str]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        keys = sorted(self.global_arrays)
        base = flat(self.global_arrays, keys)
        kept, deltas, n, norms = [], [], [], []
        for msg, name in zip(replies, names):
            metrics = next(iter(msg.content.metric_records.values()))
            delta = flat(to_numpy(next(iter(msg.content.array_records.values()))), keys) - base
            norm = float(np.linalg.norm(delta))
            reported = float(metrics.get(NORM_KEY, -1.0))
            if abs(reported - norm) > self.norm_tolerance * max(1.0, norm):
                self.rejected[name] = f"reported update norm {reported:.6g} != recomputed {norm:.6g}"
                continue
            kept.append((msg, name))
            deltas.append(delta)
            n.append(float(metrics["num-examples"]))
            norms.append(norm)
        if len(kept) < max(1, self.min_train_nodes):
            self.rejected["round"] = f"only {len(kept)} replies passed the norm check: kept the global model"
            return None, None
        delta_matrix = np.stack(deltas)
        weights = trace_weights(n, norms, self.lam)
        new = base + weights @ delta_matrix
        share = shares(weights, delta_matrix)
        round_idx = server_round + self.round_offset
        for i, (_, name) in enumerate(kept):
            point = {
                "round": round_idx,
                "n": n[i],
                "F": norms[i],
                "w": float(weights[i]),
                "share": float(share[i]),
            }
            self.trajectories.setdefault(name, []).append(point)
            self.recent.setdefault(name, deque(maxlen=self.history)).append(delta_matrix[i].astype(np.float32))
            self.round_info[name] = point
        arrays = ArrayRecord(_unflat(new, self.global_arrays, keys))
        metrics = self.train_metrics_aggr_fn([m.content for m, _ in kept], self.weighted_by_key)
        return arrays, metrics


def _unflat(vector: np.ndarray, like: dict[str, np.ndarray], keys: Sequence[str]) -> dict[str, Array]:
    out, offset = {}, 0
    for key in keys:
        size = like[key].size
        out[key] = Array(vector[offset : offset + size].reshape(like[key].shape).astype(like[key].dtype))
        offset += size
    return out
