"""Aggregation cost of FedAvg, QualitySoftmax and FedGradTrace on the same client updates."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence

import numpy as np
from flwr.app import Array, ArrayRecord, Message, Metadata, RecordDict

from fedlog import protocol
from fedlog.config import RunSettings
from fedlog.rundir import RunDirectory
from strategies import build_strategy


def distilbert_like_shapes(layers: int = 6, hidden: int = 768, ffn: int = 3072, vocab: int = 30522) -> dict:
    """Tensor shapes of a DistilBERT-base-sized encoder (about 66M parameters)."""
    shapes = {"embeddings.word": (vocab, hidden), "embeddings.position": (512, hidden)}
    for i in range(layers):
        for name in ("q", "k", "v", "o"):
            shapes[f"layer{i}.{name}.weight"] = (hidden, hidden)
            shapes[f"layer{i}.{name}.bias"] = (hidden,)
        shapes[f"layer{i}.ffn1.weight"], shapes[f"layer{i}.ffn1.bias"] = (ffn, hidden), (ffn,)
        shapes[f"layer{i}.ffn2.weight"], shapes[f"layer{i}.ffn2.bias"] = (hidden, ffn), (hidden,)
    return shapes


def _replies(global_arrays: dict, n_clients: int, rng: np.random.Generator) -> list[Message]:
    replies = []
    for k in range(n_clients):
        update = {
            name: (v + rng.standard_normal(v.shape, dtype=np.float32) * 1e-3) for name, v in global_arrays.items()
        }
        norm = float(
            np.sqrt(
                sum(float(np.dot((update[n] - v).ravel(), (update[n] - v).ravel())) for n, v in global_arrays.items())
            )
        )
        ids = [f"{i:08x}" for i in rng.choice(4096, size=100, replace=False)]
        histogram = dict(zip(ids, rng.integers(1, 500, size=100).tolist()))
        metrics = {"examples": int(rng.integers(100, 1000)), protocol.UPDATE_NORM: norm, protocol.VAL_ACCURACY: 0.9}
        instruction = Message(metadata=_metadata(k + 1), content=RecordDict())
        arrays = ArrayRecord({n: Array(a) for n, a in update.items()})
        replies.append(protocol.reply(instruction, "bench", k, metrics, arrays=arrays, histogram=histogram))
    return replies


def _metadata(node_id: int) -> Metadata:
    """A train instruction's metadata as the SuperLink would stamp it (the messages are built outside a run)."""
    return Metadata(
        run_id=1,
        message_id=f"bench-{node_id}",
        src_node_id=0,
        dst_node_id=node_id,
        reply_to_message_id="",
        group_id="",
        created_at=time.time(),
        ttl=3600.0,
        message_type="train",
    )


def time_aggregation(clients: Sequence[int], repeats: int = 3, seed: int = 0) -> list[dict]:
    """Median seconds of one aggregate_train per strategy, same updates for all strategies."""
    rng = np.random.default_rng(seed)
    global_arrays = {n: rng.standard_normal(s, dtype=np.float32) * 0.02 for n, s in distilbert_like_shapes().items()}
    n_params = sum(v.size for v in global_arrays.values())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_clients in clients:
            replies = _replies(global_arrays, n_clients, rng)
            row = {"clients": n_clients, "parameters": n_params}
            for name in ("fedavg", "quality-softmax", "fedgradtrace"):
                run = RunDirectory.create(tmp, name, {})
                # history 0: the weighting alone; keeping L updates per client costs L copies of the model each
                settings = RunSettings.from_flat({"strategy": name, "fedgradtrace.history": 0, "min-nodes": 1})
                strategy = build_strategy(settings, run)
                times = []
                for _ in range(repeats):
                    strategy.global_arrays = global_arrays
                    started = time.perf_counter()
                    arrays, _ = strategy.aggregate_train(1, replies)
                    times.append(time.perf_counter() - started)
                    assert arrays is not None and not strategy.rejected, strategy.rejected
                row[name] = float(np.median(times))
            rows.append(row)
            del replies
    return rows
