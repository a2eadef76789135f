"""Centralized training on one silo, without Flower, for comparison with federated runs.

Same schedule as a federation of one (``num-server-rounds`` x ``local-epochs``),
same evaluation, same run directory and summary.json shape.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedlog.config import RunSettings
from fedlog.detectors import build_detector
from fedlog.parse.hashing import federation_key
from fedlog.rundir import RunDirectory
from fedlog.silo import prepare_silo


def train_centralized(config: Mapping[str, Any], silo: str = "") -> Path:
    settings = RunSettings.from_flat(config)
    entry = silo or settings.silo_entries[0]
    source = settings.silo_source(entry)
    run = RunDirectory.create(
        settings.output_dir,
        f"{settings.detector}-centralized-{source.fmt}",
        dict(config) | {"strategy": "centralized", "silo": entry},
    )
    print(f"[fedlog] run directory: {run.path}", flush=True)
    prepared = prepare_silo(source, settings.split, federation_key())
    detector = build_detector(settings.detector, settings.detector_config(), settings.seed)
    detector.use_templates(prepared.templates)
    detector.attach(Path(prepared.state_dir), prepared.split)
    metrics: dict[str, float] = {}
    for round_idx in range(1, settings.num_rounds + 1):
        started = time.time()
        stats = detector.train_round(prepared.split.train, round_idx, settings.local_epochs)
        metrics = detector.evaluate_split(prepared.split)
        run.save_parameters(round_idx, detector.state())
        run.append_round(
            {
                "round": round_idx,
                "silos": {source.fmt: {"train": stats, "eval": metrics}},
                "seconds": round(time.time() - started, 2),
            }
        )
        print(
            f"[fedlog] round {round_idx}: {source.fmt} F1={metrics['f1']:.3f} loss={stats['loss']:.4f}",
            flush=True,
        )
    run.finish({source.fmt: metrics}, {"silo": prepared.describe(), "threshold_source": detector.threshold_source})
    return run.path
