"""Parity: the same 2-round config, federation key and seed, once simulated and once deployed (loopback,
TLS + node auth, one ClientApp process per call), ends every round with bit-identical global parameters
and the same per-silo metrics. Both runs pin torch to one thread (OMP_NUM_THREADS=1, what Ray gives a
1-CPU simulated client): a different thread count may reorder float reductions and move the last bits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


def _rounds(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]


def _metrics(run_dir: Path) -> list[dict]:
    """Per round and silo: what the clients reported (bytes and timing aside)."""
    return [{s: (e["train"], e["eval"]) for s, e in r["silos"].items()} for r in _rounds(run_dir)]


@pytest.mark.slow
def test_simulated_and_deployed_runs_end_every_round_identically(twin_runs) -> None:
    simulated, deployed = twin_runs
    for round_idx in (1, 2):
        name = f"params/round-{round_idx:03d}.pt"
        a, b = torch.load(simulated / name), torch.load(deployed / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f"round {round_idx}: global parameters differ"
    assert _metrics(simulated) == _metrics(deployed)
    assert set(_rounds(deployed)[0]["silos"]) == {"0:hdfs", "1:bgl"}
