"""A real `flwr run` of the distilled BERT with FedGradTrace: explanations merged by the server
into the run directory, teacher figures next to the student's."""

from __future__ import annotations

import json
import re

import pytest
from conftest import TINY_DISTILBERT
from matplotlib.image import imread

from fedlog.cli import APP_DIR
from fedlog.config import default_run_config
from fedlog.explain.plots import FILES
from fedlog.simulation import run_simulation


@pytest.mark.slow
def test_flwr_run_distilbert_fedgradtrace_writes_explanations(tmp_path, state_dir) -> None:
    config = (
        default_run_config()
        | TINY_DISTILBERT
        | {
            "detector": "distilbert",
            "strategy": "fedgradtrace",
            "num-server-rounds": 2,
            "local-epochs": 1,
            "min-nodes": 2,
            "data.silos": "hdfs=synthetic, bgl=synthetic",
            "data.synthetic-scale": 0.3,
            "explain.samples": 12,
            "explain.top-n": 6,
            "output-dir": str(tmp_path / "runs"),
        }
    )
    run = run_simulation(APP_DIR, config, num_supernodes=2, stream=False, timeout=600).run_dir

    rounds = [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [1, 2]
    for silo in rounds[-1]["silos"].values():
        assert silo["train"]["teacher"] == 1.0 and "share" in silo["aggregation"]
        assert 0.0 <= silo["eval"]["teacher-f1"] <= 1.0 and 0.0 <= silo["eval"]["f1"] <= 1.0

    # explain.every = 0: the last round only
    assert [p.name for p in (run / "explanations").iterdir()] == ["round-002.json"]
    merged = json.loads((run / "explanations" / "round-002.json").read_text())
    assert set(merged["clients"]) == {"0:hdfs", "1:bgl"}
    ids = merged["global"]["ids"]
    assert 0 < len(ids) <= 6 and all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids)
    assert len(merged["rows"]["values"]) == 24
    for name in FILES:
        assert imread(run / "plots" / name)[..., :3].std() > 0.05
