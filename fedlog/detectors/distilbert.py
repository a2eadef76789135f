"""Distilled BERT (FedXLog 3.2.2): a local teacher, a federated student.

Input: a window's event ids joined by spaces (an unknown event is the word
``unknown``). We tokenize word-level, one token per id: token =
``N_SPECIAL + int(id, 16) mod buckets`` (the shared hashed token space of
``fedlog.parse.hashing``). WordPiece would split an 8-hex id into several
pieces (``d63ef163`` -> ``d``, ``##6``, ``##3`` ...), so a 128-token budget
would hold a fraction of the window, every forward would cost several times
more, and SHAP values would land on pieces that must be regrouped; the pieces
carry no meaning anyway (ids are keyed hashes). With one token per id, every
client maps the same template to the same token without sharing a vocabulary,
and a SHAP value on a token is the value of that id. Pretrained checkpoints
keep their transformer layers; their word embeddings are resized to the
hashed space (WordPiece vectors say nothing about hash ids).

Teacher: a BERT sequence classifier (``teacher-model``: local dir, packaged
alias such as ``all-MiniLM-L6-v2``, or hub id; empty = a BERT built from the
sizes below) fine-tuned once on the client's labelled training windows with
AdamW + linear warm-up and early stopping on validation loss. Its logits and
attributions on the training chunks are cached in memory and in the client's
state directory, so it runs once per silo, not every round. The teacher never
leaves the client.

Student (the federated ``module``): every other teacher layer (or
``student-layers`` evenly spaced ones) with the teacher's embeddings and head,
copied from the *initial* teacher so the server and every client start from
the same student; trained with KD + CE + attribution loss (``distill.py``).

A client without labelled anomalies in its training windows has nothing to
fine-tune a classifier on: it trains no teacher and its student round is
hard-label CE on its (normal) windows only, so it still teaches the federation
what normal looks like on its systems; ``teacher`` = 0 in its train metrics
says so.

Windows longer than ``max-len - 1`` events are cut into chunks (each with the
window's label in training); a window scores as its most anomalous chunk.
Score = the student's anomaly probability. Threshold (``threshold-mode``):
"quantile" is the base class's 0.99 quantile of validation-normal scores.
A supervised model squeezes normals near 0, so that quantile sits just above
the validation normals and later, slightly drifted normal traffic crosses it
(HDFS sample: teacher AUROC 0.997, precision 0.06). "midpoint" (default) puts
the threshold halfway between that quantile and the median score of the
client's *training* anomalies (labels it has already trained on), never below
the quantile: in the gap the model learnt, and equal to the quantile while the
model has not separated anything yet. A fixed 0.5 fails the other way: an
under-trained federated student ranks well (AUROC 0.99) with every
probability below 0.5. Clients without training anomalies use the quantile.
No label of an evaluated window is ever used.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertForSequenceClassification, get_linear_schedule_with_warmup

from fedlog.data.records import ANOMALY, NORMAL
from fedlog.detectors.base import (
    MIN_VAL_NORMAL,
    Detector,
    LocalContext,
    register,
    robust_quantile,
    seed_everything,
)
from fedlog.detectors.distill import (
    attribution_loss,
    attributions,
    count_parameters,
    distil,
    kd_loss,
    student_layers,
)
from fedlog.detectors.sequences import chunk, cls_batch
from fedlog.explain.text import window_text
from fedlog.metrics import detection_metrics
from fedlog.parse.hashing import N_SPECIAL, PAD, token_of
from fedlog.pretrained import resolve_pretrained
from fedlog.windows import Split, Window

log = logging.getLogger(__name__)

TEACHER_PREFIX = "teacher-"
TEACHER_METRICS = ("precision", "recall", "f1", "auroc", "aupr")


@dataclass
class DistilBertParams:
    """Defaults are sized for a 2-core CPU; ``configs/fedxlog-paper.toml`` has the paper's setting."""

    teacher_model: str = ""  # "" = BERT from the sizes below; local dir | package alias | hub id (paper: BERT-base)
    hidden: int = 128  # teacher hidden size when built from sizes
    layers: int = 4  # teacher layers when built from sizes
    heads: int = 4
    ffn: int = 256
    student_layers: int = 0  # 0 = every other teacher layer (DistilBERT); N = N evenly spaced teacher layers
    buckets: int = 4096  # hashed token space: id -> N_SPECIAL + int(id, 16) mod buckets
    max_len: int = 64  # tokens per chunk including [CLS] (paper: 128)
    teacher_epochs: int = 3  # local fine-tuning epochs of the teacher (once per silo)
    teacher_patience: int = 5  # stop the teacher after this many epochs without a better validation loss
    teacher_lr: float = 5e-4
    lr: float = 5e-4  # student, per round
    warmup: float = 0.1  # share of a run's optimizer steps with linear warm-up (then linear decay)
    batch_size: int = 32
    temperature: float = 2.0  # KD softening
    kd_weight: float = 0.5  # loss = kd * KD + (1 - kd) * CE + attr * attribution
    attr_weight: float = 0.05  # 0.5 kept the student below chance on HDFS (README, distilled BERT)
    threshold_quantile: float = 0.99
    threshold_mode: str = "midpoint"  # or "quantile" (q of validation-normal scores, the base class)


@dataclass
class Teacher:
    """A fine-tuned teacher and what the student learns from it (client-local)."""

    model: BertForSequenceClassification
    logits: torch.Tensor  # per training chunk
    attributions: list[torch.Tensor]  # per training chunk, over its real tokens
    epochs: int
    val_loss: float


_TEACHERS: dict[str, Teacher] = {}  # process-wide: one fine-tuning per silo and setting


def class_weights(labels: torch.Tensor) -> torch.Tensor:
    """Inverse class frequencies (mean 1): with 3% anomalies, plain CE first settles on the
    class prior for every window, a plateau a small BERT leaves only after many epochs."""
    counts = torch.bincount(labels, minlength=2).float().clamp_min(1)
    return counts.sum() / (2 * counts)


@register
class DistilBert(Detector):
    name = "distilbert"
    Params = DistilBertParams
    THRESHOLD_MODES = ("midpoint", "quantile")
    SUPERVISED = True

    def __init__(self, params: DistilBertParams, seed: int = 42, device: str = "auto") -> None:
        super().__init__(params, seed, device)
        seed_everything(seed)
        initial = self._initial_teacher()
        self.keep = student_layers(initial.config.num_hidden_layers, params.student_layers)
        self._student = distil(initial, self.keep).to(self.device)
        self.teacher_parameters = count_parameters(initial)
        self.state_dir: Path | None = None
        self.val: Sequence[Window] = ()
        self._teacher: Teacher | None = None
        self._teacher_eval: dict[str, float] | None = None

    @property
    def module(self) -> nn.Module:
        return self._student

    def bind(self, context: LocalContext) -> None:
        """The teacher is cached in the client's state directory (never sent) and stops early on
        the split's validation windows."""
        super().bind(context)
        self.state_dir = context.state_dir
        self.val = context.val

    # -- models -------------------------------------------------------------------------------

    def _initial_teacher(self) -> BertForSequenceClassification:
        """The teacher before fine-tuning; the same at the server and every client (same seed)."""
        p = self.params
        torch.manual_seed(self.seed)
        vocab = N_SPECIAL + p.buckets
        if p.teacher_model:
            model = BertForSequenceClassification.from_pretrained(
                resolve_pretrained(p.teacher_model), num_labels=2, attn_implementation="eager"
            )
            model.resize_token_embeddings(vocab)
            model.config.pad_token_id = PAD
            if model.config.max_position_embeddings < p.max_len:
                raise ValueError(f"{p.teacher_model}: at most {model.config.max_position_embeddings} positions")
            return model
        config = BertConfig(
            vocab_size=vocab,
            hidden_size=p.hidden,
            num_hidden_layers=p.layers,
            num_attention_heads=p.heads,
            intermediate_size=p.ffn,
            max_position_embeddings=p.max_len,
            pad_token_id=PAD,
            num_labels=2,
            attn_implementation="eager",  # double backward (attribution loss) and plain CPU kernels
        )
        return BertForSequenceClassification(config)

    # -- data ---------------------------------------------------------------------------------

    def _tokens(self, events: Sequence[str | None]) -> list[int]:
        return [token_of(e, self.params.buckets) for e in events]

    def _chunks(self, windows: Sequence[Window]) -> tuple[list[list[int]], np.ndarray]:
        """Token chunks of at most max_len - 1 events (an empty window is one empty chunk)."""
        return chunk([self._tokens(w.events) for w in windows], self.params.max_len - 1)

    def _batch(self, chunks: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return cls_batch(chunks, self.device)

    def _labelled_chunks(self, windows: Sequence[Window]) -> tuple[list[list[int]], torch.Tensor]:
        labelled = [w for w in windows if w.label in (NORMAL, ANOMALY)]
        chunks, owner = self._chunks(labelled)
        labels = torch.tensor([labelled[i].label for i in owner], dtype=torch.long)
        return chunks, labels

    # -- teacher ------------------------------------------------------------------------------

    def _teacher_key(self, chunks: Sequence[list[int]], labels: torch.Tensor, val: Sequence[Window]) -> str:
        p = asdict(self.params)
        fields = ("teacher_model", "hidden", "layers", "heads", "ffn", "buckets", "max_len")
        settings = [p[f] for f in fields] + [p["teacher_epochs"], p["teacher_patience"], p["teacher_lr"]]
        digest = hashlib.sha256(repr((settings, p["warmup"], p["batch_size"], self.seed)).encode())
        for c, y in zip(chunks, labels.tolist()):
            digest.update(repr((c, y)).encode())
        digest.update(repr([window_text(w) + str(w.label) for w in val]).encode())
        return digest.hexdigest()[:16]

    def teacher(self, train: Sequence[Window], val: Sequence[Window]) -> Teacher | None:
        """The client's fine-tuned teacher: from memory, the state directory, or trained now;
        None when the training windows hold no labelled anomaly."""
        if self._teacher is not None:
            return self._teacher
        chunks, labels = self._labelled_chunks(train)
        if not (labels == ANOMALY).any():
            log.warning("distilbert: no labelled anomaly in the training windows: no teacher, student trains on CE")
            return None
        key = self._teacher_key(chunks, labels, val)
        cached = self.state_dir / "distilbert" / f"teacher-{key}.pt" if self.state_dir else None
        if key in _TEACHERS:
            self._teacher = _TEACHERS[key]
        elif cached is not None and cached.exists():
            saved = torch.load(cached, weights_only=False)
            model = self._initial_teacher()
            model.load_state_dict(saved["state"])
            self._teacher = Teacher(model.to(self.device).eval(), *saved["rest"])
        else:
            self._teacher = self._fit_teacher(chunks, labels, val)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                t = self._teacher
                rest = (t.logits, t.attributions, t.epochs, t.val_loss)
                torch.save({"state": {k: v.cpu() for k, v in t.model.state_dict().items()}, "rest": rest}, cached)
        _TEACHERS[key] = self._teacher
        return self._teacher

    def _fit_teacher(self, chunks: list[list[int]], labels: torch.Tensor, val: Sequence[Window]) -> Teacher:
        p = self.params
        model = self._initial_teacher().to(self.device)
        val_chunks, val_labels = self._labelled_chunks(val)
        gen = torch.Generator().manual_seed(self.seed + 101)
        torch.manual_seed(self.seed + 101)
        steps = p.teacher_epochs * math.ceil(len(chunks) / p.batch_size)
        opt, sched = self._optimizer(model, p.teacher_lr, steps)
        weight = class_weights(labels).to(self.device)
        best, best_state, stale, epochs = math.inf, None, 0, 0
        for epoch in range(p.teacher_epochs):
            model.train()
            for idx in torch.randperm(len(chunks), generator=gen).split(p.batch_size):
                tokens, attention = self._batch([chunks[i] for i in idx])
                logits = model(input_ids=tokens, attention_mask=attention).logits
                loss = F.cross_entropy(logits, labels[idx].to(self.device), weight=weight)
                self._step(model, opt, sched, loss)
            epochs = epoch + 1
            val_loss = self._loss_on(model, val_chunks, val_labels) if val_chunks else -epoch
            if val_loss < best:
                best, stale = val_loss, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if stale >= p.teacher_patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        logits, attrs = [], []
        for lo in range(0, len(chunks), 256):
            batch = chunks[lo : lo + 256]
            tokens, attention = self._batch(batch)
            out, dist = attributions(model, tokens, attention, create_graph=False)
            logits.append(out.detach().cpu())
            attrs += [dist[i, 1 : 1 + len(c)].detach().cpu() for i, c in enumerate(batch)]
        log.info("distilbert: teacher fine-tuned for %d epoch(s), validation loss %.4f", epochs, best)
        return Teacher(model, torch.cat(logits), attrs, epochs, float(best))

    @torch.no_grad()
    def _loss_on(self, model: nn.Module, chunks: list[list[int]], labels: torch.Tensor) -> float:
        model.eval()
        total = 0.0
        for lo in range(0, len(chunks), 256):
            tokens, attention = self._batch(chunks[lo : lo + 256])
            logits = model(input_ids=tokens, attention_mask=attention).logits
            total += float(F.cross_entropy(logits, labels[lo : lo + 256].to(self.device), reduction="sum"))
        return total / len(chunks)

    def _optimizer(self, model: nn.Module, lr: float, steps: int):
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        sched = get_linear_schedule_with_warmup(opt, int(self.params.warmup * steps), max(steps, 1))
        return opt, sched

    def _step(self, model: nn.Module, opt, sched, loss: torch.Tensor) -> None:
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()

    # -- student ------------------------------------------------------------------------------

    def train_round(self, train: Sequence[Window], round_idx: int, epochs: int) -> dict[str, float]:
        p = self.params
        teacher = self.teacher(train, self.val)
        chunks, labels = self._labelled_chunks(train)
        if not chunks:
            raise ValueError("distilbert: no labelled training windows")
        self.seed_round(round_idx)
        steps = epochs * math.ceil(len(chunks) / p.batch_size)
        opt, sched = self._optimizer(self._student, p.lr, steps)
        weight = class_weights(labels).to(self.device)
        self._student.train()
        sums = {"loss": 0.0, "ce": 0.0, "kd": 0.0, "attr": 0.0}
        n_batches = 0
        for _ in range(epochs):
            for idx in torch.randperm(len(chunks), generator=self._rng).split(p.batch_size):
                batch = [chunks[i] for i in idx]
                tokens, attention = self._batch(batch)
                y = labels[idx].to(self.device)
                if teacher is None:
                    logits = self._student(input_ids=tokens, attention_mask=attention).logits
                    ce = F.cross_entropy(logits, y, weight=weight)
                    kd = attr = torch.zeros((), device=self.device)
                    loss = ce
                else:
                    if p.attr_weight > 0:
                        logits, dist = attributions(self._student, tokens, attention, create_graph=True)
                        target = torch.zeros_like(dist)
                        for row, i in enumerate(idx.tolist()):
                            target[row, 1 : 1 + len(chunks[i])] = teacher.attributions[i].to(self.device)
                        attr = attribution_loss(dist, target, tokens)
                    else:
                        logits = self._student(input_ids=tokens, attention_mask=attention).logits
                        attr = torch.zeros((), device=self.device)
                    ce = F.cross_entropy(logits, y, weight=weight)
                    kd = kd_loss(logits, teacher.logits[idx].to(self.device), p.temperature)
                    loss = p.kd_weight * kd + (1 - p.kd_weight) * ce + p.attr_weight * attr
                loss = loss + self.proximal_loss()
                self._step(self._student, opt, sched, loss)
                for name, value in (("loss", loss), ("ce", ce), ("kd", kd), ("attr", attr)):
                    sums[name] += value.item()
                n_batches += 1
        return {k: v / max(n_batches, 1) for k, v in sums.items()} | {
            "examples": len(chunks),
            "teacher": float(teacher is not None),
        }

    # -- inference ----------------------------------------------------------------------------

    @torch.no_grad()
    def probabilities(self, model: nn.Module, windows: Sequence[Window]) -> np.ndarray:
        """Anomaly probability per window under ``model`` (the student, the teacher, a quantized copy)."""
        if not windows:
            return np.zeros(0)
        chunks, owner = self._chunks(windows)
        model.eval()
        probs = np.empty(len(chunks))
        order = np.argsort([len(c) for c in chunks], kind="stable")  # similar lengths batch well
        for lo in range(0, len(order), 256):
            idx = order[lo : lo + 256]
            tokens, attention = self._batch([chunks[i] for i in idx])
            probs[idx] = model(input_ids=tokens, attention_mask=attention).logits.softmax(-1)[:, 1].cpu().numpy()
        scores = np.full(len(windows), -math.inf)
        np.maximum.at(scores, owner, probs)
        return scores

    def score(self, windows: Sequence[Window]) -> np.ndarray:
        """The student's anomaly probability (of the window's most anomalous chunk)."""
        return self.probabilities(self._student, windows)

    def teacher_metrics(self, split: Split) -> dict[str, float]:
        """The teacher's test figures at its own label-free threshold (q of validation-normal
        scores), computed once; NaN where the client has no teacher."""
        if self._teacher_eval is None:
            teacher = self.teacher(split.train, split.val)
            if teacher is None:
                self._teacher_eval = dict.fromkeys(TEACHER_METRICS, math.nan)
            else:
                threshold = self._threshold_of(teacher.model, split.val, split.train)
                scores = self.probabilities(teacher.model, split.test)
                metrics = detection_metrics([w.label for w in split.test], scores, threshold)
                self._teacher_eval = {k: float(metrics[k]) for k in TEACHER_METRICS}
        return {TEACHER_PREFIX + k: v for k, v in self._teacher_eval.items()}

    def _threshold_of(self, model: nn.Module, val: Sequence[Window], train: Sequence[Window]) -> float:
        """``threshold-mode`` for any of our models (student, teacher, quantized student)."""
        normal = [w for w in val if w.label == NORMAL]
        self.threshold_source = "validation-normal"
        if len(normal) < MIN_VAL_NORMAL:
            normal, self.threshold_source = [w for w in train if w.label == NORMAL], "train-normal"
        if not normal:
            raise ValueError("no normal windows to set a threshold on")
        base = robust_quantile(self.probabilities(model, normal), self.params.threshold_quantile)
        if self.params.threshold_mode == "quantile":
            return base
        anomalies = [w for w in train if w.label == ANOMALY]
        if not anomalies:
            return base
        self.threshold_source += "+train-anomalies"
        return max(base, (base + float(np.median(self.probabilities(model, anomalies)))) / 2)

    def threshold(self, val: Sequence[Window], train: Sequence[Window] = ()) -> float:
        return self._threshold_of(self._student, val, train)

    def evaluate_split(self, split: Split) -> dict[str, float]:
        """The student's test figures, plus the (fixed) teacher's for comparison."""
        return super().evaluate_split(split) | self.teacher_metrics(split)
