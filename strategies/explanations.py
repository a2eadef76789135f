"""Federated explanations: the server's merge of the clients' SHAP summaries into one global
explanation space keyed by hashed event ids (FedXLog 3.3). The record itself is in
``fedlog.protocol``.

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

from collections.abc import Mapping
from typing import Any

import numpy as np


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
