"""Benchmarks that print figures (not timed unit tests)."""

from __future__ import annotations

import time
from pathlib import Path

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

from fedlog.data.loaders import load_silo
from fedlog.parse.drain import FORMAT_SETTINGS, EventParser
from fedlog.parse.hashing import DEMO_KEY


def _raw_drain3(fmt: str, contents: list[str]) -> float:
    """Seconds for plain Drain3 TemplateMiner.add_log_message over all lines, same settings."""
    settings = FORMAT_SETTINGS[fmt]
    config = TemplateMinerConfig()
    config.drain_sim_th, config.drain_depth = settings.sim_th, settings.depth
    config.masking_instructions = [MaskingInstruction(p, m) for p, m in settings.masking]
    config.profiling_enabled = False
    miner = TemplateMiner(config=config)
    started = time.perf_counter()
    for content in contents:
        miner.add_log_message(content)
    return time.perf_counter() - started


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
        result["raw_drain3_add_lines_per_s"] = n / _raw_drain3(fmt, contents)
    return result
