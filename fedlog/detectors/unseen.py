"""Rule baselines: the "unseen event" rule and the count-range rule.

``rule = "unseen"``: a window's score is the number of its events (lines) whose
event never occurred in a normal training window; unmatched lines (no template,
event None) always count. ``rule = "range"`` adds one per event whose count in
the window lies outside the [min, max] of its counts over the normal training
windows, absence (count 0) included, so a missing always-present event counts too.

Federation: the state is one table, for every hashed bucket and every count k,
the share of normal training windows in which that bucket occurs exactly k
times. Shares are means over windows, so FedAvg weighted by ``examples`` (the
number of normal windows) yields exactly the table of the pooled windows, from
which "seen" (some k > 0 has mass) and min..max (the lowest and highest k with
mass) follow. Counts above ``max_count`` share the last bin, so a window above
``max_count`` is within range of a training maximum that was also above it.

Threshold: the base class's 0.99 quantile of validation-normal scores, with
``score > threshold`` flagged. Scores are integers and np.quantile interpolates,
so while about 1% of validation normals or fewer score above 0, the threshold
lies in [0, 1) and a single unseen event (or out-of-range count) raises an
alert: the classic rule (on HDFS with 5,000 normal training sessions it is 0.0
for both rules). Where more validation normals carry such events (hash
collisions, a drifting silo) the threshold reaches k >= 1 and the rule becomes
"more than k", still chosen without labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedlog.data.records import NORMAL
from fedlog.detectors.base import Detector, register
from fedlog.parse.hashing import N_SPECIAL, token_of
from fedlog.windows import Window

RULES = ("unseen", "range")


@dataclass
class UnseenParams:
    rule: str = "unseen"  # "unseen" (never-seen events) or "range" (also counts outside training min..max)
    buckets: int = 4096  # shared hashed event space; collisions can only hide an unseen event, never invent one
    max_count: int = 64  # exact count bins up to this; the table is buckets x (max_count + 2) float64 (2 MiB)
    threshold_quantile: float = 0.99


class CountTable(nn.Module):
    """share[b, k]: share of normal training windows where bucket b occurs k times (last bin: more)."""

    def __init__(self, buckets: int, max_count: int) -> None:
        super().__init__()
        self.register_buffer("share", torch.zeros(buckets, max_count + 2, dtype=torch.float64))


@register
class Unseen(Detector):
    name = "unseen"
    Params = UnseenParams

    def __init__(self, params: UnseenParams, seed: int = 42, device: str = "auto") -> None:
        super().__init__(params, seed, "cpu")  # table look-ups: nothing to accelerate
        if params.rule not in RULES:
            raise ValueError(f"unseen.rule must be one of {', '.join(RULES)}, not {params.rule!r}")
        self._module = CountTable(params.buckets, params.max_count)

    @property
    def module(self) -> nn.Module:
        return self._module

    def _bin(self, count: int) -> int:
        return min(count, self.params.max_count + 1)

    def _counts(self, window: Window) -> tuple[Counter[int], int]:
        """Bucket counts (0-based buckets) of a window's matched events, and its unmatched lines."""
        counts = Counter(token_of(e, self.params.buckets) - N_SPECIAL for e in window.events if e is not None)
        return counts, sum(e is None for e in window.events)

    def train_round(self, train: Sequence[Window], round_idx: int, epochs: int) -> dict[str, float]:
        """Refit the table on this client's normal windows (the same every round: nothing to optimise)."""
        normal = [w for w in train if w.label == NORMAL]
        if not normal:
            raise ValueError("the unseen rule learns from normal windows and this split has none")
        table = np.zeros(tuple(self._module.share.shape))
        table[:, 0] = len(normal)  # every bucket absent, then move the present ones
        for w in normal:
            for bucket, count in self._counts(w)[0].items():
                table[bucket, 0] -= 1
                table[bucket, self._bin(count)] += 1
        self._module.share.copy_(torch.from_numpy(table / len(normal)))
        return {"loss": 0.0, "examples": len(normal)}

    def score(self, windows: Sequence[Window]) -> np.ndarray:
        share = self._module.share.numpy()
        present = share > 0
        seen = present[:, 1:].any(axis=1)
        low = present.argmax(axis=1)  # lowest count bin with mass
        high = present.shape[1] - 1 - present[:, ::-1].argmax(axis=1)
        required = np.flatnonzero(seen & (low > 0))  # in every normal training window
        scores = np.zeros(len(windows))
        for i, w in enumerate(windows):
            counts, unmatched = self._counts(w)
            score = unmatched + sum(c for b, c in counts.items() if not seen[b])
            if self.params.rule == "range":
                score += sum(1 for b, c in counts.items() if seen[b] and not low[b] <= self._bin(c) <= high[b])
                score += sum(1 for b in required if b not in counts)
            scores[i] = score
        return scores
