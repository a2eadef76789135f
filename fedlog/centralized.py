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


def train_pooled(config: Mapping[str, Any]) -> Path:
    """One model on every silo's training windows together (no federation, no privacy): the upper
    reference a federation tries to reach. Each silo is scored on its own test windows at its own
    label-free threshold, so the figures line up with a federated run's per-silo figures."""
    settings = RunSettings.from_flat(config)
    entries = settings.silo_entries
    session, silos = SiloSession.open_pooled(settings, entries)
    names = [f"{i}:{silo.fmt}" for i, silo in enumerate(silos)]
    run = RunDirectory.create(settings.output_dir, f"{settings.detector}-pooled", dict(config) | {"strategy": "pooled"})
    print(f"[fedlog] run directory: {run.path}", flush=True)
    metrics: dict[str, dict[str, float]] = {}
    started = time.time()
    for round_idx, stats in session.train_locally(settings.num_rounds, settings.local_epochs):
        metrics = {name: session.detector.evaluate_split(silo.split) for name, silo in zip(names, silos)}
        run.save_parameters(round_idx, session.detector.state())
        record = {name: {"eval": m} for name, m in metrics.items()}
        run.append_round(
            {"round": round_idx, "pooled": stats, "silos": record, "seconds": round(time.time() - started, 2)}
        )
        started = time.time()
        figures = "  ".join(f"{name} F1={m['f1']:.3f}" for name, m in metrics.items())
        print(f"[fedlog] round {round_idx} (pooled): {figures}", flush=True)
    run.finish(metrics, {"silo_reports": {n: s.describe() for n, s in zip(names, silos)}})
    return run.path
