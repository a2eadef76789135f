"""The four explanation plots of a run (FedXLog Figures 3-6), as PNGs a person can read alone.

Input: the merged explanation of ``strategies.explanations.merge_explanations``
(ids and numbers only), so the server can draw them without any log text.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: the server has no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import shap  # noqa: E402

FILES = ("bar.png", "beeswarm.png", "heatmap.png", "decision.png")
SCORE = "anomaly score"


def plot_explanations(merged: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """bar, beeswarm, heatmap (clients x ids) and decision plot into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    g, rows = merged["global"], merged["rows"]
    ids = list(g["ids"])
    values = np.asarray(rows["values"], dtype=float).reshape(-1, len(ids))
    counts = np.asarray(rows["counts"], dtype=float).reshape(-1, len(ids))
    base = np.asarray(rows["base"], dtype=float)
    n_clients, round_idx = len(merged["clients"]), merged.get("round", "?")
    where = f"round {round_idx}, {n_clients} client(s), {len(base)} explained windows"
    paths = [
        _bar(ids, g["mean_abs_shap"], where, out_dir / FILES[0]),
        _beeswarm(ids, values, counts, base, where, out_dir / FILES[1]),
        _heatmap(ids, merged["clients"], where, out_dir / FILES[2]),
        _decision(ids, values, base, where, out_dir / FILES[3]),
    ]
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bar(ids, importance, where: str, path: Path) -> Path:
    order = np.argsort(importance)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ids) + 1.8))
    ax.barh([ids[i] for i in order], [importance[i] for i in order], color="#d62728")
    ax.set_xlabel(f"mean |SHAP value| on the {SCORE} (windows containing the id)")
    ax.set_ylabel("event id (keyed hash of a template)")
    ax.set_title(f"Global importance of event ids\n{where}")
    return _save(fig, path)


def _beeswarm(ids, values, counts, base, where: str, path: Path) -> Path:
    explanation = shap.Explanation(values=values, base_values=base, data=counts, feature_names=ids)
    shap.plots.beeswarm(explanation, max_display=len(ids), show=False, color_bar_label="occurrences in the window")
    fig = plt.gcf()
    fig.axes[0].set_xlabel(f"SHAP value (push on the {SCORE}; > 0 = towards anomalous)")
    fig.axes[0].set_title(f"Per-window SHAP values of the top event ids\n{where}")
    return _save(fig, path)


def _heatmap(ids, clients: Mapping[str, Mapping[str, Any]], where: str, path: Path) -> Path:
    names = list(clients)
    grid = np.full((len(names), len(ids)), np.nan)
    for r, name in enumerate(names):
        own = dict(zip(clients[name]["ids"], clients[name]["mean_shap"]))
        for c, eid in enumerate(ids):
            grid[r, c] = own.get(eid, np.nan)
    bound = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    fig, ax = plt.subplots(figsize=(1.0 * len(ids) + 3, 0.6 * len(names) + 2.5))
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad("#dddddd")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(len(ids)), ids, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("event id (grey: not among the client's top ids)")
    ax.set_ylabel("client (partition:format)")
    fig.colorbar(image, ax=ax, label=f"mean SHAP value on the {SCORE}")
    ax.set_title(f"Event-id attributions per client\n{where}")
    return _save(fig, path)


def _decision(ids, values, base, where: str, path: Path) -> Path:
    start = float(base.mean()) if len(base) else 0.0
    shap.decision_plot(start, values, feature_names=ids, show=False, ignore_warnings=True)
    fig = plt.gcf()
    fig.axes[0].set_xlabel(f"{SCORE}: mean all-masked score + each id's SHAP value")
    fig.suptitle(f"How the top event ids build each window's score\n{where}")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
