"""resume-from: a run whose server is killed after round 2 and resumed ends exactly where an uninterrupted
run ends."""

from __future__ import annotations

import json
import time

import pytest
import torch
from conftest import TINY_FASTLOGAD

from fedlog.cli import APP_DIR
from fedlog.config import default_run_config
from fedlog.simulation import run_simulation


@pytest.mark.slow
def test_resume_from_gives_the_uninterrupted_result(tmp_path, state_dir) -> None:
    base = (
        default_run_config()
        | TINY_FASTLOGAD
        | {
            "strategy": "fedgradtrace",
            "min-nodes": 2,
            "local-epochs": 1,
            "explain.every": -1,
            "data.silos": "bgl=synthetic, spirit=synthetic",
            "data.synthetic-scale": 0.2,
            "output-dir": str(tmp_path),
        }
    )

    def run(kill_after_round: int = 0, **overrides):
        return run_simulation(
            APP_DIR, base | overrides, num_supernodes=2, stream=False, timeout=600, kill_after_round=kill_after_round
        ).run_dir

    full = run(**{"num-server-rounds": 3})
    first = run(kill_after_round=2, **{"num-server-rounds": 3})  # SuperLink + ServerApp SIGKILLed after round 2
    time.sleep(3)
    assert (first / "params" / "round-002.pt").exists()
    assert not (first / "params" / "round-003.pt").exists() and not (first / "summary.json").exists()
    resumed = run(**{"num-server-rounds": 3, "resume-from": f"{first}:2"})

    expected, got = (torch.load(r / "params" / "round-003.pt") for r in (full, resumed))
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    traj = [json.loads((r / "trajectories" / "round-003.json").read_text()) for r in (full, resumed)]
    assert traj[0] == traj[1] and all(len(points) == 3 for points in traj[0].values())
    assert [json.loads(line)["round"] for line in (resumed / "rounds.jsonl").read_text().splitlines()] == [3]
