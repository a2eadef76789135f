"""Poisoning drills (tests/drill_client_app.py): what a compromised silo sends, that the hook is out of
reach of a normal run, that QualitySoftmax bounds what it cannot verify, and in a real simulation that
a robust strategy keeps F1 near clean while FedAvg collapses under one scaled update."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO, TINY_FASTLOGAD
from drill_client_app import DRILL_ENV, parse_drill, poison

GLOBAL = {"w": np.zeros((3, 2), dtype=np.float32)}
TRAINED = {"w": np.full((3, 2), 0.5, dtype=np.float32)}


def test_drills_poison_the_update_as_named() -> None:
    assert poison(TRAINED, GLOBAL, "scale", 100.0)["w"] == pytest.approx(np.full((3, 2), 50.0))
    assert poison(TRAINED, GLOBAL, "sign-flip", 10.0)["w"] == pytest.approx(np.full((3, 2), -5.0))
    noisy = poison(TRAINED, GLOBAL, "random", 10.0)["w"]
    assert np.linalg.norm(noisy) == pytest.approx(10 * np.linalg.norm(TRAINED["w"]), rel=1e-5)
    assert poison(TRAINED, GLOBAL, "lie-quality", 1000.0)["w"] is TRAINED["w"]
    assert parse_drill("2:scale") == (2, "scale", 100.0) and parse_drill("0:random:3") == (0, "random", 3.0)
    with pytest.raises(ValueError, match="kind"):
        parse_drill("1:nan")


def test_the_drill_hook_is_unreachable_from_a_normal_run() -> None:
    """The project's ClientApp and the packages it loads never read the drill switch; only the test app does."""
    shipped = [REPO / "client_app.py", REPO / "server_app.py"]
    shipped += [p for d in ("fedlog", "clients", "strategies") for p in (REPO / d).rglob("*.py")]
    assert not [str(p) for p in shipped if any(hook in p.read_text() for hook in (DRILL_ENV, "drill_mod", "poison("))]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'clientapp = "client_app:app"' in pyproject and "drill_client_app" not in pyproject

    import client_app

    assert "drill_mod" not in [m.__name__ for m in client_app.app._mods]


def test_quality_softmax_bounds_what_a_silo_says_about_itself(tmp_path, task_identity) -> None:
    from test_strategies import _ones, _reply

    from fedlog.config import RunSettings
    from fedlog.rundir import RunDirectory
    from strategies import build_strategy

    def liar_weight(**config) -> float:
        run = RunDirectory.create(tmp_path, "qs", {})
        strategy = build_strategy(RunSettings.from_flat({"strategy": "quality-softmax", "min-nodes": 1} | config), run)
        strategy.global_arrays = {k: np.zeros_like(v) for k, v in _ones(0.0).items()}
        replies = [_reply(i, _ones(1.0), 100) for i in range(3)]
        liar = _reply(3, _ones(1.0), 100_000_000)
        liar.content["metrics"]["val-accuracy"] = 1000.0
        strategy.aggregate_train(1, [*replies, liar])
        return strategy.round_info["3:s3"]

    bounded = liar_weight()
    assert bounded["acc_term"] == 1.0 and bounded["claimed_val_accuracy"] == 1000.0
    assert bounded["claimed_examples"] == 100_000_000
    assert bounded["w"] < 0.5  # honest silos keep half of the weight
    assert liar_weight(**{"quality-softmax.max-examples-ratio": 0.0})["w"] > 0.5  # the size bound is what did it


def _sim_config(strategy: str, tmp_path, **extra) -> dict:
    from fedlog.config import default_run_config

    return (
        default_run_config()
        | TINY_FASTLOGAD
        | {
            "strategy": strategy,
            "num-server-rounds": 2,
            "local-epochs": 1,
            "explain.every": -1,
            "min-nodes": 4,
            "data.synthetic-scale": 0.3,
            "output-dir": str(tmp_path / "runs"),
        }
        | extra
    )


def _overall_f1(run_dir) -> float:
    return float(json.loads((run_dir / "summary.json").read_text())["overall"]["f1"])


def _distance(run_a, run_b, round_idx: int = 2) -> float:
    """L2 distance between two runs' global parameters after ``round_idx``."""
    import torch

    a, b = (torch.load(run / "params" / f"round-{round_idx:03d}.pt") for run in (run_a, run_b))
    return float(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in a) ** 0.5)


@pytest.mark.drill
def test_a_scaled_update_carries_fedavg_away_but_not_the_median(tmp_path, app_with_drills, monkeypatch) -> None:
    """Silo 3 sends global + 1000 x its update. The median's model stays next to the clean run's and so
    does its F1; FedAvg's model lands hundreds of times further away. (On these tiny synthetic silos
    F1 itself cannot show FedAvg's collapse: the wrecked model scores about what flagging every window
    scores, which is what the tiny clean model scores too.)"""
    from fedlog.simulation import run_simulation

    def run(strategy: str, drill: str | None):
        if drill:
            monkeypatch.setenv(DRILL_ENV, drill)
        else:
            monkeypatch.delenv(DRILL_ENV, raising=False)
        config = _sim_config(strategy, tmp_path)
        return run_simulation(app_with_drills, config, num_supernodes=4, stream=False, timeout=900).run_dir

    clean, median, fedavg = run("fedmedian", None), run("fedmedian", "3:scale:1000"), run("fedavg", "3:scale:1000")
    f1 = {name: _overall_f1(r) for name, r in (("clean", clean), ("median", median), ("fedavg", fedavg))}
    moved = {"median": _distance(clean, median), "fedavg": _distance(clean, fedavg)}
    print(f"overall F1 {f1}; distance from the clean median run's model {moved}")
    assert f1["median"] >= f1["clean"] - 0.1
    assert moved["fedavg"] > 50 * moved["median"]  # measured: 125 against 0.22
