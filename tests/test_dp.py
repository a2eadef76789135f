"""Differential privacy: Flower's wrappers clip before aggregation, the server rejects a client-side
update longer than the norm it sent, epsilon is accounted per round, and refused combinations fail
before any round with the reason. Hand-made replies, no federation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_strategies import GLOBAL, _ones, _reply

from fedlog.config import RunSettings
from fedlog.privacy import PrivacyParams, epsilon
from fedlog.rundir import RunDirectory

CLIP = 0.5
SECAGG = "secagg.enabled"
NODES = [1, 2, 3, 4]


class FakeGrid:
    """Just enough of a Grid for Flower's sampling: four connected nodes, all sampled."""

    def get_node_ids(self):
        return list(NODES)


def _dp_strategy(tmp_path, mode: str, name: str = "fedavg", **extra):
    from strategies import build_strategy

    config = {"strategy": name, "min-nodes": 4, "dp.mode": mode, "dp.clipping-norm": CLIP} | extra
    run = RunDirectory.create(tmp_path, name, {})
    return build_strategy(RunSettings.from_flat(config), run), run


def _configure(strategy, server_round: int):
    from flwr.app import Array, ArrayRecord, ConfigRecord

    arrays = ArrayRecord({k: Array(v.copy()) for k, v in GLOBAL.items()})
    return list(strategy.configure_train(server_round, arrays, ConfigRecord({"local-epochs": 1}), FakeGrid()))


def _norm(values: dict) -> float:
    return float(np.sqrt(sum(np.sum((values[k].astype(np.float64) - v) ** 2) for k, v in GLOBAL.items())))


@pytest.mark.parametrize("mode", ["server-fixed", "server-adaptive"])
def test_server_side_clipping_bounds_every_update_that_reaches_aggregation(
    mode, tmp_path, task_identity, monkeypatch
) -> None:
    from strategies.common import to_numpy
    from strategies.privacy import Release

    seen: list[float] = []
    original = Release.aggregate_train

    def spy(self, server_round, replies):
        replies = list(replies)
        seen.extend(_norm(to_numpy(m.content["arrays"])) for m in replies)
        return original(self, server_round, replies)

    monkeypatch.setattr(Release, "aggregate_train", spy)
    extra = {"dp.clipped-count-stddev": 2.0} if mode == "server-adaptive" else {}
    strategy, _ = _dp_strategy(tmp_path, mode, **{"dp.noise-multiplier": 0.1} | extra)
    _configure(strategy, 1)
    replies = [_reply(i, _ones(scale), 10 * (i + 1)) for i, scale in enumerate([0.01, 3.0, 50.0, 1e4])]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None and len(seen) == 4
    assert max(seen) <= CLIP * (1 + 1e-5)
    assert seen[0] == pytest.approx(_norm(_ones(0.01)), rel=1e-5)  # a short update is left alone


def test_client_side_clipping_rejects_an_update_longer_than_the_norm_sent(tmp_path, task_identity) -> None:
    strategy, _ = _dp_strategy(tmp_path, "client-fixed", **{"min-nodes": 3})
    sent = _configure(strategy, 1)
    assert all(m.content["config"]["clipping_norm"] == CLIP for m in sent)  # Flower's mod reads it there
    inside = _ones(CLIP / np.sqrt(8) * 0.99)  # 8 parameters: norm 0.99 * CLIP
    replies = [_reply(i, inside, 10) for i in range(3)] + [_reply(3, _ones(1.0), 10)]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None
    assert set(strategy.rejected) == {"3:s3"} and "above the clipping norm" in strategy.rejected["3:s3"]


def test_the_dp_mean_is_unweighted(tmp_path, task_identity) -> None:
    """The noise is calibrated for an unweighted mean: a silo with 100x the examples gets no more weight."""
    strategy, _ = _dp_strategy(tmp_path, "server-fixed", **{"dp.noise-multiplier": 1e-9, "dp.clipping-norm": 100.0})
    _configure(strategy, 1)
    replies = [_reply(0, _ones(1.0), 1000)] + [_reply(i, _ones(0.2), 10) for i in (1, 2, 3)]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays["w"].numpy() == pytest.approx(np.full((3, 2), 0.4), abs=1e-6)


def test_an_unchanged_model_is_rejected_not_a_crash(tmp_path, task_identity) -> None:
    """Flower's clipping divides by the update norm; a silo that sends the global model back is recorded."""
    strategy, _ = _dp_strategy(tmp_path, "server-fixed", **{"min-nodes": 3})
    _configure(strategy, 1)
    arrays, _ = strategy.aggregate_train(1, [_reply(i, _ones(0.1), 10) for i in range(3)] + [_reply(3, _ones(0.0), 10)])
    assert arrays is not None and "update norm 0" in strategy.rejected["3:s3"]


def test_epsilon_is_recorded_every_round_and_grows(tmp_path, task_identity) -> None:
    strategy, run = _dp_strategy(tmp_path, "server-fixed", **{"dp.noise-multiplier": 1.2, "dp.delta": 1e-4})
    for server_round in (1, 2, 3):
        _configure(strategy, server_round)
        strategy.aggregate_train(server_round, [_reply(i, _ones(0.1), 10) for i in range(4)])
        strategy.aggregate_evaluate(server_round, [])
    rounds = [json.loads(line) for line in (run.path / "rounds.jsonl").read_text().splitlines()]
    spent = [r["privacy"]["epsilon"] for r in rounds]
    assert spent == pytest.approx([epsilon(1.2, [1.0] * t, 1e-4) for t in (1, 2, 3)])
    assert 0 < spent[0] < spent[1] < spent[2]
    assert rounds[0]["privacy"]["sampling_rate"] == 1.0 and rounds[0]["privacy"]["delta"] == 1e-4
    assert strategy.report_extra()["privacy"]["epsilon"] == spent[-1]
    persisted = json.loads((run.path / "strategy" / "round-003.json").read_text())
    assert persisted["privacy"]["rates"] == [1.0, 1.0, 1.0]


def test_accountant_more_noise_or_sampling_spends_less() -> None:
    assert epsilon(1.0, [], 1e-5) == 0.0
    assert epsilon(2.0, [1.0] * 10, 1e-5) < epsilon(1.0, [1.0] * 10, 1e-5)
    assert epsilon(1.0, [0.25] * 10, 1e-5) < epsilon(1.0, [1.0] * 10, 1e-5)
    # one unsampled Gaussian round: the RDP bound lies above the exact (analytic) Gaussian epsilon
    # (~3.73 for sigma 1, delta 1e-5) and within a factor 1.5 of it
    assert 3.73 < epsilon(1.0, [1.0], 1e-5) < 1.5 * 3.73


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"strategy": "quality-softmax", "dp.mode": "server-fixed"}, "cannot wrap strategy 'quality-softmax'"),
        ({"strategy": "fedgradtrace", "dp.mode": "client-fixed"}, "cannot wrap strategy 'fedgradtrace'"),
        ({"strategy": "krum", "dp.mode": "server-fixed"}, "cannot wrap strategy 'krum'"),
        ({"strategy": "fedadam", "dp.mode": "server-adaptive"}, "adaptive server step"),
        ({"strategy": "quality-softmax", SECAGG: True}, "cannot be used with strategy 'quality-softmax'"),
        ({"strategy": "fedgradtrace", SECAGG: True}, "cannot be used with strategy 'fedgradtrace'"),
        ({"strategy": "fedmedian", SECAGG: True}, "only their sum"),
        ({"strategy": "fedadam", SECAGG: True}, "adaptive server step is not applied"),
        ({"strategy": "fedavg", SECAGG: True, "dp.mode": "client-fixed"}, "cannot be combined with dp.mode"),
    ],
)
def test_refused_combinations_fail_before_any_round_with_the_reason(config, message, tmp_path) -> None:
    from strategies import build_strategy
    from strategies.refusals import RefusedCombination

    run = RunDirectory.create(tmp_path, "refused", {})
    with pytest.raises(RefusedCombination, match=message) as refused:
        build_strategy(RunSettings.from_flat(config | {"min-nodes": 4}), run)
    assert "works with: fedavg, fedprox" in str(refused.value) or "combined" in str(refused.value)


def test_dp_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="dp.mode"):
        PrivacyParams(mode="local")
    with pytest.raises(KeyError, match="unknown dp parameter"):
        RunSettings.from_flat({"dp.epsilon": 1.0})
    assert not RunSettings.from_flat({}).privacy.enabled


def test_a_resumed_run_continues_the_privacy_ledger(tmp_path, task_identity) -> None:
    strategy, run = _dp_strategy(
        tmp_path, "server-adaptive", **{"dp.noise-multiplier": 0.5, "dp.clipped-count-stddev": 1.0}
    )
    for server_round in (1, 2):
        _configure(strategy, server_round)
        strategy.aggregate_train(server_round, [_reply(i, _ones(0.1 * (i + 1)), 10) for i in range(4)])
    persisted = json.loads((run.path / "strategy" / "round-002.json").read_text())
    resumed, _ = _dp_strategy(
        tmp_path, "server-adaptive", **{"dp.noise-multiplier": 0.5, "dp.clipped-count-stddev": 1.0}
    )
    resumed.resume(persisted)
    assert resumed.privacy.rates == [1.0, 1.0]
    assert resumed.privacy.wrapper.clipping_norm == pytest.approx(strategy.privacy.wrapper.clipping_norm)
    assert resumed.privacy.wrapper.clipping_norm != CLIP  # adaptive clipping moved it, and the resume kept that
    assert resumed.report_extra()["privacy"]["epsilon"] == pytest.approx(epsilon(0.5, [1.0, 1.0], 1e-5))


def test_client_side_adaptive_clipping_moves_the_norm_it_sends(tmp_path, task_identity) -> None:
    """Flower's adaptive wrapper reads the norm bits Flower's client mod adds and adapts the norm;
    the server checks each round against the norm it sent that round."""
    from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM, KEY_NORM_BIT

    strategy, run = _dp_strategy(
        tmp_path, "client-adaptive", **{"dp.noise-multiplier": 0.5, "dp.clipped-count-stddev": 1.0}
    )
    np.random.seed(0)  # Flower noises the clipped count with numpy's global generator
    sent_norms = []
    for server_round in (1, 2):
        sent = _configure(strategy, server_round)
        sent_norms.append(sent[0].content["config"][KEY_CLIPPING_NORM])
        replies = [_reply(i, _ones(sent_norms[-1] / np.sqrt(8) * 0.9), 10) for i in range(4)]
        for reply in replies:
            reply.content["metrics"][KEY_NORM_BIT] = 1  # every silo had to clip: the norm should grow
        assert strategy.aggregate_train(server_round, replies)[0] is not None
    assert sent_norms[0] == CLIP and sent_norms[1] > CLIP
    assert not strategy.rejected


def test_flowers_adaptive_step_shrinks_the_norm_when_too_many_are_clipped_ours_grows_it() -> None:
    """Flower 1.42's sign bug, which strategies/privacy.py corrects (this fails once Flower fixes it)."""
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideAdaptiveClipping

    from strategies.privacy import Release, ServerSideAdaptiveClipping

    flower = DifferentialPrivacyServerSideAdaptiveClipping(Release(None), 0.5, 4, clipped_count_stddev=1.0)
    ours = ServerSideAdaptiveClipping(Release(None), 0.5, 4, clipped_count_stddev=1.0)
    for wrapper in (flower, ours):
        wrapper._geometric_update(1.0)  # every update clipped, target 0.5
    assert flower.clipping_norm < 0.1 < ours.clipping_norm


def test_fedlog_run_refuses_before_any_superlink_starts(monkeypatch) -> None:
    import fedlog.simulation
    from fedlog.cli import main

    def never(*args, **kwargs):
        raise AssertionError("a simulation started for a refused combination")

    monkeypatch.setattr(fedlog.simulation, "run_simulation", never)
    with pytest.raises(SystemExit, match="refused: dp.mode='server-fixed' cannot wrap strategy 'krum'"):
        main(["run", "--set", "strategy=krum", "--set", "dp.mode=server-fixed"])
