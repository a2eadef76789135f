"""Centralized training on one silo, without Flower, for comparison with federated runs.

Same schedule as a federation of one (``num-server-rounds`` x ``local-epochs``),
same session, same evaluation, same run directory and summary.json shape.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedlog.config import RunSettings
from fedlog.rundir import RunDirectory
from fedlog.session import SiloSession


def train_centralized(config: Mapping[str, Any], silo: str = "") -> Path:
    settings = RunSettings.from_flat(config)
    entry = silo or settings.silo_entries[0]
    session = SiloSession.open(settings, entry)
    run = RunDirectory.create(
        settings.output_dir,
        f"{settings.detector}-centralized-{session.name}",
        dict(config) | {"strategy": "centralized", "silo": entry},
    )
    print(f"[fedlog] run directory: {run.path}", flush=True)
    metrics: dict[str, float] = {}
    started = time.time()
    for round_idx, stats in session.train_locally(settings.num_rounds, settings.local_epochs):
        metrics = session.evaluate()
        run.save_parameters(round_idx, session.detector.state())
        run.append_round(
            {
                "round": round_idx,
                "silos": {session.name: {"train": stats, "eval": metrics}},
                "seconds": round(time.time() - started, 2),
            }
        )
        started = time.time()
        print(f"[fedlog] round {round_idx}: {session.name} F1={metrics['f1']:.3f} loss={stats['loss']:.4f}", flush=True)
    extra = {"silo": session.silo.describe(), "threshold_source": session.detector.threshold_source}
    run.finish({session.name: metrics}, extra)
    return run.path
