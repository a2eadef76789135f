"""The comparison table and plots, from run directories written the way real runs write them."""

from __future__ import annotations

import math

from fedlog.compare import markdown, plot, round_figures, summarize
from fedlog.metrics import detection_metrics
from fedlog.rundir import RunDirectory


def _run(tmp_path, name: str, weights: list[float], good: bool) -> dict:
    run = RunDirectory.create(tmp_path, name, {"strategy": name})
    scores = [0.9, 0.1, 0.8, 0.2] if good else [0.1, 0.9, 0.2, 0.8]
    final = {}
    for round_idx in (1, 2):
        silos = {}
        for i, silo in enumerate(("0:hdfs", "1:bgl")):
            metrics = detection_metrics([1, 0, 1, 0], scores, 0.5)
            final[silo] = metrics
            silos[silo] = {
                "train": {"num-examples": 10 * (i + 1), "loss": 1.0},
                "eval": metrics,
                "bytes_sent": 1000,
                "aggregation": {"w": weights[i]},
            }
        run.append_round({"round": round_idx, "silos": silos})
    summary = run.finish(final)
    return {"summary": summary, "rounds": round_figures(run.path), "wall_time_s": 12.0}


def test_table_and_plots(tmp_path) -> None:
    runs = {
        "fedavg": [_run(tmp_path, "fedavg", [0.33, 0.67], good=True)],
        "fedgradtrace": [_run(tmp_path, "fedgradtrace", [0.5, 0.5], good=False)],
        "fedadam": [{"error": "flower-superlink exited with 1"}],
    }
    table = summarize(runs)
    assert table["fedavg"]["overall"]["f1"] == 1.0 and table["fedgradtrace"]["overall"]["f1"] == 0.0
    assert table["fedavg"]["bytes_per_round"] == 2000 and table["fedavg"]["rounds_to_best_f1"] == 1
    assert runs["fedavg"][0]["rounds"][0]["weights"] == {"0:hdfs": 0.33, "1:bgl": 0.67}
    text = markdown(table)
    assert "| fedavg | 1.000 |" in text and "failed: flower-superlink" in text and "0:hdfs" in text
    for path in plot(runs, tmp_path):
        assert path.stat().st_size > 10_000  # a real PNG with content, not an empty canvas
    assert not math.isnan(table["fedgradtrace"]["overall"]["auroc"])
