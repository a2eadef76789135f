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
    from fedlog.simulation import _bin

    prefix = "".join(f"{k}={v} " for k, v in (env or {}).items())
    print(prefix + deploy.shell(cmd), flush=True)
    if args.print_only:
        return 0
    binary = _bin(cmd[0])  # this environment's Flower, also when it is not on PATH
    os.execvpe(binary, [binary, *cmd[1:]], os.environ | (env or {}))  # signals then reach Flower directly


def cmd_superlink(args: argparse.Namespace) -> int:
    from fedlog import deploy

    certs = None if args.insecure else deploy.CertPaths(Path(args.certs).resolve())
    cmd = deploy.superlink_command(certs, host=args.host, port=args.port, database=args.database)
    return _exec_or_print(cmd, args)


def cmd_supernode(args: argparse.Namespace) -> int:
    from fedlog import deploy

    certs = None if args.insecure else deploy.CertPaths(Path(args.certs).resolve())
    key = Path(args.key).resolve() if args.key else None
    cmd = deploy.supernode_command(
        args.superlink, args.silo, certs, args.name, args.partition, args.clientapp_port, private_key=key
    )
    env = {} if certs is None else {"FEDLOG_FEDERATION_KEY_FILE": str(certs.federation_key)}
    return _exec_or_print(cmd, args, env)


def cmd_rehearse(args: argparse.Namespace) -> int:
    import signal
    import time

    from fedlog.config import RunSettings
    from fedlog.loopback import LoopbackFederation

    config = resolved_config(args)
    entries = RunSettings.from_flat(config).silo_entries
    config["min-nodes"] = min(int(config["min-nodes"]), len(entries))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the federation's processes are stopped
    started = time.time()
    with LoopbackFederation() as fed:
        fed.start_superlink()
        for i, entry in enumerate(entries):
            fed.register(f"node{i}")
            fed.add_supernode(f"node{i}", entry)
        fed.wait_for_nodes(len(entries))
        ready = time.time()
        run_dir, _ = fed.run(APP_DIR, config)
    done = time.time()
    print(f"\nrun directory: {run_dir}")
    print(
        f"deployed with TLS + node auth on loopback, {len(entries)} SuperNodes: federation up in "
        f"{ready - started:.0f} s, run {done - ready:.0f} s, total {done - started:.0f} s"
    )
    print((run_dir / "report.md").read_text())
    return 0


def _deploy_parsers(sub: argparse._SubParsersAction) -> None:
    rehearse = sub.add_parser(
        "rehearse", help="the run as a real deployment on this host: SuperLink + one SuperNode per silo, TLS + auth"
    )
    _common(rehearse)
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

    node = sub.add_parser("supernode", help="start flower-supernode for one silo (TLS + its key)")
    node.add_argument("--superlink", required=True, help="HOST:PORT of the SuperLink")
    node.add_argument("--silo", required=True, help="FORMAT=PATH of this machine's logs")
    node.add_argument("--name", default="", help="key pair name given to `fedlog certs --supernode`")
    node.add_argument("--key", default="", help="private key path (default: CERTS/supernodes/NAME.key)")
    node.add_argument("--certs", default="certs", help="directory with ca.crt (and federation.key)")
    node.add_argument("--partition", type=int, default=None, help="number shown for this silo in the records")
    node.add_argument("--clientapp-port", type=int, default=9094)
    node.add_argument("--insecure", action="store_true", help="no TLS, no authentication (trusted networks only)")
    node.add_argument("--print-only", action="store_true", help="print the command instead of running it")
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

    compare = sub.add_parser("compare", help="run several strategies on the same silos and seeds")
    compare.add_argument("spec", help="comparison TOML ([compare] strategies/seeds/f1-floor, [run] overrides)")
    compare.add_argument("--out", default="runs", help="where the comparison directory goes")
    compare.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one run-config key")
    compare.set_defaults(func=cmd_compare)

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
