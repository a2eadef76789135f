"""What a ClientApp does with its silo, free of Flower types (so the CLI can reuse it).

One ``SiloClient`` per process and silo: the prepared silo and the detector
are built once and kept, so later rounds only load the global parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from fedlog.config import RunSettings
from fedlog.detectors import Detector, build_detector
from fedlog.explain.shap_ids import IdExplanation, explain_split
from fedlog.parse.hashing import federation_key
from fedlog.silo import PreparedSilo, SiloSource, prepare_silo

log = logging.getLogger(__name__)


@dataclass
class SiloClient:
    name: str
    silo: PreparedSilo
    detector: Detector

    @classmethod
    def build(cls, settings: RunSettings, source: SiloSource, state_dir: Path | None = None) -> SiloClient:
        silo = prepare_silo(source, settings.split, federation_key(), state_dir)
        detector = build_detector(settings.detector, settings.detector_config(), settings.seed)
        detector.use_templates(silo.templates)
        detector.attach(Path(silo.state_dir), silo.split)
        log.info("silo %s ready: %s", source.fmt, silo.describe()["split"])
        return cls(source.fmt, silo, detector)

    def train(
        self, state: Mapping[str, torch.Tensor], round_idx: int, epochs: int, proximal_mu: float = 0.0
    ) -> dict[str, float]:
        """Local training from the global state; reports what every strategy may weigh by:
        the update's Frobenius norm and the validation accuracy of the trained model."""
        self.detector.load_state(state)
        self.detector.set_proximal(proximal_mu)
        stats = self.detector.train_round(self.silo.split.train, round_idx, epochs)
        trained = self.detector.state()
        norm = sum(float(((trained[k].double() - state[k].double()) ** 2).sum()) for k in trained) ** 0.5
        accuracy, labelled = self.detector.validation_accuracy(self.silo.split)
        return stats | {"update-norm": norm, "val-accuracy": accuracy, "val-labelled": float(labelled)}

    @property
    def histogram(self) -> dict[str, int]:
        """Counts of hashed event ids in the training split (ids and counts only)."""
        return self.silo.train_histogram

    def evaluate(self, state: Mapping[str, torch.Tensor] | None = None) -> dict[str, float]:
        """Test-split metrics at the label-free threshold from validation normals."""
        if state is not None:
            self.detector.load_state(state)
        return self.detector.evaluate_split(self.silo.split)

    def explain(self, samples: int, top_n: int, seed: int) -> IdExplanation:
        """SHAP over a label-free sample of test windows, mapped onto the top-N event ids."""
        explanation, _ = explain_split(self.detector, self.silo.split, samples, top_n, seed)
        return explanation


_CLIENTS: dict[tuple, SiloClient] = {}


def client_for(settings: RunSettings, entry: str, state_dir: Path | None = None) -> SiloClient:
    """The process-wide client of a silo entry (built on first use)."""
    key = (entry, settings.detector, tuple(sorted(settings.raw.items())))
    if key not in _CLIENTS:
        _CLIENTS[key] = SiloClient.build(settings, settings.silo_source(entry, state_dir), state_dir)
    return _CLIENTS[key]
