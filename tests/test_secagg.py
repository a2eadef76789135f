"""SecAgg+ with FedAvg end to end in a `flwr run` simulation: the server's aggregate is the weighted
mean of the silos' updates (recomputed here from the same silos) within the quantization error, and
no train reply carries a silo's parameters in the clear. Plus the client's range check."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY_FASTLOGAD
from flwr.app import Array

from fedlog.secagg import SecAggRangeError, check_range

SILOS = ["hdfs=synthetic", "bgl=synthetic"]
MAX_WEIGHT = 200.0  # above either silo's training windows, close enough for a fine quantization
CLIPPING = 8.0
LEVELS = 2**22


def _config(tmp_path) -> dict:
    from fedlog.config import default_run_config

    return (
        default_run_config()
        | TINY_FASTLOGAD
        | {
            "strategy": "fedavg",
            "num-server-rounds": 1,
            "explain.every": -1,
            "min-nodes": 2,
            "local-epochs": 1,
            "data.silos": ", ".join(SILOS),
            "data.synthetic-scale": 0.2,
            "output-dir": str(tmp_path / "runs"),
            "secagg.enabled": True,
            "secagg.max-weight": MAX_WEIGHT,
        }
    )


def _expected_mean(config: dict) -> tuple[dict[str, torch.Tensor], float]:
    """Round 1 without a federation: each silo trains from the initial model as its ClientApp would;
    their mean weighted by num-examples, and the sum of weights over max-weight (for the error bound)."""
    from clients.sessions import session_for
    from fedlog.config import RunSettings
    from fedlog.session import new_detector

    settings = RunSettings.from_flat(config)
    initial = new_detector(settings, device="cpu").state()
    states, weights = [], []
    for entry in SILOS:
        session = session_for(settings, entry)
        stats = session.train(initial, 1, 1)
        states.append({k: v.double() for k, v in session.detector.state().items()})
        weights.append(stats["examples"])
    total = sum(weights)
    mean = {k: sum(w * s[k] for w, s in zip(weights, states)) / total for k in initial}
    return mean, total / MAX_WEIGHT


@pytest.mark.slow
def test_secagg_fedavg_runs_end_to_end_and_the_server_sees_only_the_weighted_mean(
    tmp_path, state_dir, monkeypatch, one_thread
) -> None:
    from fedlog.cli import APP_DIR
    from fedlog.simulation import run_simulation

    monkeypatch.setenv("FEDLOG_FEDERATION_KEY", "secagg-" + "cd" * 16)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    audit = tmp_path / "audit"
    monkeypatch.setenv("FEDLOG_AUDIT_DIR", str(audit))
    config = _config(tmp_path)
    result = run_simulation(APP_DIR, config, num_supernodes=2, stream=False, timeout=600)

    record = json.loads((result.run_dir / "rounds.jsonl").read_text().splitlines()[0])
    assert record["aggregated"]
    assert set(record["silos"]) == {"0:hdfs", "1:bgl"}
    for silo in record["silos"].values():
        assert silo["aggregation"].startswith("secagg")
        assert "update-norm" not in silo["train"] and silo["train"]["num-examples"] > 0
        assert "f1" in silo["eval"]

    assert "Secure aggregation (SecAgg+" in (result.run_dir / "report.md").read_text()
    aggregate = torch.load(result.run_dir / "params" / "round-001.pt")
    expected, weight_ratio = _expected_mean(config)
    # each silo's weighted parameters are rounded to one of LEVELS steps over [-CLIPPING, CLIPPING]
    bound = len(SILOS) * (2 * CLIPPING / LEVELS) / weight_ratio
    errors = {k: float((aggregate[k].double() - expected[k]).abs().max()) for k in expected}
    assert max(errors.values()) <= bound, max(errors.items(), key=lambda kv: kv[1])
    assert all(aggregate[k].dtype == v.dtype for k, v in new_state(config).items())

    train_replies = [json.loads(p.read_text()) for p in audit.glob("*-train.json")]
    assert len(train_replies) == 4 * len(SILOS)  # setup, share keys, masked vectors, unmask
    for reply in train_replies:
        arrays = [r for r in reply["records"].values() if r["type"] == "ArrayRecord"]
        assert all(not r["arrays"] for r in arrays), "a train reply carried parameters in the clear"
        assert "histogram" not in reply["records"]
    masked = [r for r in train_replies if "fitres.metrics" in r["records"]]
    assert len(masked) == len(SILOS)


def new_state(config: dict) -> dict[str, torch.Tensor]:
    from fedlog.config import RunSettings
    from fedlog.session import new_detector

    return new_detector(RunSettings.from_flat(config), device="cpu").state()


def test_a_silo_whose_weighted_parameters_would_be_clipped_fails_instead() -> None:
    fine = [np.full(3, 7.0), np.zeros(2)]
    check_range(fine, 100, clipping_range=8.0, max_weight=100.0)
    check_range([np.full(3, 70.0)], 10, clipping_range=8.0, max_weight=100.0)  # weighted by 0.1: 7
    with pytest.raises(SecAggRangeError, match="secagg.clipping-range"):
        check_range([np.full(3, 9.0)], 100, clipping_range=8.0, max_weight=100.0)
    with pytest.raises(SecAggRangeError, match="secagg.max-weight"):
        check_range(fine, 101, clipping_range=8.0, max_weight=100.0)


def test_the_old_secagg_key_is_refused_rather_than_ignored() -> None:
    from fedlog.config import RunSettings

    with pytest.raises(KeyError, match="secagg.enabled"):
        RunSettings.from_flat({"secagg": True})


def test_the_legacy_layout_carries_fedlogs_instruction_and_reply_unchanged(task_identity) -> None:
    """What SecAgg+ makes of a train exchange: names, dtypes and values of the arrays and the config
    (FedProx's mu included) survive the FitIns layout; the reply's silo and metrics survive FitRes,
    without the update's norm."""
    from conftest import instruction
    from flwr.app import ArrayRecord
    from flwr.compat.common import recorddict_compat as legacy

    from fedlog import protocol

    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "steps": np.array([7], dtype=np.int64)}
    config = {protocol.SERVER_ROUND: 3, protocol.LOCAL_EPOCHS: 1, protocol.PROXIMAL_MU: 0.5}
    sent = instruction(ArrayRecord({k: Array(v) for k, v in arrays.items()}), config)
    received = protocol.from_fitins(legacy.fitins_to_recorddict(protocol.to_fitins(sent), keep_input=True))
    assert dict(received[protocol.CONFIG]) == config
    back = {k: v.numpy() for k, v in received[protocol.ARRAYS].items()}
    assert list(back) == ["w", "steps"]
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype and np.array_equal(back[name], value)

    metrics = {"examples": 12, "loss": 0.25, protocol.UPDATE_NORM: 3.0}
    reply = protocol.reply(sent, "bgl", 2, metrics, arrays=received[protocol.ARRAYS])
    fitres = legacy.recorddict_to_fitres(protocol.to_fitres(reply), keep_input=True)
    assert fitres.num_examples == 12
    label, reported = protocol.from_fitres(fitres)
    assert label == "2:bgl"
    assert reported == {"examples": 12.0, "loss": 0.25, protocol.NUM_EXAMPLES: 12.0}
