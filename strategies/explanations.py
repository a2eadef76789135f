"""Federated explanations: the client's SHAP summary as a ConfigRecord, and the server's merge
into one global explanation space keyed by hashed event ids (FedXLog 3.3).

A client sends only 8-hex ids and numbers: per id its frequency, the number of
explained windows containing it, mean SHAP and mean |SHAP|; plus, for the
beeswarm and decision plots, its per-window SHAP rows and occurrence counts
over those ids and each window's base value. Never a template or a raw line.

The server merges each id over the clients that report it, weighting each
client's means by its number of explained windows containing the id, and
writes ``explanations/round-NNN.json`` and the plots (``fedlog.explain.plots``)
to the run directory. When: ``explain.every`` N > 0 explains every N rounds
and the last; 0 the last round only (the default: SHAP costs minutes per
client on a CPU); -1 never.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid

from fedlog.explain.plots import plot_explanations
from fedlog.explain.shap_ids import IdExplanation
from strategies.common import silo_name

EXPLANATION_RECORD = "explanation"
EXPLAIN_FLAG = "explain"  # evaluate config: explain this round


def explanation_record(exp: IdExplanation) -> ConfigRecord:
    return ConfigRecord(
        {
            "ids": list(exp.ids),
            "frequency": [int(v) for v in exp.frequency],
            "windows": [int(v) for v in exp.windows],
            "mean-shap": [float(v) for v in exp.mean_shap],
            "mean-abs-shap": [float(v) for v in exp.mean_abs_shap],
            "values": [float(v) for v in exp.values.ravel()],
            "counts": [int(v) for v in exp.counts.ravel()],
            "base": [float(v) for v in exp.base],
            "samples": int(exp.samples),
        }
    )


def decode_record(record: Mapping[str, Any]) -> dict[str, Any]:
    ids = list(record["ids"])
    shape = (int(record["samples"]), len(ids))
    return {
        "ids": ids,
        "frequency": list(record["frequency"]),
        "windows": list(record["windows"]),
        "mean_shap": list(record["mean-shap"]),
        "mean_abs_shap": list(record["mean-abs-shap"]),
        "samples": shape[0],
        "values": np.asarray(record["values"], dtype=float).reshape(shape),
        "counts": np.asarray(record["counts"], dtype=float).reshape(shape),
        "base": np.asarray(record["base"], dtype=float),
    }


def merge_explanations(clients: Mapping[str, Mapping[str, Any]], top_n: int) -> dict[str, Any]:
    """One explanation space: per id, frequencies summed, means weighted by windows containing it.

    Pooled per-window rows keep the global top ids; an id outside a client's top-N
    is 0 in that client's rows (the client did not report it)."""
    stats: dict[str, np.ndarray] = {}  # id -> [frequency, windows, sum shap, sum |shap|]
    for c in clients.values():
        for i, eid in enumerate(c["ids"]):
            w = c["windows"][i]
            add = np.array([c["frequency"][i], w, w * c["mean_shap"][i], w * c["mean_abs_shap"][i]])
            stats[eid] = stats.get(eid, np.zeros(4)) + add
    ranked = sorted(stats, key=lambda e: (-stats[e][3] / max(stats[e][1], 1.0), e))[:top_n]  # mean |SHAP|
    weight = [max(stats[e][1], 1.0) for e in ranked]
    rows, counts, base, owner = [], [], [], []
    for name, c in sorted(clients.items()):
        col = {eid: j for j, eid in enumerate(c["ids"])}
        for r in range(c["samples"]):
            rows.append([c["values"][r, col[e]] if e in col else 0.0 for e in ranked])
            counts.append([c["counts"][r, col[e]] if e in col else 0.0 for e in ranked])
        base += list(c["base"])
        owner += [name] * c["samples"]
    return {
        "global": {
            "ids": ranked,
            "frequency": [int(stats[e][0]) for e in ranked],
            "windows": [int(stats[e][1]) for e in ranked],
            "mean_shap": [float(stats[e][2] / w) for e, w in zip(ranked, weight)],
            "mean_abs_shap": [float(stats[e][3] / w) for e, w in zip(ranked, weight)],
        },
        "clients": {
            name: {k: c[k] for k in ("ids", "frequency", "windows", "mean_shap", "mean_abs_shap", "samples")}
            for name, c in sorted(clients.items())
        },
        "rows": {"values": rows, "counts": counts, "base": base, "client": owner},
    }


def explain_round(round_idx: int, total: int, every: int) -> bool:
    if every < 0:
        return False
    return round_idx == total or (every > 0 and round_idx % every == 0)


class ExplanationMixin:
    """Asks clients for explanations on the chosen rounds, merges and writes them. Goes after
    ``RecordingMixin`` in the bases (it uses ``run`` and ``round_offset``)."""

    explain_every: int = 0
    explain_top_n: int = 10
    total_rounds: int = 0

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        round_idx = server_round + self.round_offset  # type: ignore[attr-defined]
        config[EXPLAIN_FLAG] = explain_round(round_idx, self.total_rounds, self.explain_every)
        return super().configure_evaluate(server_round, arrays, config, grid)  # type: ignore[misc]

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replies = list(replies)
        clients = {
            silo_name(m): decode_record(m.content.config_records[EXPLANATION_RECORD])
            for m in replies
            if not m.has_error() and EXPLANATION_RECORD in m.content.config_records
        }
        if clients:
            round_idx = server_round + self.round_offset  # type: ignore[attr-defined]
            merged = merge_explanations(clients, self.explain_top_n) | {"round": round_idx}
            self.run.save_json(f"explanations/round-{round_idx:03d}.json", merged)  # type: ignore[attr-defined]
            plot_explanations(merged, self.run.path / "plots")  # type: ignore[attr-defined]
        return super().aggregate_evaluate(server_round, replies)  # type: ignore[misc]
