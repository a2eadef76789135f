"""Differential privacy in a real `flwr run` simulation (tiny FastLogAD, four synthetic silos, two
rounds): the run directory records what the unit tests check by hand. A robust strategy runs end to end
in conftest's ``twin_runs`` (FedMedian, simulated and deployed)."""

from __future__ import annotations

import json

import pytest
from drill_client_app import DRILL_ENV
from test_poisoning import _sim_config

from fedlog.simulation import run_simulation


def _rounds(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_client_side_dp_clips_in_the_clientapp_and_the_server_rejects_a_silo_that_does_not(
    tmp_path, state_dir, app_with_drills, monkeypatch
) -> None:
    """Silo 3 scales its update after clipping (a compromised silo skipping Flower's mod): rejected every
    round; the others' clipped updates are averaged, noised, and the epsilon spent is recorded."""
    monkeypatch.setenv(DRILL_ENV, "3:scale:100")
    config = _sim_config(
        "fedavg",
        tmp_path,
        **{"min-nodes": 3, "dp.mode": "client-fixed", "dp.clipping-norm": 0.5, "dp.noise-multiplier": 0.5},
    )
    result = run_simulation(app_with_drills, config, num_supernodes=4, stream=False, timeout=900)
    rounds = _rounds(result.run_dir)
    assert all(r["aggregated"] for r in rounds)
    for record in rounds:
        assert "above the clipping norm" in record["silos"]["3:spirit"]["rejected"]
        assert not [n for n, s in record["silos"].items() if "rejected" in s and n != "3:spirit"]
    spent = [r["privacy"]["epsilon"] for r in rounds]
    assert 0 < spent[0] < spent[1]
    assert "Differential privacy (`dp.mode=client-fixed`" in (result.run_dir / "report.md").read_text()
