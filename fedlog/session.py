"""One silo session: a prepared silo plus the detector bound to it, built in one place.

The ClientApp, ``fedlog train``, ``fedlog detect``, ``fedlog explain`` and
``fedlog bench infer`` all open a ``SiloSession``, so a detector always gets its
client-local context (templates, state directory, training and validation
windows) the same way, through ``Detector.bind``, before it trains or scores.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from fedlog.config import RunSettings
from fedlog.detectors import Detector, build_detector
from fedlog.detectors.base import LocalContext
from fedlog.explain.shap_ids import IdExplanation, explain_split
from fedlog.parse.hashing import federation_key
from fedlog.rundir import load_global_state
from fedlog.silo import PreparedSilo, SiloSource, prepare_silo
from fedlog.windows import Split, Window

log = logging.getLogger(__name__)


def new_detector(settings: RunSettings, device: str = "auto") -> Detector:
    """The run's detector, unbound: the server's initial model, or a client's before ``bind``."""
    return build_detector(settings.detector, settings.detector_config(), settings.seed, device=device)


def local_context(silo: PreparedSilo) -> LocalContext:
    """What a detector may know of this silo: never the test windows."""
    return LocalContext(silo.templates, Path(silo.state_dir), silo.split.train, silo.split.val)


def update_norm(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor]) -> float:
    """||after - before||_F over every tensor (in float64, so clients and server agree)."""
    return sum(float(((after[k].double() - before[k].double()) ** 2).sum()) for k in after) ** 0.5


@dataclass
class SiloSession:
    settings: RunSettings
    source: SiloSource
    silo: PreparedSilo
    detector: Detector

    @classmethod
    def open(cls, settings: RunSettings, entry: str, state_dir: Path | None = None) -> SiloSession:
        """Prepare the silo named by ``entry`` (``format=path``), build the detector, bind it."""
        source = settings.silo_source(entry, state_dir)
        silo = prepare_silo(source, settings.split, federation_key(), state_dir)
        detector = new_detector(settings)
        detector.bind(local_context(silo))
        log.info("silo %s ready: %s", source.fmt, silo.describe()["split"])
        return cls(settings, source, silo, detector)

    @classmethod
    def open_pooled(
        cls, settings: RunSettings, entries: Sequence[str], state_dir: Path | None = None
    ) -> tuple[SiloSession, list[PreparedSilo]]:
        """One detector on every silo's training windows together: the upper reference a federation
        tries to reach (no privacy). Returns the pooled session and each silo, to be evaluated on its
        own test windows at its own label-free threshold."""
        silos = [
            prepare_silo(settings.silo_source(e, state_dir), settings.split, federation_key(), state_dir)
            for e in entries
        ]
        split = Split(
            train=[w for s in silos for w in s.split.train],
            val=[w for s in silos for w in s.split.val],
            test=[w for s in silos for w in s.split.test],
        )
        templates = {eid: t for s in silos for eid, t in s.templates.items()}
        histogram = Counter()
        for s in silos:
            histogram.update(s.train_histogram)
        digest = hashlib.sha256("|".join(s.state_dir for s in silos).encode()).hexdigest()[:16]
        pooled_dir = Path(silos[0].state_dir).parent / f"pooled-{digest}"  # the pooled model's caches
        merged = PreparedSilo(
            "pooled", split, [src for s in silos for src in s.sources], {}, {}, str(pooled_dir), dict(histogram)
        )
        detector = new_detector(settings)
        detector.bind(LocalContext(templates, pooled_dir, split.train, split.val))
        source = SiloSource("pooled", ", ".join(entries))
        return cls(settings, source, merged, detector), silos

    @property
    def name(self) -> str:
        return self.source.fmt

    @property
    def histogram(self) -> dict[str, int]:
        """Counts of hashed event ids in the training split (ids and counts only)."""
        return self.silo.train_histogram

    def train(
        self, state: Mapping[str, torch.Tensor], round_idx: int, epochs: int, proximal_mu: float = 0.0
    ) -> dict[str, float]:
        """Local training from the global state; reports what every strategy may weigh by:
        the update's Frobenius norm and the validation accuracy of the trained model."""
        self.detector.load_state(state)
        self.detector.set_proximal(proximal_mu)
        stats = self.detector.train_round(self.silo.split.train, round_idx, epochs)
        accuracy, labelled = self.detector.validation_accuracy(self.silo.split)
        norm = update_norm(state, self.detector.state())
        return stats | {"update-norm": norm, "val-accuracy": accuracy, "val-labelled": float(labelled)}

    def train_locally(self, rounds: int, epochs: int) -> Iterator[tuple[int, dict[str, float]]]:
        """Rounds 1..``rounds`` on this silo alone, from the detector's current parameters (no federation)."""
        for round_idx in range(1, rounds + 1):
            yield round_idx, self.detector.train_round(self.silo.split.train, round_idx, epochs)

    def evaluate(self, state: Mapping[str, torch.Tensor] | None = None) -> dict[str, float]:
        """Test-split metrics at the label-free threshold from validation normals."""
        if state is not None:
            self.detector.load_state(state)
        return self.detector.evaluate_split(self.silo.split)

    def explain(self, samples: int, top_n: int, seed: int) -> tuple[IdExplanation, list[Window]]:
        """SHAP over a label-free sample of test windows, mapped onto the top-N event ids."""
        return explain_split(self.detector, self.silo.split, samples, top_n, seed)

    def load_run(self, run_dir: Path, round_idx: int | None = None) -> int:
        """Load a finished run's global parameters (the last round by default); returns the round."""
        chosen, state = load_global_state(run_dir, round_idx)
        self.detector.load_state(state)
        return chosen
