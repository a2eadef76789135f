"""A real `flwr run` simulation's run directory (private SuperLink, 2 SuperNodes, 2 rounds: the
simulated half of conftest's ``twin_runs``), and the centralized mode writing the same summary shape."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_FASTLOGAD

from fedlog.cli import main

TINY = TINY_FASTLOGAD
METRICS = {"precision", "recall", "f1", "accuracy", "auroc", "aupr"}


@pytest.mark.slow
def test_flwr_run_simulation_writes_the_run_directory(twin_runs) -> None:
    run, _ = twin_runs
    assert run.parent.name == "sim"  # under the run config's output-dir

    params = json.loads((run / "params.json").read_text())
    assert params["num-server-rounds"] == 2 and params["fastlogad.hidden"] == 32

    rounds = [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [1, 2]
    for record in rounds:
        assert set(record["silos"]) == {"0:hdfs", "1:bgl"}
        for silo in record["silos"].values():
            assert set(silo["eval"]) >= METRICS and silo["bytes_sent"] > 10_000
            assert silo["train"]["examples"] > 0 and silo["train"]["loss"] > 0
            assert "distance_to_aggregate" in silo["aggregation"]  # FedMedian's per-silo record
    assert rounds[0]["silos"]["0:hdfs"]["train"]["phase_hst"] == 0.0
    assert rounds[1]["silos"]["0:hdfs"]["train"]["phase_hst"] == 1.0

    state = torch.load(run / "params" / "round-002.pt")
    assert any(k.startswith("discriminator.") for k in state)
    assert (run / "params" / "round-001.pt").exists()

    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["silos"]) == {"0:hdfs", "1:bgl"}
    assert set(summary["overall"]) >= METRICS and summary["rounds"] == 2
    assert "| overall |" in (run / "report.md").read_text()


@pytest.mark.slow
def test_centralized_train_writes_the_same_summary_shape(tmp_path, state_dir, capsys) -> None:
    args = [
        "train",
        "--silo",
        "bgl=synthetic",
        "--set",
        f"output-dir='{tmp_path}'",
        "--set",
        "num-server-rounds=2",
    ]
    args += [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    args += ["--set", "data.synthetic-scale=0.3"]
    assert main(args) == 0
    (run,) = tmp_path.iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["silos"]) == {"bgl"} and set(summary["overall"]) >= METRICS
    assert len((run / "rounds.jsonl").read_text().splitlines()) == 2
    assert "run directory" in capsys.readouterr().out


def test_unknown_run_config_keys_are_rejected(capsys) -> None:
    with pytest.raises(SystemExit, match="unknown run-config key"):
        main(["train", "--set", "fastlogad.hiden=3"])
