"""LogGAN (Xia et al.): an LSTM GAN whose generator predicts, for a context of events, the
independent occurrence probability of every event in the token space; an event that is
improbable under its context is an abnormal log line.

Log mode (the paper's log-level LogGAN): the context of the event at position k of a
window is the 3 events before it (``context`` of them; the first events' context is
padded with [PAD]); the real vector is the multi-hot set of events observed after that
context in the normal training windows. Session mode (LogGAN-sess): the context is the
window's event-count vector with one event type left out, and the real vector is that
event type, so "does this event type belong in a session with these counts?".

Training follows eq. 1-2 and Algorithm 1 (one G step, one D step per batch) on normal
training windows only. The generator's output is masked by the observed vector o: the
observed events plus a random ``neg_ratio`` share of the unobserved ones (negative
sampling). The reconstruction term averages over observed and over sampled-negative
positions separately, so one or two observed events are not drowned by hundreds of
negatives (the paper's 1/m sum weighs them equally), and it is cross-entropy, not the
paper's squared error: a squared error on a sigmoid has no gradient once saturated, and in
a federated run it stuck at 1.0 (every probability 0; HDFS F1 0.60 -> 0.33 by round 5).
The generator loss uses the non-saturating form -log D(e_hat|c) of log(1 - D(e_hat|c)).

Detection: a line scores -log p(event | context) from the generator with the noise at its
mean (z = 0, so scores are deterministic); a window scores its worst line, so a window is
abnormal when any line is. The threshold is the ``threshold_quantile`` of normal validation
windows' scores (label-free) or, with ``threshold_mode = "probability"``, the paper's fixed
probability: a line is abnormal when p < ``line_probability``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedlog.data.records import NORMAL
from fedlog.detectors.base import Detector, LocalContext, register, seed_everything
from fedlog.parse.hashing import N_SPECIAL, PAD, token_of
from fedlog.windows import Window

MODES = ("log", "session")
NEGATIVES = ("all", "own")
UNSEEN = -math.log(1e-6)  # with negatives = "own", the score of an event outside the silo's normal events


@dataclass
class LogGANParams:
    """Defaults are sized for a 2-core CPU; ``configs/loggan-paper.toml`` has the paper's."""

    mode: str = "log"  # "log" (next event given the 3 before it) or "session" (LogGAN-sess, count vectors)
    context: int = 3  # events of context in log mode (paper: 3)
    embed: int = 64  # event embedding size (paper: 200)
    hidden: int = 64  # LSTM hidden size of G and D
    layers: int = 2  # LSTM layers of G and D (paper: 2)
    noise: int = 16  # size of the generator's noise z
    buckets: int = 4096  # shared hashed token space; m = 4 special tokens + buckets
    neg_ratio: float = 0.1  # share of unobserved events kept in the mask o (paper: 0.1)
    recon_weight: float = 10.0  # weight of the reconstruction term of eq. 1 (1 lets D drag observed events down)
    lr: float = 1e-3
    batch_size: int = 64
    passes: int = 20  # passes over the distinct contexts per local epoch (C is small: HDFS has ~1k)
    threshold_quantile: float = 0.99
    threshold_mode: str = "quantile"  # or "probability": the paper's fixed line probability
    line_probability: float = 0.1  # with threshold_mode = "probability": p below this is abnormal
    negatives: str = "all"  # or "own": negatives only among this silo's normal events; others score UNSEEN


class ContextEncoder(nn.Module):
    """Embeds a context (token ids, or a count vector in session mode) and runs an LSTM over it."""

    def __init__(self, m: int, embed: int, hidden: int, layers: int, extra: int = 0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(m, embed, padding_idx=PAD)
        self.lstm = nn.LSTM(embed + extra, hidden, num_layers=layers, batch_first=True)

    def forward(self, context: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        # (B, k) token ids, or (B, m) log counts: their embedding bag, a sequence of one step
        x = self.embedding(context) if context.dtype == torch.long else (context @ self.embedding.weight).unsqueeze(1)
        if extra is not None:
            x = torch.cat([x, extra.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)
        out, _ = self.lstm(x)
        return out[:, -1]


class Generator(nn.Module):
    """Noise + embedded context -> 2-layer LSTM -> logits of m independent occurrence probabilities."""

    def __init__(self, p: LogGANParams, m: int) -> None:
        super().__init__()
        self.encoder = ContextEncoder(m, p.embed, p.hidden, p.layers, extra=p.noise)
        self.out = nn.Linear(p.hidden, m)

    def forward(self, context: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.encoder(context, z))


class Discriminator(nn.Module):
    """LSTM over the context, concatenated with the m-dim vector, 2-layer MLP -> real/fake logit."""

    def __init__(self, p: LogGANParams, m: int) -> None:
        super().__init__()
        self.encoder = ContextEncoder(m, p.embed, p.hidden, p.layers)
        self.mlp = nn.Sequential(nn.Linear(p.hidden + m, p.hidden), nn.ReLU(), nn.Linear(p.hidden, 1))

    def forward(self, context: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([self.encoder(context), vector], dim=1)).squeeze(1)


class LogGANModule(nn.Module):
    def __init__(self, p: LogGANParams) -> None:
        super().__init__()
        m = N_SPECIAL + p.buckets
        self.generator = Generator(p, m)
        self.discriminator = Discriminator(p, m)


@dataclass
class Samples:
    """Training or scoring samples: one context and its observed event(s) each."""

    contexts: list[tuple]  # tensors are built per batch: session-mode count vectors are m wide
    targets: list[list[int]]  # observed events per sample (multi-hot positions)


@register
class LogGAN(Detector):
    name = "loggan"
    Params = LogGANParams
    THRESHOLD_MODES = ("quantile", "probability")

    def __init__(self, params: LogGANParams, seed: int = 42, device: str = "auto") -> None:
        super().__init__(params, seed, device)
        if params.mode not in MODES:
            raise ValueError(f"loggan.mode must be one of {MODES}, not {params.mode!r}")
        if params.negatives not in NEGATIVES:
            raise ValueError(f"loggan.negatives must be one of {NEGATIVES}, not {params.negatives!r}")
        seed_everything(seed)
        self.m = N_SPECIAL + params.buckets
        self._module = LogGANModule(params).to(self.device)
        # events negatives may be drawn from: every event, or with negatives = "own" those of bind()'s windows
        self._own: torch.Tensor | None = torch.ones(self.m, dtype=torch.bool) if params.negatives == "all" else None

    @property
    def module(self) -> nn.Module:
        return self._module

    def bind(self, context: LocalContext) -> None:
        """With ``negatives = "own"``: the events of this silo's normal training windows."""
        super().bind(context)
        if self.params.negatives == "own":
            self._own = torch.zeros(self.m, dtype=torch.bool)
            for w in context.train:
                if w.label == NORMAL:
                    self._own[self._tokens(w)] = True

    # -- samples ----------------------------------------------------------------------------

    def _tokens(self, window: Window) -> list[int]:
        return [token_of(e, self.params.buckets) for e in window.events]

    def _line_keys(self, window: Window) -> list[tuple]:
        """(context, event) per line: the hashable unit a line is scored by."""
        tokens = self._tokens(window)
        if self.params.mode == "log":
            k = self.params.context
            padded = [PAD] * k + tokens
            return [(tuple(padded[i : i + k]), t) for i, t in enumerate(tokens)]
        counts: dict[int, int] = {}
        for t in tokens:
            counts[t] = counts.get(t, 0) + 1
        bag = tuple(sorted(counts.items()))
        return [(tuple((u, c) for u, c in bag if u != t), t) for t in tokens]

    def _context_tensor(self, contexts: Sequence[tuple]) -> torch.Tensor:
        if self.params.mode == "log":
            return torch.tensor(contexts, dtype=torch.long).reshape(len(contexts), self.params.context)
        out = torch.zeros(len(contexts), self.m)
        for row, bag in enumerate(contexts):
            for t, c in bag:
                out[row, t] = math.log1p(c)
        return out

    def _training_samples(self, windows: Sequence[Window]) -> Samples:
        """The set C of distinct contexts in the normal windows (as in the paper), each with the
        multi-hot set of events observed right after it."""
        observed: dict[tuple, set[int]] = {}
        for w in windows:
            if w.label == NORMAL:
                for context, event in self._line_keys(w):
                    observed.setdefault(context, set()).add(event)
        if not observed:
            raise ValueError("LogGAN trains on normal windows and this split has none")
        return Samples(list(observed), [sorted(events) for events in observed.values()])

    def _multi_hot(self, targets: Sequence[list[int]]) -> torch.Tensor:
        out = torch.zeros(len(targets), self.m, device=self.device)
        for row, events in enumerate(targets):
            out[row, events] = 1.0
        return out

    # -- training -----------------------------------------------------------------------------

    def train_round(self, train: Sequence[Window], round_idx: int, epochs: int) -> dict[str, float]:
        samples = self._training_samples(train)
        gen, disc = self._module.generator, self._module.discriminator
        opt_g = torch.optim.Adam(gen.parameters(), lr=self.params.lr)
        opt_d = torch.optim.Adam(disc.parameters(), lr=self.params.lr)
        self._module.train()
        self.seed_round(round_idx)
        g_losses, d_losses, recon = [], [], []
        n, bs = len(samples.targets), self.params.batch_size
        for _ in range(epochs * self.params.passes):
            order = torch.randperm(n, generator=self._rng)
            for lo in range(0, n, bs):
                idx = order[lo : lo + bs].tolist()
                context = self._context_tensor([samples.contexts[i] for i in idx]).to(self.device)
                real = self._multi_hot([samples.targets[i] for i in idx])
                g_loss, r_loss = self._generator_step(context, real, opt_g)
                d_losses.append(self._discriminator_step(context, real, opt_d))
                g_losses.append(g_loss)
                recon.append(r_loss)
        return {
            "loss": float(np.mean(g_losses)),
            "examples": n,
            "d_loss": float(np.mean(d_losses)),
            "recon": float(np.mean(recon)),
        }

    @property
    def own(self) -> torch.Tensor:
        if self._own is None:
            raise RuntimeError('loggan.negatives = "own" needs bind(context) first: it names the silo\'s events')
        return self._own

    def _observed_mask(self, real: torch.Tensor) -> torch.Tensor:
        """o: the observed events plus a neg_ratio share of the unobserved ones."""
        draw = torch.rand(real.shape, generator=self._rng).to(self.device) < self.params.neg_ratio
        return ((real > 0) | (draw & self.own.to(self.device))).float()

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.params.noise, generator=self._rng).to(self.device)

    def _generator_step(self, context, real, opt) -> tuple[float, float]:
        gen, disc = self._module.generator, self._module.discriminator
        mask = self._observed_mask(real)
        logits = gen(context, self._noise(len(real)))
        fake = torch.sigmoid(logits) * mask
        adversarial = F.binary_cross_entropy_with_logits(disc(context, fake), torch.ones(len(real), device=self.device))
        err = F.binary_cross_entropy_with_logits(logits, real, reduction="none")
        negatives = mask * (1 - real)
        recon = (err * real).sum(1) / real.sum(1).clamp_min(1)
        recon = recon + (err * negatives).sum(1) / negatives.sum(1).clamp_min(1)
        loss = adversarial + self.params.recon_weight * recon.mean() + self.proximal_loss()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), 1.0)
        opt.step()
        return loss.item(), recon.mean().item()

    def _discriminator_step(self, context, real, opt) -> float:
        gen, disc = self._module.generator, self._module.discriminator
        with torch.no_grad():
            fake = torch.sigmoid(gen(context, self._noise(len(real)))) * self._observed_mask(real)
        logits = disc(torch.cat([context, context]), torch.cat([real, fake]))
        labels = torch.cat([torch.ones(len(real)), torch.zeros(len(real))]).to(self.device)
        loss = F.binary_cross_entropy_with_logits(logits, labels) + self.proximal_loss()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(disc.parameters(), 1.0)
        opt.step()
        return loss.item()

    # -- inference ----------------------------------------------------------------------------

    @torch.no_grad()
    def line_scores(self, windows: Sequence[Window]) -> list[np.ndarray]:
        """-log p(event | context) per line: the native per-line score (no occlusion)."""
        per_window = [self._line_keys(w) for w in windows]
        unique = list(dict.fromkeys(key for keys in per_window for key in keys))
        if not unique:
            return [np.zeros(0) for _ in windows]
        index = {key: i for i, key in enumerate(unique)}
        gen = self._module.generator
        self._module.eval()
        surprise = np.empty(len(unique))
        bs = 4096
        for lo in range(0, len(unique), bs):
            chunk = unique[lo : lo + bs]
            context = self._context_tensor([c for c, _ in chunk]).to(self.device)
            events = torch.tensor([e for _, e in chunk], device=self.device)
            logits = gen(context, torch.zeros(len(chunk), self.params.noise, device=self.device))
            picked = logits.gather(1, events.unsqueeze(1)).squeeze(1)
            surprise[lo : lo + len(chunk)] = F.softplus(-picked).cpu().numpy()  # -log sigmoid
        if self.params.negatives == "own":  # never trained down here: above every event this silo saw
            surprise[~self.own[[e for _, e in unique]].numpy()] += UNSEEN
        return [surprise[[index[key] for key in keys]] if keys else np.zeros(0) for keys in per_window]

    def score(self, windows: Sequence[Window]) -> np.ndarray:
        """A window is as abnormal as its most improbable line."""
        return np.array([s.max() if len(s) else 0.0 for s in self.line_scores(windows)])

    def threshold(self, val: Sequence[Window], train: Sequence[Window] = ()) -> float:
        if self.params.threshold_mode == "probability":
            self.threshold_source = "fixed-line-probability"
            return -math.log(self.params.line_probability)
        return super().threshold(val, train)
