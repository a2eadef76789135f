"""``fedlog compare``: detectors x training modes x strategies x seeds on the same silos, one table.

A comparison config is a TOML file with a ``[compare]`` table and a ``[run]``
table of run-config overrides shared by every run::

    [compare]
    detectors = ["fastlogad", "unseen"]      # default: the run config's detector
    modes = ["local", "federated", "pooled"]  # default: ["federated"]
    strategies = ["fedavg", "fedgradtrace"]  # federated rows only
    seeds = [42]
    f1-floor = 0.5                            # every row's overall F1 must reach it ...
    f1-floors = { fedadam = 0.0 }             # ... unless a row name, strategy, mode or detector has its own

    [compare.variants]                        # optional: every row once per named overlay of run-config keys
    "no DP" = {}
    "z=1.0" = { dp.mode = "server-adaptive", dp.noise-multiplier = 1.0 }

Modes: ``local`` trains each silo alone (no federation: what a silo gets by
itself), ``federated`` is a real ``flwr run`` simulation per strategy, and
``pooled`` trains one model on every silo's training windows together (the
upper reference a federation tries to reach). Every row scores each silo on
its own test windows at its own label-free threshold, so the rows of one
detector line up silo by silo. The result directory holds ``comparison.md``,
``comparison.json`` and two plots, and a third of F1 against epsilon when
rows ran with differential privacy (``dp.*``: epsilon from the run's accountant).
"""

from __future__ import annotations

import json
import math
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fedlog.centralized import train_centralized, train_pooled  # noqa: E402
from fedlog.config import RunSettings, absolutize, flatten, for_nodes  # noqa: E402
from fedlog.metrics import pooled_metrics  # noqa: E402
from fedlog.rundir import summarize as summarize_silos  # noqa: E402
from fedlog.simulation import SimulationError, run_simulation  # noqa: E402

HEAD = ("f1", "precision", "recall", "auroc", "aupr")
MODES = ("local", "federated", "pooled")


@dataclass(frozen=True)
class Row:
    """One line of the comparison: a detector trained one way (and, federated, by one strategy)."""

    detector: str
    mode: str
    strategy: str = ""
    variant: str = ""  # the name of a [compare.variants] overlay

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.detector, self.mode, self.strategy, self.variant) if p)


def load_comparison(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    with path.open("rb") as handle:
        spec = tomllib.load(handle)
    compare = spec.get("compare", {})
    variants = compare.get("variants", {})
    if not all(isinstance(v, dict) for v in variants.values()):
        raise ValueError(f"{path}: every [compare.variants] entry is a table of run-config keys")
    compare["variants"] = {name: flatten(overlay) for name, overlay in variants.items()}
    modes = compare.get("modes", ["federated"])
    if unknown := sorted(set(modes) - set(MODES)):
        raise ValueError(f"{path}: unknown mode(s) {unknown}; modes are {', '.join(MODES)}")
    if "federated" in modes and not compare.get("strategies"):
        raise ValueError(f"{path}: federated rows need a non-empty [compare] 'strategies' list")
    return compare, flatten(spec.get("run", {}))


def comparison_rows(compare: Mapping[str, Any], default_detector: str) -> list[Row]:
    rows = []
    for detector in compare.get("detectors", [default_detector]):
        for mode in compare.get("modes", ["federated"]):
            strategies = compare["strategies"] if mode == "federated" else [""]
            for variant in compare.get("variants") or {"": {}}:
                rows += [Row(detector, mode, strategy, variant) for strategy in strategies]
    return rows


def floor_of(row: Row, compare: Mapping[str, Any]) -> float:
    floors = compare.get("f1-floors", {})
    for key in (row.name, row.strategy, row.mode, row.detector):
        if key in floors:
            return float(floors[key])
    return float(compare.get("f1-floor", 0.0))


def round_figures(run_dirs: Sequence[Path], names: Sequence[Mapping[str, str]] | None = None) -> list[dict[str, Any]]:
    """Per round over one or several run directories (a local row has one per silo): pooled overall
    F1, bytes sent, and each silo's aggregation weight where a federation weighed silos."""
    by_round: dict[int, dict[str, Any]] = {}
    for i, run_dir in enumerate(run_dirs):
        rename = names[i] if names else {}
        for line in (run_dir / "rounds.jsonl").read_text().splitlines():
            record = json.loads(line)
            entry = by_round.setdefault(record["round"], {"evals": [], "bytes": 0, "trained": {}})
            for silo, s in record["silos"].items():
                if "eval" in s:
                    entry["evals"].append(s["eval"])
                entry["bytes"] += s.get("bytes_sent", 0)
                if "num-examples" in s.get("train", {}) and "rejected" not in s:
                    entry["trained"][rename.get(silo, silo)] = s
    out = []
    for round_idx, entry in sorted(by_round.items()):
        trained = entry["trained"]
        total_n = sum(s["train"]["num-examples"] for s in trained.values()) or 1
        weights = {
            n: s.get("aggregation", {}).get("w", s["train"]["num-examples"] / total_n) for n, s in trained.items()
        }
        f1 = pooled_metrics(entry["evals"])["f1"] if entry["evals"] else math.nan
        out.append({"round": round_idx, "f1": f1, "bytes": entry["bytes"], "weights": weights})
    return out


def _result(summary: Mapping[str, Any], run_dirs: Sequence[Path], rounds: list[dict], started: float) -> dict:
    return {
        "run_dirs": [str(d) for d in run_dirs],
        "summary": summary,
        "rounds": rounds,
        "wall_time_s": time.time() - started,
    }


def run_row(app_dir: Path, row: Row, config: Mapping[str, Any], n_nodes: int) -> dict[str, Any]:
    """Train and evaluate one row for one seed; silos are named ``partition:format`` in every mode."""
    started = time.time()
    config = dict(config) | {"detector": row.detector}
    if row.mode == "federated":
        result = run_simulation(app_dir, config | {"strategy": row.strategy}, n_nodes, stream=False)
        summary = json.loads((result.run_dir / "summary.json").read_text())
        return _result(summary, [result.run_dir], round_figures([result.run_dir]), started)
    if row.mode == "pooled":
        run_dir = train_pooled(config)
        summary = json.loads((run_dir / "summary.json").read_text())
        return _result(summary, [run_dir], round_figures([run_dir]), started)
    run_dirs, silos, names = [], {}, []
    for i, entry in enumerate(RunSettings.from_flat(config).silo_entries):
        run_dir = train_centralized(config, entry)
        (fmt, metrics), *_ = json.loads((run_dir / "summary.json").read_text())["silos"].items()
        silos[f"{i}:{fmt}"] = metrics
        run_dirs.append(run_dir)
        names.append({fmt: f"{i}:{fmt}"})
    return _result(summarize_silos(silos), run_dirs, round_figures(run_dirs, names), started)


def summarize(runs: Mapping[str, Sequence[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Mean over seeds per row: overall and per-silo metrics and thresholds, rounds to best F1, time, bytes."""
    table = {}
    for name, results in runs.items():
        ok = [r for r in results if "error" not in r]
        if not ok:
            table[name] = {"error": results[0]["error"]}
            continue
        silos = sorted(ok[0]["summary"]["silos"])
        per_silo = {
            s: {k: _mean(r["summary"]["silos"][s].get(k) for r in ok) for k in (*HEAD, "threshold")} for s in silos
        }
        table[name] = {
            "overall": {k: _mean(r["summary"]["overall"].get(k) for r in ok) for k in HEAD},
            "silos": per_silo,
            "rounds_to_best_f1": _mean(max(r["rounds"], key=lambda x: x["f1"])["round"] for r in ok),
            "epsilon": _mean(r["summary"].get("privacy", {}).get("epsilon") for r in ok),
            "wall_time_s": _mean(r["wall_time_s"] for r in ok),
            "bytes_per_round": _mean(_mean(x["bytes"] for x in r["rounds"]) for r in ok),
            "seeds": len(ok),
            "failed_seeds": len(results) - len(ok),
        }
    return table


def _mean(values) -> float:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else math.nan


def _fmt(value: float, spec: str = ".3f") -> str:
    return "n/a" if value is None or math.isnan(value) else format(value, spec)


def markdown(table: Mapping[str, Mapping[str, Any]]) -> str:
    private = any(not math.isnan(row.get("epsilon", math.nan)) for row in table.values())
    lines = [
        "| row | F1 | P | R | AUROC | AUPR | rounds to best F1 | wall time (s) | bytes / round |"
        + (" epsilon |" if private else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if private else ""),
    ]
    for name, row in table.items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error'][:80]} ||||||||" + ("|" if private else ""))
            continue
        o = row["overall"]
        figures = " | ".join(_fmt(o[k]) for k in HEAD)
        traffic = f"{row['bytes_per_round'] / 1e6:.2f} MB" if row["bytes_per_round"] else "-"
        lines.append(
            f"| {name} | {figures} | {_fmt(row['rounds_to_best_f1'], '.1f')} | {row['wall_time_s']:.0f} | {traffic} |"
            + (f" {_fmt(row['epsilon'], '.3g')} |" if private else "")
        )
    silos = sorted({s for row in table.values() for s in row.get("silos", {})})
    if silos:
        lines += ["", "Per silo: F1 (P / R / AUROC), label-free threshold:", ""]
        lines += ["| row | " + " | ".join(silos) + " |", "|---|" + "---|" * len(silos)]
        for name, row in table.items():
            if "error" in row:
                continue
            cells = [
                f"{_fmt(m['f1'])} ({_fmt(m['precision'], '.2f')} / {_fmt(m['recall'], '.2f')} / "
                f"{_fmt(m['auroc'], '.2f')}), thr {_fmt(m['threshold'], '.4g')}"
                for m in (row["silos"].get(s, {k: math.nan for k in (*HEAD, "threshold")}) for s in silos)
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(runs: Mapping[str, Sequence[dict[str, Any]]], out: Path) -> list[Path]:
    """F1 per round per row; client weights per round of the federated rows (first seed)."""
    ok = {s: [r for r in rs if "error" not in r] for s, rs in runs.items()}
    ok = {s: rs for s, rs in ok.items() if rs}
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, results in ok.items():
        rounds = results[0]["rounds"]
        ax.plot([r["round"] for r in rounds], [r["f1"] for r in rounds], marker="o", label=name)
    ax.set(title="Overall F1 (pooled over silos) per round", xlabel="round", ylabel="F1 on test windows")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    f1_path = _save(fig, out / "f1_per_round.png")

    weighed = {n: rs for n, rs in ok.items() if any(r["weights"] for r in rs[0]["rounds"])}
    fig, axes = plt.subplots(1, max(1, len(weighed)), figsize=(3.2 * max(1, len(weighed)), 3.4), squeeze=False)
    for ax, (name, results) in zip(axes[0], weighed.items()):
        rounds = results[0]["rounds"]
        silos = sorted({s for r in rounds for s in r["weights"]})
        xs = [r["round"] for r in rounds]
        for silo in silos:
            ax.plot(xs, [r["weights"].get(silo, math.nan) for r in rounds], marker=".", label=silo)
        ax.set(title=name, xlabel="round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("aggregation weight")
    fig.suptitle("Client weights per round (federated rows, first seed)")
    weights_path = _save(fig, out / "client_weights.png")
    return [f1_path, weights_path]


def plot_privacy(table: Mapping[str, Mapping[str, Any]], out: Path) -> Path | None:
    """Overall F1 against epsilon of the rows that ran with differential privacy; rows without it are
    drawn as horizontal lines (no privacy claim, epsilon infinite). None when no row used DP."""
    done = {name: row for name, row in table.items() if "error" not in row}
    private = {n: r for n, r in done.items() if not math.isnan(r["epsilon"])}
    if not private:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    points = sorted((r["epsilon"], r["overall"]["f1"], n) for n, r in private.items())
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label="with DP")
    for eps, f1, name in points:
        ax.annotate(name, (eps, f1), fontsize=6, textcoords="offset points", xytext=(3, 3))
    for name, row in done.items():
        if name not in private:
            ax.axhline(row["overall"]["f1"], linestyle="--", color="grey", label=f"{name} (no DP)")
    ax.set(title="Overall F1 against epsilon (per silo, all rounds)", xlabel="epsilon", ylabel="F1", xscale="log")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return _save(fig, out / "f1_vs_epsilon.png")


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write_tables(
    out: Path, spec_path: Path, floors: Mapping[str, float], table: Mapping, runs: Mapping, done: int, total: int
) -> None:
    status = "" if done == total else f"**Partial: {done} of {total} rows finished so far.**\n\n"
    (out / "comparison.md").write_text(
        f"# Comparison ({spec_path.name})\n\n{status}Same silos and seeds for every row; thresholds from validation "
        f"normals only; each silo scored on its own test windows. F1 floors: {dict(floors)}.\n\n" + markdown(table)
    )
    (out / "comparison.json").write_text(
        json.dumps({"table": table, "runs": runs, "rows_done": done, "rows_total": total}, indent=1, default=str)
    )


def run_comparison(
    app_dir: Path,
    base_config: Mapping[str, Any],
    spec_path: Path,
    out_dir: Path,
) -> tuple[Path, dict, bool]:
    """Run every row x seed; write table and plots; return (dir, table, passed)."""
    compare, overrides = load_comparison(spec_path)
    keys = set(overrides).union(*(v.keys() for v in compare["variants"].values()))
    if unknown := sorted(keys - set(base_config)):
        raise ValueError(f"{spec_path}: unknown run-config key(s) {', '.join(unknown)}")
    out = out_dir / time.strftime("compare-%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    config = absolutize(dict(base_config) | overrides | {"output-dir": str(out / "runs")})
    n_nodes = len(RunSettings.from_flat(config).silo_entries)
    config = for_nodes(config, n_nodes)
    rows = comparison_rows(compare, str(config["detector"]))
    runs: dict[str, list[dict[str, Any]]] = {}
    floors = {row.name: floor_of(row, compare) for row in rows}
    seeds = compare.get("seeds", [config["seed"]])
    for done, row in enumerate(rows, start=1):
        for seed in seeds:
            print(f"[fedlog compare] {row.name}, seed {seed}", flush=True)
            try:
                row_config = config | compare["variants"].get(row.variant, {}) | {"seed": seed}
                runs.setdefault(row.name, []).append(run_row(app_dir, row, row_config, n_nodes))
            except (SimulationError, ValueError) as err:
                runs.setdefault(row.name, []).append({"error": str(err).splitlines()[0]})
        # Written after every row, so a comparison cut short still leaves the rows it finished.
        table = summarize(runs)
        _write_tables(out, spec_path, floors, table, runs, done, len(rows))
    table = summarize(runs)
    _write_tables(out, spec_path, floors, table, runs, len(rows), len(rows))
    plot(runs, out)
    plot_privacy(table, out)
    passed = all("error" not in row and row["overall"]["f1"] >= floors[name] for name, row in table.items())
    return out, table, passed
