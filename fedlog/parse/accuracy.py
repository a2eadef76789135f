"""Loghub's grouping accuracy, measured for fedlog's parser on Loghub's 2k samples.

A parser is only as useful as the events it groups lines into, so we measure it the way the
Loghub benchmark does (Zhu et al., "Tools and Benchmarks for Automated Log Parsing", ICSE-SEIP
2019): a line is correct when the set of lines in its parsed group equals the set of lines in its
ground-truth group; accuracy = correct lines / all lines.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fedlog.parse.drain import FORMAT_SETTINGS, EventParser
from fedlog.parse.hashing import DEMO_KEY

# Drain's grouping accuracy on each Loghub 2k sample, as published in Zhu et al. 2019, Table II
# (arXiv:1811.03509); the same figures are in the logpai/logparser README benchmark table.
PUBLISHED_DRAIN: dict[str, float] = {
    "HDFS": 0.998,
    "Hadoop": 0.948,
    "Spark": 0.920,
    "Zookeeper": 0.967,
    "BGL": 0.963,
    "HPC": 0.887,
    "Thunderbird": 0.955,
    "Windows": 0.997,
    "Linux": 0.690,
    "Android": 0.911,
    "HealthApp": 0.780,
    "Apache": 1.000,
    "Proxifier": 0.527,
    "OpenSSH": 0.788,
    "OpenStack": 0.733,
    "Mac": 0.787,
}


def grouping_accuracy(truth: Sequence[Hashable], predicted: Sequence[Hashable | None]) -> float:
    """Share of lines whose predicted group holds exactly the lines of their true group.

    ``None`` (an unknown event) groups a line with nothing, so it counts only where the true group
    is that line alone: unknowns must not look like one big correct group.
    """
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predicted")
    if not truth:
        raise ValueError("no lines to score")
    labels = [("unknown", i) if p is None else ("event", p) for i, p in enumerate(predicted)]
    truth_size = Counter(truth)
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        members[label].append(i)
    correct = 0
    for lines in members.values():
        true_labels = {truth[i] for i in lines}
        if len(true_labels) == 1 and truth_size[true_labels.pop()] == len(lines):
            correct += len(lines)
    return correct / len(truth)


@dataclass(frozen=True)
class AccuracyRow:
    """One system's result, next to what Drain's authors published for the same sample."""

    system: str
    lines: int
    templates: int
    truth_templates: int
    accuracy: float
    published: float | None


def read_structured(path: Path) -> tuple[list[str], list[str]]:
    """Contents and ground-truth event ids of a Loghub ``*_structured.csv`` (Loghub's own header split)."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["Content"] for r in rows], [r["EventId"] for r in rows]


def system_accuracy(system_dir: Path) -> AccuracyRow:
    """Mine the whole sample (as Drain's authors do), match every line, and score the groups.

    Settings come from ``FORMAT_SETTINGS[system.lower()]``: the same table the loaders use.
    """
    system = system_dir.name
    contents, truth = read_structured(system_dir / f"{system}_2k.log_structured.csv")
    parser = EventParser(FORMAT_SETTINGS[system.lower()], DEMO_KEY)
    parser.mine(contents)
    predicted = parser.match_all(contents)
    return AccuracyRow(
        system=system,
        lines=len(contents),
        templates=len(parser.templates),
        truth_templates=len(set(truth)),
        accuracy=grouping_accuracy(truth, predicted),
        published=PUBLISHED_DRAIN.get(system),
    )


def grouping_accuracy_table(loghub_2k: Path) -> list[AccuracyRow]:
    """One row per system folder of ``loghub-2k/`` (those with a structured CSV), sorted by name."""
    dirs = sorted(d for d in loghub_2k.iterdir() if (d / f"{d.name}_2k.log_structured.csv").is_file())
    if not dirs:
        raise FileNotFoundError(f"{loghub_2k}: no <System>/<System>_2k.log_structured.csv found")
    return [system_accuracy(d) for d in dirs]
