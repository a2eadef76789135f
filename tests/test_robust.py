"""Flower's robust aggregators behind fedlog's screening: one scaled update moves FedAvg far and the
robust ones hardly; too few silos for the assumed number of poisoned ones fail at start."""

from __future__ import annotations

import numpy as np
import pytest
from test_strategies import GLOBAL, _reply

from fedlog.config import RunSettings
from fedlog.rundir import RunDirectory

ROBUST = ["fedmedian", "fedtrimmedavg", "krum", "multikrum", "bulyan"]


def _strategy(name: str, nodes: int, tmp_path, **config):
    from strategies import build_strategy

    run = RunDirectory.create(tmp_path, name, {})
    strategy = build_strategy(RunSettings.from_flat({"strategy": name, "min-nodes": nodes} | config), run)
    strategy.global_arrays = {k: v.copy() for k, v in GLOBAL.items()}
    return strategy


def _clean(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {k: (1.0 + 0.05 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in GLOBAL.items()}


def _gap(arrays) -> float:
    """Largest distance of the aggregate from the clean silos' common update (all ones)."""
    return max(float(np.abs(arrays[k].numpy() - 1.0).max()) for k in GLOBAL)


@pytest.mark.parametrize("name", ["fedavg", *ROBUST])
def test_one_scaled_update_moves_fedavg_but_not_the_robust_aggregators(name, tmp_path, task_identity) -> None:
    nodes = 7 if name == "bulyan" else 5  # Bulyan needs 4f + 3 silos, Krum 2f + 3
    strategy = _strategy(name, nodes, tmp_path)
    replies = [_reply(i, _clean(i), 10) for i in range(nodes - 1)]
    replies.append(_reply(nodes - 1, {k: np.full_like(v, 100.0) for k, v in GLOBAL.items()}, 10))
    arrays, _ = strategy.aggregate_train(1, replies)
    if name == "fedavg":
        assert _gap(arrays) > 10
    else:
        assert _gap(arrays) < 0.3
        distances = {silo: info["distance_to_aggregate"] for silo, info in strategy.round_info.items()}
        assert max(distances, key=distances.get) == f"{nodes - 1}:s{nodes - 1}"  # the record shows who was off


@pytest.mark.parametrize("name", ROBUST)
def test_robust_aggregators_reject_nan_replies_like_the_others(name, tmp_path, task_identity) -> None:
    nodes = 7 if name == "bulyan" else 5
    krum_like = name in ("krum", "multikrum", "bulyan")
    strategy = _strategy(name, nodes - 1, tmp_path, **({f"{name}.malicious": 0} if krum_like else {}))
    nan = _clean(99)
    nan["w"][0, 0] = np.nan
    replies = [_reply(i, _clean(i), 10) for i in range(nodes - 1)] + [_reply(nodes - 1, nan, 10)]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None and np.isfinite(arrays["w"].numpy()).all()
    assert "NaN" in strategy.rejected[f"{nodes - 1}:s{nodes - 1}"]


@pytest.mark.parametrize(("name", "nodes", "needed"), [("krum", 4, 5), ("multikrum", 4, 5), ("bulyan", 4, 7)])
def test_too_few_silos_for_the_assumed_poisoned_ones_fail_at_start(name, nodes, needed, tmp_path) -> None:
    with pytest.raises(ValueError, match=f"needs at least {needed} silos per round"):
        _strategy(name, nodes, tmp_path)
    _strategy(name, nodes, tmp_path, **{f"{name}.malicious": 0})  # f = 0 fits


def test_trimmed_mean_default_cuts_one_of_four() -> None:
    """Flower's default 0.2 trims int(0.2 * 4) = 0 silos; ours trims one at each end."""
    from strategies.robust import FedTrimmedAvgParams

    assert int(FedTrimmedAvgParams().beta * 4) == 1
