"""Benchmarks that print figures (not timed unit tests)."""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import torch
from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

from fedlog.data.loaders import load_silo
from fedlog.parse.drain import FORMAT_SETTINGS, EventParser
from fedlog.parse.hashing import DEMO_KEY


def _miner(fmt: str) -> TemplateMiner:
    """Plain Drain3 with the same settings as our parser."""
    settings = FORMAT_SETTINGS[fmt]
    config = TemplateMinerConfig()
    config.drain_sim_th, config.drain_depth = settings.sim_th, settings.depth
    config.masking_instructions = [MaskingInstruction(p, m) for p, m in settings.masking]
    config.profiling_enabled = False
    return TemplateMiner(config=config)


def parse_throughput(fmt: str, path: Path, train_fraction: float = 0.5, raw: bool = True) -> dict:
    started = time.perf_counter()
    silo = load_silo(fmt, path)
    t_load = time.perf_counter() - started
    contents = [r.content for r in silo.records]
    n_train = int(len(contents) * train_fraction)
    parser = EventParser(FORMAT_SETTINGS[fmt], DEMO_KEY)
    started = time.perf_counter()
    parser.mine(contents[:n_train])
    t_mine = time.perf_counter() - started
    started = time.perf_counter()
    parser.match_all(contents)
    t_match = time.perf_counter() - started
    n = len(contents)
    result = {
        "file": str(path),
        "lines": n,
        "templates": len(parser.templates),
        "unknown": parser.report.unknown,
        "load_lines_per_s": n / t_load,
        "mine_lines_per_s": n_train / t_mine,
        "match_lines_per_s": n / t_match,
        "parse_lines_per_s": n / (t_mine + t_match),
        "end_to_end_lines_per_s": n / (t_load + t_mine + t_match),
    }
    if raw:
        t_add, t_raw_match, _ = _raw_drain3(fmt, contents)
        result["raw_drain3_add_lines_per_s"] = n / t_add
        result["raw_drain3_match_lines_per_s"] = n / t_raw_match
    return result


class RawDrain3(NamedTuple):
    add_s: float  # plain Drain3 add_log_message over all lines, wall clock
    match_s: float  # then match over all lines
    add_cpu_s: float  # add_log_message in CPU seconds: what one core did, however busy the machine


def _raw_drain3(fmt: str, contents: list[str]) -> RawDrain3:
    miner = _miner(fmt)
    started, cpu = time.perf_counter(), time.process_time()
    for content in contents:
        miner.add_log_message(content)
    t_add, cpu_add = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    for content in contents:
        miner.match(content)
    return RawDrain3(t_add, time.perf_counter() - started, cpu_add)


def detect_throughput(
    path: Path,
    fmt: str = "hdfs",
    run_dir: Path | None = None,
    calibrate: int = 200,
    workers: int = 0,
    repeat: int = 3,
) -> dict:
    """End to end as ``fedlog detect`` runs it: read + parse + window + score (+ line scores of alerts),
    with one worker and with ``workers`` (0: one per core), against raw Drain3 in the same run.

    With a run directory its model, parser and threshold are used (loaded before the clock
    starts). Without one: an untrained default FastLogAD, a parser mined on the first half of
    the file (training, not timed) and a threshold calibrated on the first windows (timed).
    Each figure is the best of ``repeat`` interleaved rounds (raw Drain3, one worker, all
    workers), each from a cold start (fresh parser, caches and pool): the load of a shared
    machine comes and goes, and interleaving lets it hit all three alike. torch runs on one
    thread throughout, so "one core" is one core and the extra cores go to parsing workers.
    """
    from fedlog.data.chunks import Reading
    from fedlog.detect import Scorer, detect_files
    from fedlog.detectors import build_detector
    from fedlog.silo import DEFAULT_WINDOWS
    from fedlog.windows import WindowSpec

    workers = Reading.resolve_workers(workers)
    contents = [r.content for r in load_silo(fmt, path, require_labels=False).records]
    with tempfile.TemporaryDirectory() as tmp:
        parser_file = Path(tmp) / "parser.pkl"
        if run_dir is None:
            parser = EventParser(FORMAT_SETTINGS[fmt], DEMO_KEY)
            parser.mine(contents[: len(contents) // 2])
            parser.save(parser_file)

        def detect(n: int) -> dict:
            if run_dir is not None:
                scorer = Scorer.from_run(run_dir, fmt)
            else:
                detector = build_detector("fastlogad", {}, seed=42)
                spec = WindowSpec.parse(DEFAULT_WINDOWS[fmt])
                parser = EventParser.load(parser_file, DEMO_KEY)
                scorer = Scorer(fmt, spec, detector, parser, None, calibrate=calibrate, new_system=True)
            cpu = time.process_time()  # this process only: with workers, not a figure of the whole
            with open(os.devnull, "w") as sink:
                summary = detect_files(scorer, [path], sink, workers=n)
            return summary | {"distinct_event_sequences": scorer.distinct_sequences, "cpu": time.process_time() - cpu}

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            best = dict.fromkeys(("add", "match", "add_cpu", "one", "one_cpu", "all"), math.inf)
            for _ in range(repeat):
                raw = _raw_drain3(fmt, contents)
                one, every = detect(1), detect(workers)
                if (one["alerts"], one["windows"]) != (every["alerts"], every["windows"]):
                    raise AssertionError(f"{workers} workers gave other results than one: {every} vs {one}")
                seconds = (*raw, one["seconds"], one["cpu"], every["seconds"])
                for key, value in zip(("add", "match", "add_cpu", "one", "one_cpu", "all"), seconds):
                    best[key] = min(best[key], value)
        finally:
            torch.set_num_threads(threads)
    lines = one["load"]["lines_read"]
    return {
        "file": str(path),
        "lines": lines,
        "windows": one["windows"],
        "distinct_event_sequences": one["distinct_event_sequences"],
        "alerts": one["alerts"],
        "workers": workers,
        "repeat": repeat,
        "raw_drain3_add_lines_per_s": len(contents) / best["add"],
        "raw_drain3_match_lines_per_s": len(contents) / best["match"],
        "detect_1_worker_lines_per_s": lines / best["one"],
        f"detect_{workers}_workers_lines_per_s": lines / best["all"],
        "ratio_1_worker_to_add": best["add"] / best["one"],
        f"ratio_{workers}_workers_to_add": best["add"] / best["all"],
        "ratio_1_worker_to_match": best["match"] / best["one"],
        "ratio_1_worker_to_add_cpu_time": best["add_cpu"] / best["one_cpu"],
    }
