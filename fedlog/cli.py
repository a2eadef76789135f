"""The ``fedlog`` command: federated simulation, centralized training, detection, benchmarks."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from fedlog.config import RunSettings, absolutize, default_run_config, load_overlay
from fedlog.data.custom import CUSTOM
from fedlog.data.loaders import FORMATS

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


def resolved_config(args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults from pyproject.toml (or ``base``) <- overlay file <- --set overrides; unknown keys are errors."""
    config = default_run_config() | (base or {})
    overrides: dict[str, Any] = {}
    for overlay in args.config or []:
        overrides |= load_overlay(overlay)
    overrides |= _parse_overrides(args.set or [])
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise SystemExit(f"unknown run-config key(s): {', '.join(unknown)}")
    return absolutize(config | overrides)


def refuse_early(settings: RunSettings) -> None:
    """A refused DP / SecAgg+ combination stops here, before a SuperLink starts (the ServerApp refuses too)."""
    from strategies import STRATEGIES  # the CLI is the one place that reaches across
    from strategies.refusals import RefusedCombination, check_combination

    if settings.strategy in STRATEGIES:
        try:
            check_combination(settings, STRATEGIES)
        except RefusedCombination as refused:
            raise SystemExit(f"refused: {refused}") from None


def cmd_run(args: argparse.Namespace) -> int:
    from fedlog.config import RunSettings, for_nodes
    from fedlog.simulation import run_simulation

    config = resolved_config(args)
    settings = RunSettings.from_flat(config)
    refuse_early(settings)
    n = args.supernodes or len(settings.silo_entries)
    config = for_nodes(config, n)
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
    from fedlog.parse.accuracy import grouping_accuracy_table

    _print_figures(parse_throughput(args.format, Path(args.path), raw=not args.no_raw))
    loghub_2k = Path(args.loghub_2k)
    if not loghub_2k.is_dir():
        print(f"\n(no grouping accuracy: {loghub_2k} not found; give --loghub-2k DIR)")
        return 0
    print(f"\nLoghub grouping accuracy on {loghub_2k} (each 2,000-line sample mined whole, per-system settings)")
    print("| system | lines | templates (truth) | fedlog | Drain, published | |")
    print("|---|---|---|---|---|---|")
    for row in grouping_accuracy_table(loghub_2k):
        published = "n/a" if row.published is None else f"{row.published:.3f}"
        verdict = "" if row.published is None else "ok" if row.accuracy >= row.published else "below"
        print(
            f"| {row.system} | {row.lines} | {row.templates} ({row.truth_templates}) | {row.accuracy:.4f} "
            f"| {published} | {verdict} |"
        )
    return 0


def _print_figures(result: dict[str, Any]) -> None:
    width = max(len(k) for k in result)
    for key, value in result.items():
        shown = f"{value:,.2f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")


def cmd_bench_detect(args: argparse.Namespace) -> int:
    from fedlog.bench import detect_throughput

    run_dir = Path(args.run).expanduser().resolve() if args.run else None
    result = detect_throughput(Path(args.path), args.format, run_dir, workers=args.workers, repeat=args.repeat)
    _print_figures(result)
    n = result["workers"]
    ratios = {"1 worker": result["ratio_1_worker_to_add"], f"{n} workers": result[f"ratio_{n}_workers_to_add"]}
    for label, ratio in ratios.items():
        verdict = "faster than" if ratio >= 1 else "slower than"
        print(f"detect end to end, {label}: {ratio:.2f}x raw Drain3 add_log_message on one core ({verdict})")
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


def _alert_line(record: dict) -> str:
    where = f"{record['first']['file']}:{record['first']['line']}-{record['last']['line']}"
    head = f"ALERT {record['window']} {where} score {record['score']:.4g} > {record['threshold']:.4g}"
    lines = [
        f"  line {t['line']} [{t['event']}, +{t['contribution']:.3g}] {t['text'][:160]}" for t in record["top_lines"]
    ]
    return "\n".join([head, *lines])


def cmd_detect(args: argparse.Namespace) -> int:
    import signal
    import threading
    import time

    from fedlog.detect import Scorer, detect_files, follow_files

    run_dir = Path(args.run).expanduser().resolve()
    scorer = Scorer.from_run(run_dir, args.format, args.round, args.silo, args.calibrate, args.window, args.top)
    out = Path(args.out) if args.out else run_dir / "detect" / f"{time.strftime('%Y%m%d-%H%M%S')}-{args.format}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    for note in scorer.notes:
        print(f"[fedlog] {note}")
    paths = [Path(p) for p in args.logs]
    with out.open("w") as handle:
        if args.follow:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            print(f"[fedlog] following {', '.join(map(str, paths))} (Ctrl-C to stop)", flush=True)

            def on_record(record: dict) -> None:
                if record["anomalous"]:
                    print(_alert_line(record), flush=True)

            summary = follow_files(scorer, paths, handle, stop, on_record, args.poll, args.idle, not args.from_end)
        else:
            summary = detect_files(scorer, paths, handle, Path(args.labels) if args.labels else None, args.workers)
    summary_path = out.with_suffix(".summary.json")
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    load = summary["load"]
    print(
        f"[fedlog] {load['lines_read']} lines ({load['records']} records, {load['continuation']} continuation, "
        f"{load['malformed']} malformed, {load['undecodable']} undecodable, {load['blank']} blank, "
        f"{load['unterminated']} unterminated), {summary['windows']} windows scored, "
        f"{summary['alerts']} alerts at threshold {summary['threshold']}"
    )
    for name, m in summary["silos"].items():
        print(
            f"[fedlog] {name}: P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f} "
            f"AUROC {m['auroc']:.3f} AUPR {m['aupr']:.3f} on {m['examples']} labelled windows"
        )
    print(f"windows: {out}\nsummary: {summary_path}")
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
        print("fedlog compare: a row failed or fell below its F1 floor", file=sys.stderr)
    return 0 if passed else 1


def _session(args: argparse.Namespace, entry: str, params: str = "", **fixed: Any) -> tuple[Any, str]:
    """The silo session of ``entry`` (default: the run's or the config's first silo) and, with ``params``
    (``RUN_DIR[:ROUND]``), that run's config and global parameters; returns (session, where they came from)."""
    from fedlog.config import RunSettings
    from fedlog.rundir import parse_round_spec
    from fedlog.session import SiloSession

    run, round_idx = parse_round_spec(params) if params else (None, None)
    recorded_file = run / "params.json" if run else None
    recorded = json.loads(recorded_file.read_text()) if recorded_file and recorded_file.exists() else {}
    config = resolved_config(args, recorded) | fixed
    settings = RunSettings.from_flat(config)
    session = SiloSession.open(settings, entry or recorded.get("silo") or settings.silo_entries[0])
    if run is None:
        return session, ""
    return session, f"after round {session.load_run(run, round_idx)} of {run}"


def cmd_bench_infer(args: argparse.Namespace) -> int:
    import torch

    from fedlog.efficiency import efficiency_rows, format_rows

    if args.threads:
        torch.set_num_threads(args.threads)
    session, origin = _session(args, args.silo, args.params, detector="distilbert")
    settings, split = session.settings, session.silo.split
    if origin:
        origin = f"global student {origin}"
    else:
        list(session.train_locally(settings.num_rounds, settings.local_epochs))
        origin = f"student distilled locally for {settings.num_rounds} x {settings.local_epochs} epoch(s)"
    windows = split.test[: args.windows] if args.windows else split.test
    where = f"{session.name} silo {session.source.path}"
    print(f"{where}: {len(windows)} test windows; {origin}; device {session.detector.device}")
    print(format_rows(efficiency_rows(session.detector, split, windows), torch.get_num_threads()))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Local root cause: SHAP on this client's windows with the global model, its own templates."""
    from fedlog.explain.rootcause import format_table, root_causes

    session, origin = _session(args, args.silo, args.params)
    settings = session.settings
    samples = args.samples or settings.explain_samples
    top_n = args.top_n or settings.explain_top_n
    explanation, windows = session.explain(samples, top_n, settings.seed)
    causes = root_causes(session.silo, explanation, windows, session.detector.score(windows).tolist())
    print(f"{session.name} silo {session.source.path}: {settings.detector} {origin}")
    print(f"SHAP (Partition) on {explanation.samples} test windows; top {len(causes)} event ids by mean |SHAP|\n")
    print(format_table(causes))
    return 0


# -- deployment (fedlog.deploy): certificates and the Flower command lines -------------------------


def cmd_certs(args: argparse.Namespace) -> int:
    from fedlog import deploy

    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    paths = deploy.make_certs(Path(args.dir), hosts, args.supernode or [], overwrite=args.overwrite)
    print(f"CA:                {paths.ca_cert}  (copy to every SuperNode and flwr CLI machine)")
    print(f"SuperLink cert:    {paths.server_cert} + {paths.server_key}  (SANs: {', '.join(hosts)} + loopback)")
    print(f"federation key:    {paths.federation_key}  (SuperNodes only, never the SuperLink)")
    for name in args.supernode or []:
        print(f"SuperNode {name}: {paths.node_private(name)} (stays on it), {paths.node_public(name)} (register it)")
        print("    " + deploy.shell(deploy.register_command(paths.node_public(name), args.connection)))
    print("\nflwr connection for $FLWR_HOME/config.toml (default ~/.flwr) on the operator's machine:\n")
    print(deploy.connection_toml(args.connection, f"{hosts[0]}:9093", paths))
    return 0


def _exec_or_print(cmd: list[str], args: argparse.Namespace, env: dict[str, str] | None = None) -> int:
    import os

    from fedlog import deploy
    from fedlog.simulation import flower_binary

    prefix = "".join(f"{k}={v} " for k, v in (env or {}).items())
    print(prefix + deploy.shell(cmd), flush=True)
    if args.print_only:
        return 0
    binary = flower_binary(cmd[0])  # this environment's Flower, also when it is not on PATH
    os.execvpe(binary, [binary, *cmd[1:]], os.environ | (env or {}))  # signals then reach Flower directly


def cmd_superlink(args: argparse.Namespace) -> int:
    from fedlog import deploy

    certs = None if args.insecure else deploy.CertPaths(Path(args.certs).resolve())
    cmd = deploy.superlink_command(certs, host=args.host, port=args.port, database=args.database)
    return _exec_or_print(cmd, args)


def cmd_supernode(args: argparse.Namespace) -> int:
    """flower-supernode for the silo, and in this process its ClientApp launcher (``fedlog.forkexec``)."""
    import os
    import subprocess

    from fedlog import deploy, forkexec
    from fedlog.parse.hashing import KEY_ENV, KEY_FILE_ENV, MISSING_KEY_HELP
    from fedlog.simulation import flower_binary

    certs = None if args.insecure else deploy.CertPaths(Path(args.certs).resolve())
    key = Path(args.key).resolve() if args.key else None
    cmd = deploy.supernode_command(
        args.superlink, args.silo, certs, args.name, args.partition, args.clientapp_port, private_key=key
    )
    env = {}
    if not (os.environ.get(KEY_ENV) or os.environ.get(KEY_FILE_ENV)):  # the operator's own key wins
        key_file = deploy.CertPaths(Path(args.certs).resolve()).federation_key
        if not key_file.is_file():  # refuse now rather than fail every round
            print(f"fedlog supernode: {MISSING_KEY_HELP} (no {key_file} either)", file=sys.stderr)
            return 2
        env = {KEY_FILE_ENV: str(key_file)}
    prefix = "".join(f"{k}={v} " for k, v in env.items())
    print(prefix + deploy.shell(cmd) + " &", flush=True)
    print(prefix + deploy.shell(deploy.launcher_command(args.clientapp_port)), flush=True)
    if args.print_only:
        return 0
    os.environ.update(env)  # the SuperNode and every ClientApp the launcher forks
    node = subprocess.Popen([flower_binary(cmd[0]), *cmd[1:]])
    try:
        forkexec.serve(f"127.0.0.1:{args.clientapp_port}", parent_pid=node.pid)
    finally:
        node.terminate()
    return node.wait()


def cmd_rehearse(args: argparse.Namespace) -> int:
    """The run deployed on loopback (TLS + node auth), then simulated with the same key: both wall times."""
    import os
    import signal
    import time

    from fedlog.config import RunSettings, for_nodes
    from fedlog.loopback import LoopbackFederation
    from fedlog.parse.hashing import KEY_ENV, federation_key
    from fedlog.silo import prepare_silo
    from fedlog.simulation import run_simulation

    config = resolved_config(args)
    settings = RunSettings.from_flat(config)
    entries = settings.silo_entries
    config = for_nodes(config, len(entries))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the federation's processes are stopped
    with LoopbackFederation() as fed:
        if fed.made_key is not None:  # the key the SuperNodes get, also for the silos prepared here
            os.environ[KEY_ENV] = fed.made_key.read_text().strip()
        # Parse and cache every silo now, as each client does on its first message: both runs then load it
        # from this host's cache, so neither clock holds a one-off parse that the other run reuses.
        preparing = time.time()
        for entry in entries:
            prepare_silo(settings.silo_source(entry), settings.split, federation_key())
        started = time.time()
        fed.start_superlink()
        for i, entry in enumerate(entries):
            fed.register(f"node{i}")
            fed.add_supernode(f"node{i}", entry)
        fed.wait_for_nodes(len(entries))
        ready = time.time()
        run_dir, _ = fed.run(APP_DIR, config)
        made_key = fed.made_key is not None
    done = time.time()
    print(f"\nrun directory (deployed): {run_dir}")
    if made_key:  # the SuperNodes' key dies with the rehearsal: this is how a simulation reproduces the ids
        print(f"federation key made for this rehearsal: {KEY_ENV}={os.environ[KEY_ENV]}")
    print((run_dir / "report.md").read_text())

    def served(run: Path) -> float:  # the ServerApp's own clock: run directory created -> summary written
        return float(json.loads((run / "summary.json").read_text())["wall_time_s"])

    rows = [
        ("silos prepared (parsed once, cached for both runs)", started - preparing),
        ("federation up (SuperLink, SuperNodes)", ready - started),
        ("ServerApp run (summary.json)", served(run_dir)),
        ("total", done - started),
    ]
    if args.no_simulation:
        print("\n".join(f"deployed {name}: {seconds:.1f} s" for name, seconds in rows))
        return 0
    sim = run_simulation(APP_DIR, config, num_supernodes=len(entries), stream=False)
    print(f"run directory (simulated, same key): {sim.run_dir}")
    simulated = {"ServerApp run (summary.json)": served(sim.run_dir), "total": sim.wall_time_s}
    print(f"\n| wall time, {len(entries)} silos | deployed (TLS + node auth, loopback) | simulated |\n|---|---|---|")
    for name, seconds in rows:
        other = f"{simulated[name]:.1f} s" if name in simulated else "-"
        print(f"| {name} | {seconds:.1f} s | {other} |")
    return 0


def _deploy_parsers(sub: argparse._SubParsersAction) -> None:
    rehearse = sub.add_parser(
        "rehearse", help="the run as a real deployment on this host: SuperLink + one SuperNode per silo, TLS + auth"
    )
    _common(rehearse)
    rehearse.add_argument("--no-simulation", action="store_true", help="skip the simulated run beside it")
    rehearse.set_defaults(func=cmd_rehearse)

    certs = sub.add_parser("certs", help="CA, SuperLink TLS certificate, SuperNode key pairs, federation key")
    certs.add_argument("dir", help="output directory")
    certs.add_argument("--hosts", required=True, help="comma-separated names/IPs the SuperLink is reached at")
    certs.add_argument("--supernode", action="append", metavar="NAME", help="a key pair per SuperNode (repeatable)")
    certs.add_argument("--connection", default="fedlog", help="flwr connection name for the printed commands")
    certs.add_argument("--overwrite", action="store_true", help="replace an existing CA (re-issue everything)")
    certs.set_defaults(func=cmd_certs)

    link = sub.add_parser("superlink", help="start flower-superlink with TLS and SuperNode authentication")
    link.add_argument("--certs", default="certs", help="directory written by `fedlog certs`")
    link.add_argument("--host", default="0.0.0.0")
    link.add_argument("--port", type=int, default=9093)
    link.add_argument("--database", default="superlink.db", help="keeps registered SuperNodes across restarts")
    link.add_argument("--insecure", action="store_true", help="no TLS, no authentication (trusted networks only)")
    link.add_argument("--print-only", action="store_true", help="print the command instead of running it")
    link.set_defaults(func=cmd_superlink)

    node = sub.add_parser(
        "supernode", help="start flower-supernode for one silo (TLS + its key) and its ClientApp launcher"
    )
    node.add_argument("--superlink", required=True, help="HOST:PORT of the SuperLink")
    node.add_argument("--silo", required=True, help="FORMAT=PATH of this machine's logs")
    node.add_argument("--name", default="", help="key pair name given to `fedlog certs --supernode`")
    node.add_argument("--key", default="", help="private key path (default: CERTS/supernodes/NAME.key)")
    node.add_argument("--certs", default="certs", help="directory with ca.crt (and federation.key)")
    node.add_argument(
        "--partition", type=int, required=True, help="this silo's number in the records (distinct per SuperNode)"
    )
    node.add_argument("--clientapp-port", type=int, default=9094)
    node.add_argument("--insecure", action="store_true", help="no TLS, no authentication (trusted networks only)")
    node.add_argument("--print-only", action="store_true", help="print the commands instead of running them")
    node.set_defaults(func=cmd_supernode)


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

    compare = sub.add_parser("compare", help="detectors x modes (local/federated/pooled) x strategies x seeds")
    compare.add_argument("spec", help="comparison TOML ([compare] detectors/modes/strategies/seeds/f1-floor, [run])")
    compare.add_argument("--out", default="runs", help="where the comparison directory goes")
    compare.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one run-config key")
    compare.set_defaults(func=cmd_compare)

    detect = sub.add_parser("detect", help="score new logs with a finished run's global model (batch or --follow)")
    detect.add_argument("logs", nargs="+", help="log files or directories of one format")
    detect.add_argument("--run", required=True, help="a run directory (federated or centralized)")
    detect.add_argument("--round", type=int, default=None, help="this round's parameters (default: the selected)")
    detect.add_argument(
        "--format", required=True, choices=(*FORMATS, CUSTOM), help="custom: read as the run's custom.* settings say"
    )
    detect.add_argument(
        "--labels", help="HDFS anomaly_label.csv / Hadoop abnormal_label.txt / custom key,label CSV, for P/R/F1"
    )
    detect.add_argument("--out", help="JSON lines, one per window (default: RUN/detect/<time>-<format>.jsonl)")
    detect.add_argument("--silo", default="", help="FORMAT=PATH: this client's training silo (default: the run's)")
    detect.add_argument("--calibrate", type=int, default=0, metavar="N", help="threshold from the first N windows")
    detect.add_argument("--window", default="", help="window spec (default: the run's for this format)")
    detect.add_argument("--top", type=int, default=3, help="lines named per anomalous window")
    detect.add_argument("--follow", action="store_true", help="tail the files (rotation-safe) and alert live")
    detect.add_argument("--from-end", action="store_true", help="with --follow: skip what the files hold now")
    detect.add_argument("--poll", type=float, default=0.2, help="with --follow: seconds between reads")
    detect.add_argument("--idle", type=float, default=2.0, help="with --follow: seconds after which a session ends")
    detect.add_argument(
        "--workers",
        type=int,
        default=1,
        help="batch: processes that read and mask the logs (0: one per core; default 1: this process only)",
    )
    detect.set_defaults(func=cmd_detect)
    explain = sub.add_parser("explain", help="a client's top SHAP event ids with its own templates (local only)")
    _common(explain)
    explain.add_argument("--params", required=True, help="RUN_DIR[:ROUND]: the run (its config, global parameters)")
    explain.add_argument("--silo", default="", help="FORMAT=PATH (default: the run's first silo)")
    explain.add_argument("--samples", type=int, default=0, help="windows to explain (default: explain.samples)")
    explain.add_argument("--top-n", type=int, default=0, help="ids to show (default: explain.top-n)")
    explain.set_defaults(func=cmd_explain)

    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    parse = bench_sub.add_parser("parse", help="load + Drain3 mine/match throughput (lines/s)")
    parse.add_argument("--format", default="hdfs")
    parse.add_argument("--no-raw", action="store_true", help="skip the plain-Drain3 comparison")
    parse.add_argument("path", nargs="?", default="../shared/data/hdfs/HDFS_2pct.log")
    parse.add_argument("--loghub-2k", default="../shared/data/loghub-2k", help="Loghub's 2k samples (accuracy)")
    parse.set_defaults(func=cmd_bench_parse)
    bdetect = bench_sub.add_parser("detect", help="fedlog detect end to end (lines/s) vs raw Drain3")
    bdetect.add_argument("--format", default="hdfs", choices=FORMATS)
    bdetect.add_argument("--run", help="a run directory (default: untrained FastLogAD, calibrated threshold)")
    bdetect.add_argument("path", nargs="?", default="../shared/data/hdfs/HDFS_2pct.log")
    bdetect.add_argument("--workers", type=int, default=0, help="workers of the second figure (0: one per core)")
    bdetect.add_argument("--repeat", type=int, default=3, help="interleaved rounds; each figure is the best")
    bdetect.set_defaults(func=cmd_bench_detect)
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
    _deploy_parsers(sub)
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
