"""A run directory: params.json, rounds.jsonl, global parameters per round, summary, report.

Layout (the same for federated and centralized runs)::

    runs/<timestamp>-<detector>-<strategy>/
        params.json        resolved run config
        rounds.jsonl       one line per round: per-silo train/eval figures, bytes sent
        params/round-NNN.pt  global parameters after round NNN (torch state dict)
        strategy/round-NNN.json  the strategy's own state after round NNN, if it keeps any
        summary.json       final per-silo and overall metrics
        report.md          a short human-readable report
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fedlog.metrics import MIN_VAL_NORMAL, pooled_metrics

HEADLINE = ("precision", "recall", "f1", "auroc", "aupr")
STRATEGY_STATE = "strategy"  # strategy/round-NNN.json: a strategy's state after that round


def parse_round_spec(spec: str) -> tuple[Path, int | None]:
    """``RUN_DIR[:ROUND]`` -> (run directory, round or None for the last one)."""
    run, sep, round_text = spec.rpartition(":")
    if sep and round_text.isdigit():
        return Path(run).expanduser(), int(round_text)
    return Path(spec).expanduser(), None


def load_global_state(run_dir: Path, round_idx: int | None = None) -> tuple[int, dict[str, torch.Tensor]]:
    """The global parameters after ``round_idx``; by default the round the run selected without test
    labels (summary.json's ``selected_round``), or the last persisted round."""
    rounds = sorted(int(p.stem.split("-")[1]) for p in (run_dir / "params").glob("round-*.pt"))
    if not rounds:
        raise ValueError(f"{run_dir}: no params/round-*.pt, not a finished fedlog run directory")
    summary = run_dir / "summary.json"
    selected = json.loads(summary.read_text()).get("selected_round") if summary.exists() else None
    chosen = round_idx if round_idx is not None else selected if selected is not None else rounds[-1]
    if chosen not in rounds:
        raise ValueError(f"{run_dir}: no parameters for round {chosen}; rounds persisted: {rounds}")
    return chosen, torch.load(run_dir / "params" / f"round-{chosen:03d}.pt")


def _clean(value: Any) -> Any:
    """JSON has no NaN: undefined metrics become null."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _dump(value: Any) -> str:
    return json.dumps(_clean(value), sort_keys=True)


def summarize(silos: Mapping[str, Mapping[str, Any]], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """summary.json's shape, shared by training runs and ``fedlog detect``: per silo plus pooled overall."""
    overall = pooled_metrics(list(silos.values())) if silos else {}
    return {"silos": dict(sorted(silos.items())), "overall": overall} | dict(extra or {})


class RunDirectory:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.time()

    @classmethod
    def create(cls, output_dir: str | Path, name: str, params: Mapping[str, Any]) -> RunDirectory:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        root = Path(output_dir).expanduser().resolve()
        path = root / f"{stamp}-{name}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = root / f"{stamp}-{name}-{suffix}"
        (path / "params").mkdir(parents=True)
        (path / "params.json").write_text(json.dumps(dict(params), indent=2, sort_keys=True))
        return cls(path)

    def save_parameters(self, round_idx: int, state: Mapping[str, torch.Tensor]) -> Path:
        target = self.path / "params" / f"round-{round_idx:03d}.pt"
        torch.save(dict(state), target)
        return target

    @staticmethod
    def load_round(spec: str) -> tuple[int, dict[str, torch.Tensor], dict[str, Any]]:
        """``RUN_DIR:ROUND`` -> (round, global parameters after it, the strategy's persisted state)."""
        root, round_idx = parse_round_spec(spec)
        if round_idx is None:
            raise ValueError(f"resume-from must be RUN_DIR:ROUND, got {spec!r}")
        round_idx, state = load_global_state(root, round_idx)
        saved = root / STRATEGY_STATE / f"round-{round_idx:03d}.json"
        return round_idx, state, json.loads(saved.read_text()) if saved.exists() else {}

    def save_strategy_state(self, round_idx: int, state: Mapping[str, Any]) -> None:
        """What a strategy must carry across a resume (FedGradTrace's trajectories), whatever it is."""
        if state:
            self.save_json(f"{STRATEGY_STATE}/round-{round_idx:03d}.json", state)

    def save_json(self, relative: str, value: Any) -> Path:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_dump(value))
        return target

    def append_round(self, record: Mapping[str, Any]) -> None:
        with (self.path / "rounds.jsonl").open("a") as out:
            out.write(_dump(record) + "\n")

    def rounds(self) -> list[dict[str, Any]]:
        file = self.path / "rounds.jsonl"
        return [json.loads(line) for line in file.read_text().splitlines()] if file.exists() else []

    def finish(self, silos: Mapping[str, Mapping[str, Any]], extra: Mapping[str, Any] | None = None) -> dict:
        """Write summary.json and report.md: per silo and pooled overall, for the round the run selected
        by its label-free selection score (see ``select_round``), with the last round's figures beside."""
        rounds = self.rounds()
        timing = {"wall_time_s": round(time.time() - self.started, 2), "rounds": len(rounds)}
        selected = select_round(rounds)
        if selected is not None:
            round_idx, score, evals = selected
            last = summarize(silos, {"round": rounds[-1]["round"] if rounds else None})
            timing |= {"selected_round": round_idx, "selection": score, "last_round": last}
            silos = evals
        summary = summarize(silos, timing | dict(extra or {}))
        (self.path / "summary.json").write_text(json.dumps(_clean(summary), indent=2, sort_keys=True))
        (self.path / "report.md").write_text(self._report(summary))
        return summary

    def _report(self, summary: Mapping[str, Any]) -> str:
        params = json.loads((self.path / "params.json").read_text())
        lines = [
            f"# fedlog run `{self.path.name}`",
            "",
            f"Detector `{params.get('detector')}`, strategy `{params.get('strategy', '-')}`, "
            f"{summary['rounds']} round(s), wall time {summary['wall_time_s']} s.",
            *_selection_lines(summary),
            *_privacy_lines(summary),
            *_secagg_lines(params),
            "Thresholds are set on normal validation windows only; test labels are used "
            "only to score the final figures below.",
            "",
            "| silo | " + " | ".join(HEADLINE) + " | test windows | anomalous | F1 of flagging all |",
            "|---|" + "---|" * (len(HEADLINE) + 3),
        ]
        rows = list(summary["silos"].items()) + [("overall", summary["overall"])]
        for name, m in rows:
            cells = [_fmt(m.get(k)) for k in HEADLINE]
            n, pos = _counts(m)
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {n} | {pos} | {_fmt(_flag_all_f1(n, pos))} |")
        warnings = silo_warnings(summary["silos"])
        if warnings:
            lines += ["", "Warnings:", *(f"- {w}" for w in warnings)]
        lines += ["", "Per-round figures: `rounds.jsonl`; global parameters: `params/`.", ""]
        return "\n".join(lines)


def select_round(rounds: Sequence[Mapping[str, Any]]) -> tuple[int, float, dict[str, dict]] | None:
    """The round whose evaluation had the best example-weighted mean ``selection`` score over silos
    (validation only: normals against pseudo-anomalies, or a supervised detector's labelled validation
    windows), the later one on ties; with its score
    and per-silo figures. None when no round recorded a selection score."""
    best = None
    for record in rounds:
        evals = {n: s["eval"] for n, s in record.get("silos", {}).items() if "eval" in s}
        scored = [(m["selection"], m.get("examples", 1)) for m in evals.values() if m.get("selection") is not None]
        if not scored:
            continue
        score = sum(v * n for v, n in scored) / (sum(n for _, n in scored) or 1)
        if best is None or score >= best[1]:
            best = (int(record["round"]), float(score), evals)
    return best


def _counts(m: Mapping[str, Any]) -> tuple[int, int]:
    """(test windows, anomalous test windows) from confusion counts."""
    n = int(m.get("tp", 0) + m.get("fp", 0) + m.get("tn", 0) + m.get("fn", 0))
    return n, int(m.get("tp", 0) + m.get("fn", 0))


def _flag_all_f1(n: int, pos: int) -> float:
    """F1 of the rule that flags every window: the floor any detector's F1 must be read against."""
    return 2 * pos / (n + pos) if n else math.nan


def silo_warnings(silos: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Where a silo's figures mean little: too few normal validation windows to set a threshold on,
    or a test part so anomalous that flagging everything already scores well."""
    out = []
    for name, m in sorted(silos.items()):
        n, pos = _counts(m)
        val_normal = m.get("val-normal")
        if val_normal is not None and val_normal < MIN_VAL_NORMAL:
            out.append(
                f"**{name}**: only {int(val_normal)} normal validation window(s): its threshold comes from "
                "training normals, which the model has fitted, so it flags too little or too much"
            )
        if n and pos / n > 0.5:
            out.append(
                f"**{name}**: {pos / n:.0%} of its test windows are anomalous; flagging every window scores "
                f"F1 {_flag_all_f1(n, pos):.3f}, so its F1 says little (evaluate it line by line)"
            )
        elif n and pos == 0:
            out.append(f"**{name}**: no anomalous test window, so its recall and F1 are undefined (shown as 0)")
    return out


def _selection_lines(summary: Mapping[str, Any]) -> list[str]:
    if "selected_round" not in summary:
        return []
    last = summary["last_round"]
    on_labels = [n for n, m in summary.get("silos", {}).items() if m.get("selection-on-labels")]
    how = "normal validation windows against pseudo-anomalies"
    if on_labels:  # a supervised detector: average precision on the labelled validation windows
        how = f"average precision on the labelled validation windows of {', '.join(on_labels)}, elsewhere " + how
    return [
        f"Figures below are round {summary['selected_round']}'s, the round the run selected without test labels "
        f"(best selection score {summary['selection']:.4f}: {how}); "
        f"the last round ({last['round']}) scored overall F1 {_fmt(last['overall'].get('f1'))}.",
    ]


def _privacy_lines(summary: Mapping[str, Any]) -> list[str]:
    """The privacy spent by a run with differential privacy (``privacy``: the last round's ledger)."""
    spent = summary.get("privacy")
    if not spent:
        return []
    return [
        f"Differential privacy (`dp.mode={spent['mode']}`, noise multiplier {spent['noise_multiplier']:g}, "
        f"clipping norm {spent['clipping_norm']:.4g}): epsilon {spent['epsilon']:.3f} at delta {spent['delta']:g} "
        "after all rounds, per silo (RDP accountant; per round in `rounds.jsonl`).",
    ]


def _secagg_lines(params: Mapping[str, Any]) -> list[str]:
    if not params.get("secagg.enabled"):
        return []
    return ["Secure aggregation (SecAgg+): the server saw only the weighted mean of the silos' parameters."]


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}"
