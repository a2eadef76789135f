"""Pure helpers every strategy shares: decoding and screening replies, weighted sums, waiting for nodes."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from flwr.app import ArrayRecord, Message
from flwr.serverapp import Grid
from scipy.linalg.blas import get_blas_funcs

from fedlog import protocol


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
    arrays = msg.content.array_records
    if list(arrays) != [protocol.ARRAYS]:
        return f"expected one ArrayRecord {protocol.ARRAYS!r}, got {sorted(arrays)}"
    return to_numpy(arrays[protocol.ARRAYS])


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
