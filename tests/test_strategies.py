"""The aggregation formulas of QualitySoftmax and FedGradTrace, and reply screening."""

from __future__ import annotations

import json

import numpy as np
import pytest

from strategies.common import weighted_sum_arrays
from strategies.fedgradtrace import trace_weights
from strategies.quality_softmax import js, kl, quality_weights, smoothed_histograms

HISTS = [{"aa": 10, "bb": 5}, {"aa": 2, "cc": 30}, {"bb": 7, "cc": 1, "dd": 3}]
QS = {"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "temperature": 1.0}


def test_identical_clients_get_identical_weights() -> None:
    out = quality_weights([0.9] * 3, [100] * 3, [HISTS[0]] * 3, **QS)
    assert out["w"] == pytest.approx([1 / 3] * 3)
    w = trace_weights([100] * 3, [2.0] * 3, lam=1.0)
    assert w == pytest.approx([1 / 3] * 3)


def test_softmax_weights_sum_to_one_and_follow_quality() -> None:
    out = quality_weights([0.95, 0.5, 0.7], [100, 300, 50], HISTS, **QS)
    assert sum(out["w"]) == pytest.approx(1.0)
    q = np.array(out["acc_term"]) + np.array(out["size_term"]) - np.array(out["divergence"])
    assert out["q"] == pytest.approx(q.tolist())
    assert np.argmax(out["w"]) == np.argmax(out["q"])
    js_out = quality_weights([0.95, 0.5, 0.7], [100, 300, 50], HISTS, **QS, divergence="js")
    assert max(js_out["divergence"]) <= np.log(2) + 1e-9


def test_large_temperature_gives_uniform_weights() -> None:
    out = quality_weights([0.95, 0.1, 0.7], [100, 300, 50], HISTS, **(QS | {"temperature": 1e9}))
    assert out["w"] == pytest.approx([1 / 3] * 3, abs=1e-6)


def test_divergences() -> None:
    p = smoothed_histograms(HISTS, smoothing=1.0)
    assert p.sum(axis=1) == pytest.approx([1, 1, 1])
    assert kl(p[0], p[0]) == pytest.approx(0.0) and kl(p[0], p[1]) > 0
    assert js(p[0], p[1]) == pytest.approx(js(p[1], p[0]))


def test_lambda_zero_is_exactly_fedavg() -> None:
    n = [100.0, 300.0, 50.0]
    assert trace_weights(n, [1.0, 50.0, 3.0], lam=0.0) == pytest.approx(np.array(n) / sum(n), abs=0, rel=1e-15)


def test_a_ten_times_larger_update_gets_less_weight_than_under_fedavg() -> None:
    n = [100.0, 100.0, 100.0, 100.0]
    w = trace_weights(n, [1.0, 1.1, 0.9, 10.0], lam=1.0)
    assert w[3] < 0.25 and sum(w) == pytest.approx(1.0)


def test_weighted_sum_of_arrays() -> None:
    a = {"x": np.ones((2, 2), dtype=np.float32)}
    b = {"x": np.full((2, 2), 3.0, dtype=np.float32)}
    out = weighted_sum_arrays([a, b], [0.25, 0.75])["x"]
    assert out.dtype == np.float32 and out == pytest.approx(np.full((2, 2), 2.5))


# -- the Flower strategies on hand-made replies ------------------------------------------------


GLOBAL = {"w": np.zeros((3, 2), dtype=np.float32), "b": np.zeros(2, dtype=np.float32)}


def _reply(partition: int, arrays: dict, n: int, norm: float | None = None, hist=None, node=None, fmt=None):
    """A train reply of silo ``partition:fmt`` (default ``s<partition>``) from Flower node ``node``
    (default ``partition + 1``)."""
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

    if norm is None:
        norm = float(np.sqrt(sum(float((v.astype(np.float64) ** 2).sum()) for v in arrays.values())))
    content = RecordDict(
        {
            "arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
            "metrics": MetricRecord({"num-examples": n, "update-norm": norm, "val-accuracy": 0.9}),
            "silo": ConfigRecord({"format": fmt or f"s{partition}", "partition": partition}),
            "histogram": ConfigRecord({"ids": ["aa", "bb"], "counts": hist or [3, 4]}),
        }
    )
    msg = Message(content=content, dst_node_id=1, message_type="train")
    msg.metadata.__dict__["_src_node_id"] = node or partition + 1  # what the SuperLink stamps on a reply
    return msg


def _strategy(name, tmp_path, **config):
    from fedlog.config import RunSettings
    from fedlog.rundir import RunDirectory
    from strategies import build_strategy

    run = RunDirectory.create(tmp_path, name, {})
    strategy = build_strategy(RunSettings.from_flat({"strategy": name, "min-nodes": 1} | config), run)
    strategy.global_arrays = {k: v.copy() for k, v in GLOBAL.items()}  # what configure_train keeps
    strategy.current_arrays = {k: v.copy() for k, v in GLOBAL.items()}  # the same, for FedAdam
    return strategy, run


def _ones(scale: float) -> dict:
    return {k: np.full_like(v, scale) for k, v in GLOBAL.items()}


@pytest.mark.parametrize("name", ["fedavg", "fedprox", "fedadam", "quality-softmax", "fedgradtrace"])
def test_nan_and_wrong_shape_replies_are_rejected_and_recorded(name, tmp_path, task_identity) -> None:
    strategy, run = _strategy(name, tmp_path)
    nan = _ones(1.0)
    nan["w"][0, 0] = np.nan
    wrong = _ones(1.0) | {"w": np.ones((2, 2), dtype=np.float32)}
    arrays, _ = strategy.aggregate_train(1, [_reply(0, _ones(1.0), 10), _reply(1, nan, 10), _reply(2, wrong, 10)])
    assert arrays is not None
    assert np.isfinite(arrays["w"].numpy()).all()
    assert set(strategy.rejected) == {"1:s1", "2:s2"}
    assert "NaN" in strategy.rejected["1:s1"] and "shape" in strategy.rejected["2:s2"]


def test_fedgradtrace_rejects_a_lying_norm_and_records_trajectories(tmp_path, task_identity) -> None:
    strategy, run = _strategy("fedgradtrace", tmp_path)
    honest, liar = _reply(0, _ones(1.0), 10), _reply(1, _ones(10.0), 10, norm=1.0)
    arrays, _ = strategy.aggregate_train(1, [honest, liar])
    assert "reported update norm" in strategy.rejected["1:s1"]
    assert arrays["w"].numpy() == pytest.approx(np.ones((3, 2)))
    assert strategy.trajectories["0:s0"][0]["share"] == pytest.approx(1.0)
    saved = json.loads((run.path / "strategy" / "round-001.json").read_text())
    assert saved["trajectories"] == strategy.trajectories  # what a resumed run takes back


def test_fedgradtrace_with_lambda_zero_matches_fedavg(tmp_path, task_identity) -> None:
    replies = [_reply(0, _ones(1.0), 10), _reply(1, _ones(4.0), 30)]
    avg, _ = _strategy("fedavg", tmp_path / "a")[0].aggregate_train(1, replies)
    trace, _ = _strategy("fedgradtrace", tmp_path / "b", **{"fedgradtrace.lambda": 0.0})[0].aggregate_train(1, replies)
    for key in GLOBAL:
        np.testing.assert_allclose(trace[key].numpy(), avg[key].numpy(), rtol=1e-6)


def test_quality_softmax_records_its_terms(tmp_path, task_identity) -> None:
    strategy, _ = _strategy("quality-softmax", tmp_path)
    replies = [_reply(0, _ones(1.0), 10, hist=[10, 1]), _reply(1, _ones(3.0), 10, hist=[1, 10])]
    arrays, _ = strategy.aggregate_train(1, replies)
    info = strategy.round_info
    assert set(info) == {"0:s0", "1:s1"} and info["0:s0"]["w"] == pytest.approx(0.5)
    assert {"q", "w", "acc_term", "size_term", "divergence"} <= set(info["0:s0"])
    assert arrays["b"].numpy() == pytest.approx([2.0, 2.0])


def test_missing_nodes_fail_loudly_instead_of_waiting_forever() -> None:
    from strategies.common import NodesMissing, wait_for_nodes

    class OneNodeGrid:
        def get_node_ids(self):
            return [7]

    wait_for_nodes(OneNodeGrid(), needed=1, timeout=0.1)
    with pytest.raises(NodesMissing, match="only 1 of 3 nodes connected"):
        wait_for_nodes(OneNodeGrid(), needed=3, timeout=0.1)


def test_a_simulation_too_small_for_the_run_fails_at_once_naming_the_fix(monkeypatch) -> None:
    from flwr.superlink.grid import InMemoryGrid

    from strategies import base
    from strategies.common import NodesMissing

    class TwoSimulatedNodes(InMemoryGrid):  # what `flwr run .` gives by default
        def __init__(self) -> None:
            pass

        def get_node_ids(self):
            return [7, 8]

    monkeypatch.setattr(base, "SIMULATION_SETTLE_S", 0.1)
    base.check_simulation_size(TwoSimulatedNodes(), needed=2)
    with pytest.raises(NodesMissing, match='num-supernodes=4"'):
        base.check_simulation_size(TwoSimulatedNodes(), needed=4)


def test_fedgradtrace_shares_decompose_the_global_update(tmp_path, task_identity) -> None:
    rng = np.random.default_rng(0)
    updates = [{k: rng.normal(size=v.shape).astype(np.float32) * s for k, v in GLOBAL.items()} for s in (1, 2, 5)]
    strategy, _ = _strategy("fedgradtrace", tmp_path)
    arrays, _ = strategy.aggregate_train(1, [_reply(i, u, 10 * (i + 1)) for i, u in enumerate(updates)])
    points = strategy.round_info
    assert sum(p["share"] for p in points.values()) == pytest.approx(1.0, abs=1e-6)
    assert sum(p["w"] for p in points.values()) == pytest.approx(1.0, abs=1e-12)
    expected = sum(p["w"] * updates[i]["w"] for i, p in enumerate(points.values()))
    np.testing.assert_allclose(arrays["w"].numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["fedavg", "fedprox", "fedadam", "quality-softmax", "fedgradtrace"])
def test_two_nodes_with_the_same_silo_label_are_two_clients(name, tmp_path, task_identity) -> None:
    """Two SuperNodes of one format without partitions both say ``0:hdfs``: aggregated exactly like two
    distinct silos, and recorded as two clients."""
    config = {"fedgradtrace.lambda": 0.0}  # FedGradTrace as FedAvg: the check below is then exact
    twins = [_reply(0, _ones(1.0), 10, node=21, fmt="hdfs"), _reply(0, _ones(3.0), 30, node=22, fmt="hdfs")]
    distinct = [_reply(0, _ones(1.0), 10, node=21, fmt="hdfs"), _reply(1, _ones(3.0), 30, node=22, fmt="bgl")]
    strategy, run = _strategy(name, tmp_path / "twins", **config)
    arrays, _ = strategy.aggregate_train(1, twins)
    reference, _ = _strategy(name, tmp_path / "distinct", **config)[0].aggregate_train(1, distinct)
    for key in GLOBAL:
        np.testing.assert_allclose(arrays[key].numpy(), reference[key].numpy(), rtol=1e-6)
    if name in ("fedavg", "fedprox", "fedgradtrace"):  # n-weighted: (10 * 1 + 30 * 3) / 40
        np.testing.assert_allclose(arrays["w"].numpy(), np.full((3, 2), 2.5), rtol=1e-6)
    strategy.aggregate_evaluate(1, [])
    (record,) = [json.loads(line) for line in (run.path / "rounds.jsonl").read_text().splitlines()]
    assert set(record["silos"]) == {"0:hdfs@21", "0:hdfs@22"}
    assert all("train" in entry for entry in record["silos"].values())
