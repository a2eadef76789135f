"""Parity: the same 2-round config, federation key and seed, once simulated and once deployed (loopback,
TLS + node auth, one ClientApp process per call), ends every round with bit-identical global parameters
and the same per-silo metrics. Both runs pin torch to one thread (OMP_NUM_THREADS=1, what Ray gives a
1-CPU simulated client): a different thread count may reorder float reductions and move the last bits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_FASTLOGAD

from fedlog.cli import APP_DIR
from fedlog.config import default_run_config
from fedlog.loopback import LoopbackFederation
from fedlog.simulation import run_simulation

SILOS = ["hdfs=synthetic", "bgl=synthetic"]


def _rounds(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]


def _metrics(run_dir: Path) -> list[dict]:
    """Per round and silo: what the clients reported (bytes and timing aside)."""
    return [{s: (e["train"], e["eval"]) for s, e in r["silos"].items()} for r in _rounds(run_dir)]


@pytest.mark.slow
def test_simulated_and_deployed_runs_end_every_round_identically(tmp_path, state_dir, monkeypatch) -> None:
    monkeypatch.setenv("FEDLOG_FEDERATION_KEY", "parity-" + "ab" * 16)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = (
        default_run_config()
        | TINY_FASTLOGAD
        | {
            "num-server-rounds": 2,
            "explain.every": -1,
            "min-nodes": 2,
            "local-epochs": 1,
            "data.silos": ", ".join(SILOS),
            "data.synthetic-scale": 0.2,
        }
    )
    started = time.time()
    sim = run_simulation(
        APP_DIR, config | {"output-dir": str(tmp_path / "sim")}, num_supernodes=2, stream=False, timeout=600
    )
    simulated_s = time.time() - started
    started = time.time()
    with LoopbackFederation(root=tmp_path / "fed") as fed:
        assert fed.made_key is None  # the caller's key, not one of its own
        fed.start_superlink()
        for i, silo in enumerate(SILOS):
            fed.register(f"node{i}")
            fed.add_supernode(f"node{i}", silo)
        fed.wait_for_nodes(len(SILOS))
        deployed, _ = fed.run(APP_DIR, config | {"output-dir": str(tmp_path / "deployed")}, timeout=600)
    deployed_s = time.time() - started
    print(f"\nwall time: simulated {simulated_s:.1f} s, deployed {deployed_s:.1f} s")

    for round_idx in (1, 2):
        name = f"params/round-{round_idx:03d}.pt"
        a, b = torch.load(sim.run_dir / name), torch.load(deployed / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f"round {round_idx}: global parameters differ"
    assert _metrics(sim.run_dir) == _metrics(deployed)
    assert set(_rounds(deployed)[0]["silos"]) == {"0:hdfs", "1:bgl"}
