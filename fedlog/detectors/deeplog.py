"""DeepLog (Du et al., CCS'17): an LSTM predicts each event from the ``history`` events before it.

Trained on normal training windows over the shared hashed token space; a
window's first events are predicted from a history padded with a start token
([CLS]), so short windows are checked too. The paper flags a window when a true
next event is not among the model's top-g candidates. Here a window's score is
the largest rank of a true next event among all candidates (0 = the top-1
prediction), so the base class's threshold, the 0.99 quantile of
validation-normal scores with ``score > threshold`` flagged, is that rule with g
chosen without labels: the smallest g (up to quantile interpolation) that flags
at most 1% of validation normals. Events never seen in normal training (and
unmatched lines, [UNK]) are never predicted, so they rank far down by themselves.

The model's parameters are averaged like any model's; a round is a function of
(parameters, seed, round, data), so a resumed run replays it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedlog.data.records import NORMAL
from fedlog.detectors.base import Detector, register, seed_everything
from fedlog.parse.hashing import CLS, N_SPECIAL, token_of
from fedlog.windows import Window

START = CLS  # pads the history of a window's first events


@dataclass
class DeepLogParams:
    """Defaults sized for a 2-core CPU (an epoch over HDFS's ~100k training events takes seconds)."""

    history: int = 10  # h: preceding events the LSTM sees (paper: 10)
    embed: int = 32  # the paper feeds one-hot keys; an embedding is the same map, smaller
    hidden: int = 64  # paper: 64
    layers: int = 2  # paper: 2
    buckets: int = 4096  # shared hashed token space (ids -> int(id, 16) mod buckets)
    lr: float = 0.001
    batch_size: int = 256
    threshold_quantile: float = 0.99


class DeepLogModule(nn.Module):
    """Embedding, stacked LSTM and a linear layer over the token space."""

    def __init__(self, p: DeepLogParams) -> None:
        super().__init__()
        vocab = N_SPECIAL + p.buckets
        self.embed = nn.Embedding(vocab, p.embed)
        self.lstm = nn.LSTM(p.embed, p.hidden, num_layers=p.layers, batch_first=True)
        self.out = nn.Linear(p.hidden, vocab)

    def forward(self, histories: torch.Tensor) -> torch.Tensor:
        """Logits of the next event after each history (batch x history -> batch x vocab)."""
        states, _ = self.lstm(self.embed(histories))
        return self.out(states[:, -1])


@register
class DeepLog(Detector):
    name = "deeplog"
    Params = DeepLogParams

    def __init__(self, params: DeepLogParams, seed: int = 42, device: str = "auto") -> None:
        super().__init__(params, seed, device)
        if params.history < 1:
            raise ValueError(f"deeplog.history must be at least 1, not {params.history}")
        seed_everything(seed)
        self._module = DeepLogModule(params).to(self.device)

    @property
    def module(self) -> nn.Module:
        return self._module

    def _pairs(self, window: Window) -> list[tuple[int, ...]]:
        """(history..., next) for every event of the window, histories padded with START."""
        h = self.params.history
        tokens = [START] * h + [token_of(e, self.params.buckets) for e in window.events]
        return [tuple(tokens[i : i + h + 1]) for i in range(len(tokens) - h)]

    def train_round(self, train: Sequence[Window], round_idx: int, epochs: int) -> dict[str, float]:
        normal = [w for w in train if w.label == NORMAL]
        if not normal:
            raise ValueError("DeepLog trains on normal windows and this split has none")
        pairs = torch.tensor([p for w in normal for p in self._pairs(w)], device=self.device)
        opt = torch.optim.Adam(self._module.parameters(), lr=self.params.lr)
        self._module.train()
        self.seed_round(round_idx)
        losses = []
        bs = self.params.batch_size
        for _ in range(epochs):
            order = torch.randperm(len(pairs), generator=self._rng).to(self.device)
            for lo in range(0, len(order), bs):
                batch = pairs[order[lo : lo + bs]]
                loss = F.cross_entropy(self._module(batch[:, :-1]), batch[:, -1]) + self.proximal_loss()
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
        return {"loss": float(np.mean(losses)), "examples": len(normal), "events": float(len(pairs))}

    @torch.no_grad()
    def score(self, windows: Sequence[Window]) -> np.ndarray:
        per_window = [self._pairs(w) for w in windows]
        distinct = list(dict.fromkeys(p for pairs in per_window for p in pairs))  # logs repeat: rank once
        rank: dict[tuple[int, ...], int] = {}
        self._module.eval()
        bs = max(1024, self.params.batch_size)
        for lo in range(0, len(distinct), bs):
            chunk = distinct[lo : lo + bs]
            batch = torch.tensor(chunk, device=self.device)
            logits = self._module(batch[:, :-1])
            truth = logits.gather(1, batch[:, -1:])
            rank.update(zip(chunk, (logits > truth).sum(dim=1).tolist()))
        return np.array([max((rank[p] for p in pairs), default=0) for pairs in per_window], dtype=float)
