"""Fault records without a federation: a node that never answers and one the SuperLink reports as
unavailable are recorded under their silo names (learned in an earlier round) with the round."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import instruction
from fault_client_app import inject_fault

GLOBAL = {"w": np.zeros((3, 2), dtype=np.float32)}
NODES = {11: "0:hdfs", 12: "1:bgl", 13: "2:spirit"}


def _answer(sent, kind: str):
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

    node = sent.metadata.dst_node_id
    fmt = NODES[node].split(":")[1]
    records = {
        "metrics": MetricRecord({"num-examples": 10, "f1": 0.5}),
        "silo": ConfigRecord({"format": fmt, "partition": int(NODES[node][0])}),
    }
    if kind == "train":
        records["arrays"] = ArrayRecord({"w": Array(np.ones((3, 2), dtype=np.float32))})
    reply = Message(RecordDict(records), reply_to=sent)
    reply.metadata.__dict__["_src_node_id"] = node
    return reply


def _unavailable(sent):
    from flwr.app import Error, Message

    reply = Message(Error(code=5, reason="Error: Node Unavailable"), reply_to=sent)
    reply.metadata.__dict__["_src_node_id"] = 1  # the SuperLink answers for the dead node
    return reply


def _round(strategy, server_round: int, answering: dict[int, str]):
    """One train + evaluate round: node -> "ok" | "unavailable"; nodes not listed stay silent."""
    for kind in ("train", "evaluate"):
        strategy._sent = [instruction(node=n, kind=kind) for n in NODES]
        replies = [
            _answer(m, kind) if answering[m.metadata.dst_node_id] == "ok" else _unavailable(m)
            for m in strategy._sent
            if m.metadata.dst_node_id in answering
        ]
        if kind == "train":
            strategy.aggregate_train(server_round, replies)
        else:
            strategy.aggregate_evaluate(server_round, replies)


def test_silent_and_unavailable_nodes_are_recorded_by_silo_and_round(tmp_path, task_identity) -> None:
    from fedlog.config import RunSettings
    from fedlog.rundir import RunDirectory
    from strategies import build_strategy

    run = RunDirectory.create(tmp_path, "faults", {})
    strategy = build_strategy(RunSettings.from_flat({"strategy": "fedavg", "min-nodes": 1}), run)
    strategy.global_arrays = {k: v.copy() for k, v in GLOBAL.items()}
    _round(strategy, 1, {11: "ok", 12: "ok", 13: "ok"})
    _round(strategy, 2, {11: "ok", 12: "unavailable"})  # 13 never answers
    rounds = [json.loads(line) for line in (run.path / "rounds.jsonl").read_text().splitlines()]
    assert set(rounds[0]["silos"]) == set(NODES.values())
    second = rounds[1]["silos"]
    assert set(second) == set(NODES.values())  # names, not node ids, although 12 and 13 sent nothing of theirs
    assert "Unavailable" in second["1:bgl"]["rejected"] and "Unavailable" in second["1:bgl"]["eval_error"]
    assert second["2:spirit"] == {
        "dropped": "no reply within round-timeout",
        "eval_dropped": "no reply within round-timeout",
    }
    assert "train" in second["0:hdfs"] and rounds[1]["aggregated"]


def test_fault_hook_corrupts_the_update() -> None:
    state = {"step": torch.tensor(3), "w": torch.ones(4, 2), "b": torch.zeros(2)}
    assert torch.isnan(inject_fault(state, "nan")["w"]).all()
    assert inject_fault(state, "shape")["w"].shape == (7,)
    assert torch.equal(state["w"], torch.ones(4, 2))  # the detector's own state is untouched
    with pytest.raises(ValueError, match="fault"):
        inject_fault(state, "slow")
