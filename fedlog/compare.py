"""``fedlog compare``: the same silos and seeds under several strategies, one table and plots.

A comparison config is a TOML file with a ``[compare]`` table (strategies,
seeds, an F1 floor, per-strategy floors in ``f1-floors``) and a ``[run]`` table of run-config overrides shared by
every run. Each strategy x seed is a real ``flwr run`` simulation; the result
directory holds ``comparison.md``, ``comparison.json`` and two plots.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import tomllib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fedlog.config import RunSettings, absolutize, flatten, for_nodes  # noqa: E402
from fedlog.metrics import pooled_metrics  # noqa: E402
from fedlog.simulation import SimulationError, run_simulation  # noqa: E402

HEAD = ("f1", "precision", "recall", "auroc")


def load_comparison(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    with path.open("rb") as handle:
        spec = tomllib.load(handle)
    compare = spec.get("compare", {})
    if not compare.get("strategies"):
        raise ValueError(f"{path}: [compare] needs a non-empty 'strategies' list")
    return compare, flatten(spec.get("run", {}))


def round_figures(run_dir: Path) -> list[dict[str, Any]]:
    """Per round: pooled overall F1, bytes sent, and each silo's aggregation weight."""
    out = []
    for line in (run_dir / "rounds.jsonl").read_text().splitlines():
        record = json.loads(line)
        silos = record["silos"]
        evals = [s["eval"] for s in silos.values() if "eval" in s]
        trained = {n: s for n, s in silos.items() if "train" in s and "rejected" not in s}
        total_n = sum(s["train"]["num-examples"] for s in trained.values()) or 1
        weights = {
            name: s.get("aggregation", {}).get("w", s["train"]["num-examples"] / total_n) for name, s in trained.items()
        }
        out.append(
            {
                "round": record["round"],
                "f1": pooled_metrics(evals)["f1"] if evals else math.nan,
                "bytes": sum(s.get("bytes_sent", 0) for s in silos.values()),
                "weights": weights,
            }
        )
    return out


def summarize(runs: Mapping[str, Sequence[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Mean over seeds per strategy: overall and per-silo metrics, rounds to best F1, time, bytes."""
    table = {}
    for strategy, results in runs.items():
        ok = [r for r in results if "error" not in r]
        if not ok:
            table[strategy] = {"error": results[0]["error"]}
            continue
        silos = sorted(ok[0]["summary"]["silos"])
        rows = {
            "overall": {k: _mean(r["summary"]["overall"].get(k) for r in ok) for k in HEAD},
            "silos": {s: {k: _mean(r["summary"]["silos"][s].get(k) for r in ok) for k in HEAD} for s in silos},
            "rounds_to_best_f1": _mean(max(r["rounds"], key=lambda x: x["f1"])["round"] for r in ok),
            "wall_time_s": _mean(r["wall_time_s"] for r in ok),
            "bytes_per_round": _mean(_mean(x["bytes"] for x in r["rounds"]) for r in ok),
            "seeds": len(ok),
            "failed_seeds": len(results) - len(ok),
        }
        table[strategy] = rows
    return table


def _mean(values) -> float:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else math.nan


def markdown(table: Mapping[str, Mapping[str, Any]]) -> str:
    lines = [
        "| strategy | F1 | P | R | AUROC | rounds to best F1 | wall time (s) | bytes / round |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in table.items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error'][:80]} |||||||")
            continue
        o = row["overall"]
        lines.append(
            f"| {name} | {o['f1']:.3f} | {o['precision']:.3f} | {o['recall']:.3f} | {o['auroc']:.3f} "
            f"| {row['rounds_to_best_f1']:.1f} | {row['wall_time_s']:.0f} | {row['bytes_per_round'] / 1e6:.2f} MB |"
        )
    silos = sorted({s for row in table.values() for s in row.get("silos", {})})
    if silos:
        lines += ["", "Per-silo F1 (P / R / AUROC):", "", "| strategy | " + " | ".join(silos) + " |"]
        lines.append("|---|" + "---|" * len(silos))
        for name, row in table.items():
            if "error" in row:
                continue
            cells = [
                f"{m['f1']:.3f} ({m['precision']:.2f} / {m['recall']:.2f} / {m['auroc']:.2f})"
                for m in (row["silos"][s] for s in silos)
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(runs: Mapping[str, Sequence[dict[str, Any]]], out: Path) -> list[Path]:
    """F1 per round per strategy; client weights per round per strategy (first seed)."""
    ok = {s: [r for r in rs if "error" not in r] for s, rs in runs.items()}
    ok = {s: rs for s, rs in ok.items() if rs}
    fig, ax = plt.subplots(figsize=(7, 4))
    for strategy, results in ok.items():
        rounds = results[0]["rounds"]
        ax.plot([r["round"] for r in rounds], [r["f1"] for r in rounds], marker="o", label=strategy)
    ax.set(title="Overall F1 (pooled over silos) per round", xlabel="round", ylabel="F1 on test windows")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, 1)
    ax.legend()
    f1_path = out / "f1_per_round.png"
    fig.tight_layout()
    fig.savefig(f1_path, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(ok), figsize=(3.2 * len(ok), 3.4), sharey=True, squeeze=False)
    for ax, (strategy, results) in zip(axes[0], ok.items()):
        rounds = results[0]["rounds"]
        silos = sorted({s for r in rounds for s in r["weights"]})
        xs = [r["round"] for r in rounds]
        for silo in silos:
            ax.plot(xs, [r["weights"].get(silo, math.nan) for r in rounds], marker=".", label=silo)
        ax.set(title=strategy, xlabel="round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set_ylabel("aggregation weight")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("Client weights per round (first seed)")
    weights_path = out / "client_weights.png"
    fig.tight_layout()
    fig.savefig(weights_path, dpi=110)
    plt.close(fig)
    return [f1_path, weights_path]


def run_comparison(
    app_dir: Path, base_config: Mapping[str, Any], spec_path: Path, out_dir: Path
) -> tuple[Path, dict, bool]:
    """Run every strategy x seed; write table and plots; return (dir, table, passed)."""
    compare, overrides = load_comparison(spec_path)
    unknown = sorted(set(overrides) - set(base_config))
    if unknown:
        raise ValueError(f"{spec_path}: unknown run-config key(s) {', '.join(unknown)}")
    out = out_dir / time.strftime("compare-%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    config = absolutize(dict(base_config) | overrides | {"output-dir": str(out / "runs")})
    n_nodes = len(RunSettings.from_flat(config).silo_entries)
    config = for_nodes(config, n_nodes)
    runs: dict[str, list[dict[str, Any]]] = {}
    for strategy in compare["strategies"]:
        for seed in compare.get("seeds", [config["seed"]]):
            print(f"[fedlog compare] {strategy}, seed {seed}", flush=True)
            try:
                result = run_simulation(app_dir, config | {"strategy": strategy, "seed": seed}, n_nodes, stream=False)
                runs.setdefault(strategy, []).append(
                    {
                        "run_dir": str(result.run_dir),
                        "summary": json.loads((result.run_dir / "summary.json").read_text()),
                        "rounds": round_figures(result.run_dir),
                        "wall_time_s": result.wall_time_s,
                    }
                )
            except SimulationError as err:
                runs.setdefault(strategy, []).append({"error": str(err).splitlines()[0]})
    table = summarize(runs)
    floor = float(compare.get("f1-floor", 0.0))
    floors = {name: float(compare.get("f1-floors", {}).get(name, floor)) for name in table}
    (out / "comparison.md").write_text(
        f"# Strategy comparison ({spec_path.name})\n\nSame silos and seeds for every strategy; "
        f"thresholds from validation normals only. F1 floors: {floors}.\n\n" + markdown(table)
    )
    (out / "comparison.json").write_text(json.dumps({"table": table, "runs": runs}, indent=1, default=str))
    plot(runs, out)
    passed = all("error" not in row and row["overall"]["f1"] >= floors[name] for name, row in table.items())
    return out, table, passed
