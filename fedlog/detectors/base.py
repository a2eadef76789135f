"""One base class for every detector (deep-loglizer style) and the registry.

A detector trains in rounds (one round = ``epochs`` local epochs; centralized
training is the same schedule with one silo), scores windows, sets its
threshold from normal validation windows only, and exposes the parameters a
federation exchanges as a torch ``nn.Module``.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fedlog.config import params_from_config
from fedlog.data.records import ANOMALY, NORMAL
from fedlog.metrics import MIN_VAL_NORMAL, detection_metrics
from fedlog.windows import Split, Window


def robust_quantile(scores: np.ndarray, q: float) -> float:
    """The q-quantile, but never the sample maximum: with fewer than 1/(1-q) normal
    windows the 0.99 quantile *is* the maximum, and one odd window would set the threshold."""
    n = len(scores)
    level = min(q, (n - 2) / (n - 1)) if n > 2 else q  # (n-2)/(n-1): the second largest value
    return float(np.quantile(scores, level))


@dataclass(frozen=True)
class LocalContext:
    """What a detector may know of its silo beyond the parameters: it never leaves the client.

    ``templates`` maps hashed event ids to the client's own templates (GANFL embeds their text),
    ``state_dir`` holds caches such as a distilled teacher, ``train`` and ``val`` are the split's
    training and validation windows (vocabularies, early stopping). Test windows are never here.
    """

    templates: Mapping[str, str] = field(default_factory=dict)
    state_dir: Path | None = None
    train: Sequence[Window] = ()
    val: Sequence[Window] = ()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Detector(ABC):
    """Subclasses set ``name`` and ``Params`` (a documented dataclass) and register themselves."""

    name: ClassVar[str]
    Params: ClassVar[type]
    THRESHOLD_MODES: ClassVar[tuple[str, ...]] = ("quantile",)  # the first is the base class's quantile
    # Trains on labelled anomalies (GANFL, the distilled student): pseudo-anomalies say nothing about it,
    # so its round is chosen on the split's labelled validation windows where they hold both kinds.
    SUPERVISED: ClassVar[bool] = False

    def __init__(self, params: Any, seed: int = 42, device: str = "auto") -> None:
        mode = getattr(params, "threshold_mode", self.THRESHOLD_MODES[0])
        if mode not in self.THRESHOLD_MODES:
            raise ValueError(
                f"{self.name}.threshold-mode must be one of {', '.join(self.THRESHOLD_MODES)}, not {mode!r}"
            )
        self.params = params
        self.seed = seed
        self._rng = torch.Generator().manual_seed(seed)  # the detector's own sampling (masks, batches)
        self.device = pick_device(device)
        self.threshold_source = ""
        self._anchor: list[torch.Tensor] = []
        self._mu = 0.0
        self.context = LocalContext()

    def seed_round(self, round_idx: int) -> None:
        """A round is a function of (parameters, round, data): a resumed run replays it exactly."""
        torch.manual_seed(self.seed * 1009 + round_idx)
        self._rng.manual_seed(self.seed * 1013 + round_idx)

    @property
    @abstractmethod
    def module(self) -> torch.nn.Module:
        """Everything the federation averages."""

    def bind(self, context: LocalContext) -> None:
        """The one way client-local knowledge reaches a detector, once, before it trains, scores or
        sets a threshold. Subclasses that need more than ``self.context`` extend this."""
        self.context = context

    @abstractmethod
    def train_round(self, train: Sequence[Window], round_idx: int, epochs: int) -> dict[str, float]:
        """Local training for one round; returns at least ``loss`` and ``examples``."""

    @abstractmethod
    def score(self, windows: Sequence[Window]) -> np.ndarray:
        """Anomaly score per window: higher is more anomalous."""

    def threshold(self, val: Sequence[Window], train: Sequence[Window] = ()) -> float:
        """Label-free threshold: a quantile of the scores of normal validation windows.

        Falls back to normal training windows (and says so) when validation has
        too few normal windows to estimate a quantile.
        """
        normal = [w for w in val if w.label == NORMAL]
        self.threshold_source = "validation-normal"
        if len(normal) < MIN_VAL_NORMAL:
            normal = [w for w in train if w.label == NORMAL]
            self.threshold_source = "train-normal"
        if not normal:
            raise ValueError("no normal windows to set a threshold on")
        return robust_quantile(self.score(normal), self.params.threshold_quantile)

    def line_scores(self, windows: Sequence[Window]) -> list[np.ndarray]:
        """How much each line's event type pushes its window's score up, so an alert can point at lines.

        Default: occlusion of whole event types, the window's score minus its score with every line of
        that type left out (every line of a type gets its type's value). Leaving out one line of a long
        window barely moves a worst-chunk or count-based score, and a type that repeats (a retried
        write) is evidence as a whole. Detectors that score lines natively (LogGAN) override this."""
        variants: dict[tuple, Window] = {}  # windows that share a variant score it once
        keys: list[list[tuple]] = []
        for w in windows:
            per_type = {}
            for event in dict.fromkeys(w.events):
                events = [e for e in w.events if e != event]
                per_type[event] = tuple(events)
                variants.setdefault(per_type[event], dataclasses.replace(w, events=events))
            keys.append([per_type[e] for e in w.events])
        scored = dict(zip(variants, self.score(list(variants.values())))) if variants else {}
        full = self.score(windows)
        return [full[i] - np.array([scored[k] for k in window_keys]) for i, window_keys in enumerate(keys)]

    def evaluate(self, test: Sequence[Window], threshold: float) -> dict[str, float]:
        scores = self.score(test)
        return detection_metrics([w.label for w in test], scores, threshold)

    def set_proximal(self, mu: float) -> None:
        """FedProx: keep the current (global) parameters as the anchor of mu/2 ||w - w_global||^2."""
        self._mu = mu
        self._anchor = [p.detach().clone() for p in self.module.parameters()] if mu > 0 else []

    def proximal_loss(self) -> torch.Tensor | float:
        if not self._anchor:
            return 0.0
        params = self.module.parameters()
        return self._mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(params, self._anchor))

    def validation_accuracy(self, split: Split) -> tuple[float, bool]:
        """Accuracy on held-out validation windows at a label-free threshold that they did not set, and
        whether they had anomalies (labelled) or only normal windows (then it is the share kept below
        the threshold).

        The validation part is cut in two chronological halves (``validation_halves``): the first sets
        the threshold (or the training normals, when it has too few normal windows), the second is
        scored. Measured on the windows that set a 0.99 quantile, an all-normal silo would score 0.99
        by construction whatever its model; on the later half it is how well the threshold carries
        over to windows the client has not calibrated on, the way its test windows will be scored."""
        calibration, held_out = validation_halves(split.val)
        threshold = self.threshold(calibration, split.train)
        labels = np.array([w.label for w in held_out])
        predicted = (self.score(held_out) > threshold).astype(int)
        return float((predicted == labels).mean()), bool(labels.any())

    def evaluate_split(self, split: Split) -> dict[str, float]:
        """Test metrics at the label-free threshold set on the split's validation normals, with how many
        normal validation windows there were (the report warns when too few to set a threshold on) and
        the label-free selection score a run picks its round by."""
        threshold = self.threshold(split.val, split.train)
        val_normal = sum(w.label == NORMAL for w in split.val)
        on_labels = float(self._labelled_validation(split) is not None)
        label_free = {"examples": len(split.test), "val-normal": val_normal, "selection": self.selection_score(split)}
        return self.evaluate(split.test, threshold) | label_free | {"selection-on-labels": on_labels}

    def _labelled_validation(self, split: Split) -> list[Window] | None:
        """A supervised detector's validation windows when they hold normal and anomalous ones, else None."""
        labelled = [w for w in split.val if w.label in (NORMAL, ANOMALY)]
        kinds = {w.label for w in labelled}
        return labelled if self.SUPERVISED and kinds == {NORMAL, ANOMALY} else None

    def selection_score(self, split: Split) -> float:
        """How well the model tells normal validation windows from pseudo-anomalies made from them
        (AUROC; higher is better), so a run can pick its round without test labels. A supervised
        detector is scored on its labelled validation windows instead (average precision), when they
        hold both kinds: it is trained to flag real anomalies, and its pseudo-anomaly AUROC falls as
        it learns them (the distilled student on the HDFS protocol: 0.79, 0.65, 0.56 over rounds whose
        test F1 rose 0.62, 0.91, 0.92).

        Each normal validation window (training normals when validation has too few) gets one fixed
        corruption: an event replaced by another event of the training vocabulary, an event dropped,
        or an event repeated three times. The same seed gives the same pseudo-anomalies every round."""
        from sklearn.metrics import average_precision_score, roc_auc_score  # lazily: seconds per ClientApp process

        if (labelled := self._labelled_validation(split)) is not None:
            return float(average_precision_score([w.label for w in labelled], self.score(labelled)))
        normal = [w for w in split.val if w.label == NORMAL and w.events]
        if len(normal) < MIN_VAL_NORMAL:
            normal = [w for w in split.train if w.label == NORMAL and w.events]
        vocabulary = sorted({e for w in split.train for e in w.events if e is not None})
        if not normal or len(vocabulary) < 2:
            return math.nan
        rng = random.Random(self.seed)
        pseudo = []
        for w in normal:
            events, j = list(w.events), rng.randrange(len(w.events))
            kind = rng.randrange(3)
            if kind == 0:
                events[j] = rng.choice([e for e in vocabulary if e != events[j]] or vocabulary)
            elif kind == 1 and len(events) > 1:
                del events[j]
            else:
                events[j:j] = [events[j]] * 2
            pseudo.append(dataclasses.replace(w, events=events))
        scores = self.score(normal + pseudo)
        return float(roc_auc_score([0] * len(normal) + [1] * len(pseudo), scores))

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.module.state_dict().items()}

    def load_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)


def validation_halves(val: Sequence[Window]) -> tuple[Sequence[Window], Sequence[Window]]:
    """The validation windows in time order, cut in two: (threshold calibration, held out for accuracy)."""
    middle = len(val) // 2
    return val[:middle], val[middle:]


# name -> module. A detector's module (and its heavy imports: transformers for the BERT-family ones)
# loads only when that detector is built, because a deployed ClientApp starts a fresh process per message.
DETECTORS: dict[str, str] = {
    name: f"fedlog.detectors.{name}"
    for name in ("deeplog", "distilbert", "fastlogad", "ganfl", "loggan", "pca", "unseen")
}
_CLASSES: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    _CLASSES[cls.name] = cls
    return cls


def detector_class(name: str) -> type[Detector]:
    if name not in DETECTORS:
        raise KeyError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    importlib.import_module(DETECTORS[name])
    return _CLASSES[name]


def build_detector(name: str, config: Mapping[str, Any], seed: int, device: str = "auto") -> Detector:
    cls = detector_class(name)
    return cls(params_from_config(name, cls.Params, config), seed=seed, device=device)
