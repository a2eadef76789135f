"""The ``fedlog`` command: federated simulation, centralized training."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from fedlog.config import absolutize, default_run_config, load_overlay

APP_DIR = Path(__file__).resolve().parent.parent


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values parse as TOML scalars (numbers, booleans, quoted strings)."""
    import tomllib

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


def resolved_config(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults from pyproject.toml <- overlay file <- --set overrides; unknown keys are errors."""
    config = default_run_config()
    overrides: dict[str, Any] = {}
    for overlay in args.config or []:
        overrides |= load_overlay(overlay)
    overrides |= _parse_overrides(args.set or [])
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise SystemExit(f"unknown run-config key(s): {', '.join(unknown)}")
    return absolutize(config | overrides)


def cmd_run(args: argparse.Namespace) -> int:
    from fedlog.config import RunSettings
    from fedlog.simulation import run_simulation

    config = resolved_config(args)
    n = args.supernodes or len(RunSettings.from_flat(config).silo_entries)
    config["min-nodes"] = min(int(config["min-nodes"]), n)
    result = run_simulation(APP_DIR, config, num_supernodes=n, cpus_per_client=args.cpus_per_client)
    print(f"\nrun directory: {result.run_dir}  ({result.wall_time_s:.0f} s)")
    print((result.run_dir / "report.md").read_text())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from fedlog.centralized import train_centralized

    config = resolved_config(args)
    run_dir = train_centralized(config, args.silo)
    print(f"\nrun directory: {run_dir}")
    print((run_dir / "report.md").read_text())
    return 0


def cmd_bench_parse(args: argparse.Namespace) -> int:
    from fedlog.bench import parse_throughput

    result = parse_throughput(args.format, Path(args.path), raw=not args.no_raw)
    width = max(len(k) for k in result)
    for key, value in result.items():
        shown = f"{value:,.0f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    return 0


def cmd_bench_aggregate(args: argparse.Namespace) -> int:
    from strategies.benchmark import time_aggregation  # the CLI is the one place that reaches across

    rows = time_aggregation([int(c) for c in args.clients.split(",")], repeats=args.repeats)
    print(f"aggregation time per round, {rows[0]['parameters'] / 1e6:.1f}M parameters (median of {args.repeats})")
    print("| clients | FedAvg (s) | QualitySoftmax (s) | ratio | FedGradTrace (s) | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        qs, fg = r["quality-softmax"] / r["fedavg"], r["fedgradtrace"] / r["fedavg"]
        print(
            f"| {r['clients']} | {r['fedavg']:.3f} | {r['quality-softmax']:.3f} | {qs:.2f}x "
            f"| {r['fedgradtrace']:.3f} | {fg:.2f}x |"
        )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from fedlog.compare import run_comparison

    base = default_run_config()
    if args.set:
        base |= _parse_overrides(args.set)
    out, _, passed = run_comparison(APP_DIR, base, Path(args.spec), Path(args.out).resolve())
    print((out / "comparison.md").read_text())
    print(f"comparison directory: {out}")
    if not passed:
        print("fedlog compare: a strategy failed or fell below the F1 floor", file=sys.stderr)
    return 0 if passed else 1


def _global_parameters(spec: str) -> tuple[str, int, dict]:
    """``RUN_DIR[:ROUND]`` -> (run dir, round, global parameters); the last round by default."""
    from fedlog.rundir import RunDirectory

    run, sep, round_text = spec.rpartition(":")
    if not (sep and round_text.isdigit()):
        run = spec
        rounds = sorted(Path(run).expanduser().glob("params/round-*.pt"))
        if not rounds:
            raise ValueError(f"{run}: no params/round-*.pt (expected a run directory, optionally :ROUND)")
        round_text = rounds[-1].stem.removeprefix("round-")
    round_idx, state, _ = RunDirectory.load_round(f"{run}:{int(round_text)}")
    return run, round_idx, state


def cmd_bench_infer(args: argparse.Namespace) -> int:
    import torch

    from fedlog.config import RunSettings
    from fedlog.detectors import build_detector
    from fedlog.efficiency import efficiency_rows, format_rows
    from fedlog.parse.hashing import federation_key
    from fedlog.silo import prepare_silo

    if args.threads:
        torch.set_num_threads(args.threads)
    config = resolved_config(args) | {"detector": "distilbert"}
    settings = RunSettings.from_flat(config)
    source = settings.silo_source(args.silo)
    silo = prepare_silo(source, settings.split, federation_key())
    detector = build_detector("distilbert", settings.detector_config(), settings.seed)
    detector.attach(Path(silo.state_dir), silo.split)
    if args.params:
        run, round_idx, state = _global_parameters(args.params)
        detector.load_state(state)
        origin = f"global student after round {round_idx} of {run}"
    else:
        for round_idx in range(1, settings.num_rounds + 1):
            detector.train_round(silo.split.train, round_idx, settings.local_epochs)
        origin = f"student distilled locally for {settings.num_rounds} x {settings.local_epochs} epoch(s)"
    windows = silo.split.test[: args.windows] if args.windows else silo.split.test
    print(f"{source.fmt} silo {source.path}: {len(windows)} test windows; {origin}; device {detector.device}")
    print(format_rows(efficiency_rows(detector, silo.split, windows), torch.get_num_threads()))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Local root cause: SHAP on this client's windows with the global model, its own templates."""
    from fedlog.config import RunSettings
    from fedlog.detectors import build_detector
    from fedlog.explain.rootcause import format_table, root_causes
    from fedlog.explain.shap_ids import explain_split
    from fedlog.parse.hashing import federation_key
    from fedlog.silo import prepare_silo

    config = resolved_config(args)
    settings = RunSettings.from_flat(config)
    source = settings.silo_source(args.silo or settings.silo_entries[0])
    silo = prepare_silo(source, settings.split, federation_key())
    run, round_idx, state = _global_parameters(args.params)
    detector = build_detector(settings.detector, settings.detector_config(), settings.seed)
    detector.attach(Path(silo.state_dir), silo.split)
    detector.load_state(state)
    samples = args.samples or int(config["explain.samples"])
    top_n = args.top_n or int(config["explain.top-n"])
    explanation, windows = explain_split(detector, silo.split, samples, top_n, settings.seed)
    causes = root_causes(silo, explanation, windows, detector.score(windows).tolist())
    print(f"{source.fmt} silo {source.path}: {settings.detector} after round {round_idx} of {run}")
    print(f"SHAP (Partition) on {explanation.samples} test windows; top {len(causes)} event ids by mean |SHAP|\n")
    print(format_table(causes))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", action="append", help="configs/*.toml overlay (repeatable)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one run-config key")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedlog", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="federated simulation (flwr run on a private local SuperLink)")
    _common(run)
    run.add_argument("--supernodes", type=int, default=0, help="default: one per silo")
    run.add_argument("--cpus-per-client", type=float, default=1.0)
    run.set_defaults(func=cmd_run)

    train = sub.add_parser("train", help="centralized training on one silo, no Flower")
    _common(train)
    train.add_argument("--silo", default="", help="FORMAT=PATH (default: the first silo of data.silos)")
    train.set_defaults(func=cmd_train)

    compare = sub.add_parser("compare", help="run several strategies on the same silos and seeds")
    compare.add_argument("spec", help="comparison TOML ([compare] strategies/seeds/f1-floor, [run] overrides)")
    compare.add_argument("--out", default="runs", help="where the comparison directory goes")
    compare.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one run-config key")
    compare.set_defaults(func=cmd_compare)

    explain = sub.add_parser("explain", help="a client's top SHAP event ids with its own templates (local only)")
    _common(explain)
    explain.add_argument("--params", required=True, help="RUN_DIR[:ROUND] with the global parameters (default: last)")
    explain.add_argument("--silo", default="", help="FORMAT=PATH (default: the first silo of data.silos)")
    explain.add_argument("--samples", type=int, default=0, help="windows to explain (default: explain.samples)")
    explain.add_argument("--top-n", type=int, default=0, help="ids to show (default: explain.top-n)")
    explain.set_defaults(func=cmd_explain)

    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    parse = bench_sub.add_parser("parse", help="load + Drain3 mine/match throughput (lines/s)")
    parse.add_argument("--format", default="hdfs")
    parse.add_argument("--no-raw", action="store_true", help="skip the plain-Drain3 comparison")
    parse.add_argument("path", nargs="?", default="../shared/data/hdfs/HDFS_2pct.log")
    parse.set_defaults(func=cmd_bench_parse)
    agg = bench_sub.add_parser("aggregate", help="FedAvg vs QualitySoftmax vs FedGradTrace on a 66M model")
    agg.add_argument("--clients", default="4,2,8,16")
    agg.add_argument("--repeats", type=int, default=3)
    agg.set_defaults(func=cmd_bench_aggregate)
    infer = bench_sub.add_parser("infer", help="distilbert teacher vs student: size, FLOPs, memory, latency, F1")
    _common(infer)
    infer.add_argument("--silo", default=f"hdfs={APP_DIR.parent / 'shared/data/hdfs/HDFS_2pct.log'}")
    infer.add_argument("--params", default="", help="RUN_DIR[:ROUND]: the federated student (default: distil here)")
    infer.add_argument("--windows", type=int, default=0, help="test windows to time (default: all)")
    infer.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    infer.set_defaults(func=cmd_bench_infer)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, OSError) as err:
        print(f"fedlog: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
