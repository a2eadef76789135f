"""What every strategy shares: reply screening, deterministic order, weighted sums.

``RobustMixin`` goes before any Flower strategy in the bases. It remembers the
global arrays it sent, rejects (and records) replies that carry an error,
NaN/Inf, or arrays whose names or shapes differ from the global model, sorts
the rest by silo so aggregation does not depend on arrival order, and skips
aggregation (keeping the global model) when fewer than ``min_train_nodes``
usable replies remain.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from scipy.linalg.blas import get_blas_funcs

SILO_RECORD = "silo"  # ConfigRecord in replies: {"format": ..., "partition": ...}


def silo_name(msg: Message) -> str:
    if not msg.has_content():  # an error reply (e.g. the SuperLink's "node unavailable") has no content
        return f"node-{msg.metadata.src_node_id}"
    info = msg.content.config_records.get(SILO_RECORD)
    if info is None:
        return f"node-{msg.metadata.src_node_id}"
    return f"{info['partition']}:{info['format']}"


def to_numpy(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in record.items()}


def weighted_sum_arrays(arrays: Sequence[dict[str, np.ndarray]], weights: Sequence[float]) -> dict[str, np.ndarray]:
    """sum_k w_k theta_k with in-place BLAS axpy: no temporary per client and tensor."""
    out = {}
    for key, first in arrays[0].items():
        acc = np.zeros(first.size, dtype=np.result_type(first.dtype, np.float32))
        axpy = get_blas_funcs("axpy", (acc,))
        for values, w in zip(arrays, weights):
            acc = axpy(np.ascontiguousarray(values[key], dtype=acc.dtype).ravel(), acc, a=float(w))
        out[key] = acc.reshape(first.shape).astype(first.dtype, copy=False)
    return out


def decode(msg: Message) -> dict[str, np.ndarray] | str:
    """The reply's arrays, or why there are none to use."""
    if msg.has_error():
        return f"error: {msg.error.reason}"
    arrays = list(msg.content.array_records.values())
    if len(arrays) != 1:
        return f"expected one ArrayRecord, got {len(arrays)}"
    return to_numpy(arrays[0])


def screen(values: dict[str, np.ndarray], reference: dict[str, np.ndarray] | None) -> str | None:
    """Why decoded arrays cannot be aggregated, or None when they can."""
    if reference is not None:
        if set(values) != set(reference):
            return "array names differ from the global model"
        bad = [k for k, v in values.items() if v.shape != reference[k].shape]
        if bad:
            return f"shape mismatch in {bad[0]}: {values[bad[0]].shape} vs {reference[bad[0]].shape}"
    bad = [k for k, v in values.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
    if bad:
        return f"NaN/Inf in {bad[0]}"
    return None


class NodesMissing(RuntimeError):
    """Fewer nodes than the strategy needs connected within the node timeout."""


def wait_for_nodes(grid: Grid, needed: int, timeout: float) -> None:
    """Flower's sampling waits forever for missing nodes; we wait ``timeout`` seconds, then fail loudly."""
    deadline = time.monotonic() + timeout
    while (connected := len(list(grid.get_node_ids()))) < needed:
        if time.monotonic() > deadline:
            raise NodesMissing(f"only {connected} of {needed} nodes connected after {timeout:g} s (node-timeout)")
        time.sleep(1.0)


class RobustMixin:
    """Screening and bookkeeping around any Flower strategy's ``aggregate_train``."""

    min_train_nodes: int
    min_available_nodes: int
    round_offset: int = 0  # rounds already done before a resume
    node_timeout: float = 600.0

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        wait_for_nodes(grid, max(self.min_available_nodes, self.min_train_nodes), self.node_timeout)
        self.global_arrays = to_numpy(arrays)
        messages = super().configure_train(server_round, arrays, config, grid)  # type: ignore[misc]
        for msg in messages:  # clients see the run's round number, also after a resume
            msg.content["config"]["server-round"] = server_round + self.round_offset
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        self.round_info: dict[str, Any] = {}
        self.rejected: dict[str, str] = {}
        self.decoded: dict[str, dict[str, np.ndarray]] = {}  # each reply deserialized once
        valid = []
        for msg in replies:
            values = decode(msg)
            reason = values if isinstance(values, str) else screen(values, getattr(self, "global_arrays", None))
            if reason is None:
                valid.append(msg)
                self.decoded[silo_name(msg)] = values
            else:
                self.rejected[self.who(msg)] = reason
        valid.sort(key=silo_name)
        if len(valid) < max(1, self.min_train_nodes):
            self.rejected["round"] = f"only {len(valid)} usable replies (< min-train-nodes): kept the global model"
            return None, None
        return self._aggregate(server_round, valid, [silo_name(m) for m in valid])

    def who(self, msg: Message) -> str:
        """The silo a reply speaks for; RecordingMixin also names error replies the SuperLink made up."""
        return silo_name(msg)

    def _aggregate(
        self, server_round: int, replies: list[Message], names: list[str]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return super().aggregate_train(server_round, replies)  # type: ignore[misc]


class RobustFedAvg(RobustMixin, FedAvg):
    """Base for our own strategies: FedAvg's sampling and evaluation, our aggregation."""
