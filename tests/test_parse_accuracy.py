"""Loghub's grouping accuracy, and fedlog's parser against Drain's published figures on loghub-2k."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedlog.data.loaders import load_silo
from fedlog.parse.accuracy import (
    PUBLISHED_DRAIN,
    AccuracyRow,
    grouping_accuracy,
    grouping_accuracy_table,
    read_structured,
)
from fedlog.parse.drain import FORMAT_SETTINGS, EventParser

SYSTEMS = sorted(set(PUBLISHED_DRAIN) - {"BGL"})  # loghub-2k here has no BGL sample


def test_grouping_accuracy_counts_lines_whose_group_is_exactly_their_true_group() -> None:
    truth = ["A", "A", "B", "B", "C"]
    # {0,1} is A exactly; B is split ({2} and {3,4}); {3,4} also mixes B and C
    assert grouping_accuracy(truth, [1, 1, 2, 3, 3]) == pytest.approx(2 / 5)
    assert grouping_accuracy(truth, ["x", "x", "y", "y", "z"]) == 1.0
    assert grouping_accuracy(truth, [0, 0, 0, 0, 0]) == 0.0


def test_unknown_lines_group_with_nothing() -> None:
    assert grouping_accuracy(["A", "B"], [None, None]) == 1.0  # two singletons, rightly apart
    assert grouping_accuracy(["A", "A", "B"], [None, None, "e"]) == pytest.approx(1 / 3)


def test_grouping_accuracy_rejects_misaligned_input() -> None:
    with pytest.raises(ValueError):
        grouping_accuracy(["A"], ["e", "e"])
    with pytest.raises(ValueError):
        grouping_accuracy([], [])


@pytest.fixture(scope="module")
def table(shared_data) -> dict[str, AccuracyRow]:
    return {row.system: row for row in grouping_accuracy_table(shared_data / "loghub-2k")}


def test_the_table_covers_every_loghub_2k_system(table) -> None:
    assert sorted(table) == SYSTEMS
    assert all(row.lines == 2000 and row.templates > 0 for row in table.values())


@pytest.mark.parametrize("system", SYSTEMS)
def test_each_system_reaches_drains_published_accuracy(table, system: str) -> None:
    row = table[system]
    assert row.published == PUBLISHED_DRAIN[system]
    assert row.accuracy >= row.published, row


@pytest.mark.parametrize(("fmt", "system"), [("hdfs", "HDFS"), ("thunderbird", "Thunderbird")])
def test_built_in_formats_reach_it_on_their_own_loaders_content(shared_data, fmt: str, system: str) -> None:
    """The loaders' header split is not Loghub's (Thunderbird keeps ``component[pid]:``); it must pass too.

    Hadoop is not here: its loader reads application directories, not a flat 2k sample.
    """
    folder: Path = shared_data / "loghub-2k" / system
    contents = [r.content for r in load_silo(fmt, folder / f"{system}_2k.log", require_labels=False).records]
    _, truth = read_structured(folder / f"{system}_2k.log_structured.csv")
    parser = EventParser(FORMAT_SETTINGS[fmt], b"test-key")
    parser.mine(contents)
    assert grouping_accuracy(truth, parser.match_all(contents)) >= PUBLISHED_DRAIN[system]
