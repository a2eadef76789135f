"""QualitySoftmax (GANFL eq. 3-5): weight clients by a quality score, softmax over it.

q_k = alpha * Acc_k + beta * n_k / N - gamma * D(P_k || P_global),  w = softmax(q / T),
theta = sum_k w_k theta_k.

Acc_k is the client's validation accuracy after its local training (on the later half of its
validation windows, at a threshold set on the earlier half: not ~0.99 by construction), n_k its
training examples, P_k its histogram over hashed event ids and P_global the
n-weighted mixture of this round's histograms. Clients send raw counts (ids
and counts only); the server smooths every histogram over the union of ids
(add-``smoothing``), because KL needs a common support. The paper writes
``+ gamma * KL`` but says clients closer to the global distribution score
higher, hence the minus (docs/DESIGN.md). JS is offered since KL between disjoint
silos is unbounded.

Acc_k and n_k are self-reported and the server cannot recompute them, so it bounds them before use:
Acc_k is clipped to [0, 1] and n_k to ``max-examples-ratio`` times the round's median n (a silo that
claims a million windows would otherwise own the size term and pull P_global onto its own histogram).
The record keeps what each silo claimed where the bound changed it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAvg

from fedlog import protocol
from strategies.base import FedlogStrategy
from strategies.common import weighted_sum_arrays


def smoothed_histograms(hists: Sequence[Mapping[str, int]], smoothing: float) -> np.ndarray:
    """Rows of probabilities over the union of ids (sorted), add-``smoothing`` per id."""
    ids = sorted({i for h in hists for i in h})
    counts = np.array([[h.get(i, 0) for i in ids] for h in hists], dtype=float) + smoothing
    return counts / counts.sum(axis=1, keepdims=True)


def kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(p * np.log(p / q)))


def js(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


DIVERGENCES = {"kl": kl, "js": js}


def quality_weights(
    acc: Sequence[float],
    n: Sequence[float],
    hists: Sequence[Mapping[str, int]],
    *,
    alpha: float,
    beta: float,
    gamma: float,
    temperature: float,
    divergence: str = "kl",
    smoothing: float = 1.0,
) -> dict[str, list[float]]:
    """Per client: the three terms, q and the softmax weight w (sums to 1)."""
    n_arr = np.asarray(n, dtype=float)
    probs = smoothed_histograms(hists, smoothing)
    p_global = (n_arr[:, None] * probs).sum(axis=0) / n_arr.sum()
    div = np.array([DIVERGENCES[divergence](p, p_global) for p in probs])
    acc_term = alpha * np.asarray(acc, dtype=float)
    size_term = beta * n_arr / n_arr.sum()
    q = acc_term + size_term - gamma * div
    z = q / temperature
    w = np.exp(z - z.max())
    w /= w.sum()
    return {
        "acc_term": acc_term.tolist(),
        "size_term": size_term.tolist(),
        "divergence": div.tolist(),
        "q": q.tolist(),
        "w": w.tolist(),
    }


def bounded_reports(
    acc: Sequence[float], n: Sequence[float], max_examples_ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """Self-reported accuracies clipped to [0, 1]; examples to ``max_examples_ratio`` x the median
    (no bound on examples when the ratio is 0)."""
    acc_arr = np.clip(np.nan_to_num(np.asarray(acc, dtype=float), nan=0.0), 0.0, 1.0)
    n_arr = np.asarray(n, dtype=float)
    if max_examples_ratio > 0:
        n_arr = np.minimum(n_arr, max_examples_ratio * float(np.median(n_arr)))
    return acc_arr, n_arr


@dataclass
class QualitySoftmaxParams:
    """GANFL eq. 3-5 (run-config keys ``quality-softmax.*``)."""

    alpha: float = 1.0  # weight of the client's validation accuracy
    beta: float = 1.0  # weight of its share of the training examples
    gamma: float = 1.0  # weight of the divergence of its event histogram from the mixture
    temperature: float = 1.0  # softmax temperature T
    divergence: str = "kl"  # or "js": bounded when silos share no event at all
    smoothing: float = 1.0  # add-k smoothing over the union of ids (KL needs a common support)
    max_examples_ratio: float = 10.0  # a silo's self-reported n counts at most this x the median; 0: unbounded

    def __post_init__(self) -> None:
        if self.divergence not in DIVERGENCES:
            raise ValueError(f"divergence must be one of {', '.join(DIVERGENCES)}, not {self.divergence!r}")


class QualitySoftmax(FedlogStrategy, FedAvg):
    Params = QualitySoftmaxParams
    dp_refusal = (
        "it weighs each silo by a softmax of its own quality score, so one silo can take nearly all of "
        "the weight: its influence is not the clipping-norm / m the noise is calibrated for, and its "
        "accuracy and event histogram would still leave it unnoised"
    )
    secagg_refusal = "it weighs each silo's parameters by that silo's own quality score and histogram"

    def __init__(self, params: QualitySoftmaxParams, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.params = params

    def _aggregate(
        self, server_round: int, replies: list[Message], names: list[str]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        metrics = [protocol.metrics_of(m) for m in replies]
        claimed_acc = [float(m[protocol.VAL_ACCURACY]) for m in metrics]
        claimed_n = [float(m[protocol.NUM_EXAMPLES]) for m in metrics]
        acc, n = bounded_reports(claimed_acc, claimed_n, self.params.max_examples_ratio)
        terms = asdict(self.params)
        del terms["max_examples_ratio"]
        result = quality_weights(acc, n, [protocol.histogram_of(m) for m in replies], **terms)
        self.round_info = {name: {key: values[i] for key, values in result.items()} for i, name in enumerate(names)}
        for i, name in enumerate(names):
            if (acc[i], n[i]) != (claimed_acc[i], claimed_n[i]):
                self.round_info[name] |= {"claimed_val_accuracy": claimed_acc[i], "claimed_examples": claimed_n[i]}
        summed = weighted_sum_arrays([self.decoded[name] for name in names], result["w"])
        arrays = ArrayRecord({k: Array(v) for k, v in summed.items()})
        return arrays, self.train_metrics_aggr_fn([m.content for m in replies], self.weighted_by_key)
