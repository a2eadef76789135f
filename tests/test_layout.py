"""Header layouts: Loghub's 15 layouts split the raw loghub-2k samples exactly as Loghub's structured CSVs."""

from __future__ import annotations

import csv
import time

import pytest

from fedlog.data.layout import LOGHUB_LAYOUTS, MAX_FIELD, Layout, LayoutError

NOT_FIELDS = {"LineId", "EventId", "EventTemplate"}


@pytest.mark.parametrize("system", sorted(LOGHUB_LAYOUTS))
def test_a_loghub_layout_splits_its_raw_sample_as_loghub_did(shared_data, system: str) -> None:
    folder = shared_data / "loghub-2k" / system
    raw = (folder / f"{system}_2k.log").read_text(encoding="utf-8").split("\n")
    if raw[-1] == "":
        raw.pop()
    with (folder / f"{system}_2k.log_structured.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    layout = Layout.parse(LOGHUB_LAYOUTS[system])
    assert set(layout.fields) == set(rows[0]) - NOT_FIELDS
    assert len(raw) == len(rows) == 2000
    for lineno, (line, row) in enumerate(zip(raw, rows, strict=True), 1):
        assert layout.split(line) == {f: row[f] for f in layout.fields}, f"{system} line {lineno}"


def test_an_absent_optional_field_is_empty() -> None:
    layout = Layout.parse(LOGHUB_LAYOUTS["Linux"])
    assert layout.split("Jun 14 15:16:01 combo kernel: Linux version 2.6.5") == {
        "Month": "Jun",
        "Date": "14",
        "Time": "15:16:01",
        "Level": "combo",
        "Component": "kernel",
        "PID": "",
        "Content": "Linux version 2.6.5",
    }
    assert layout.split("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass")["PID"] == "19939"


def test_a_field_holds_spaces_unless_spaces_end_it() -> None:
    layout = Layout.parse(LOGHUB_LAYOUTS["Proxifier"])
    fields = layout.split("[10.30 16:49:08] chrome.exe *64 - proxy.cse.cuhk.edu.hk:5070 close - done")
    assert fields == {
        "Time": "10.30 16:49:08",
        "Program": "chrome.exe *64",
        "Content": "proxy.cse.cuhk.edu.hk:5070 close - done",
    }


@pytest.mark.parametrize(
    ("system", "line"),
    [
        ("Apache", "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating"),
        ("HDFS", "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok"),
        ("HDFS", ""),
        ("OpenSSH", "Dec 10 06:55:46 LabSZ sshd[]24200: message"),
        ("HDFS", "081109 203615 " + "x" * (MAX_FIELD + 1) + " INFO dfs.DataNode: too long a pid"),
    ],
)
def test_a_line_that_does_not_fit_is_malformed(system: str, line: str) -> None:
    assert Layout.parse(LOGHUB_LAYOUTS[system]).split(line) is None


def test_malformed_lines_are_rejected_without_catastrophic_backtracking() -> None:
    """Loghub's all-lazy regex takes about 8 s on the first line, and minutes on longer ones."""
    lines = {"Zookeeper": "0:1@2 - [" * 50, "Thunderbird": "- 1 2 3 4 5 6 7 8 " + "[" * 20_000, "HDFS": "x " * 10_000}
    for system, line in lines.items():
        started = time.perf_counter()
        assert Layout.parse(LOGHUB_LAYOUTS[system]).split(line) is None
        assert time.perf_counter() - started < 0.5, system


@pytest.mark.parametrize(
    "spec",
    [
        "<Date> <Time> <Level>",  # no content
        "<Time> <Time> <Content>",  # a field twice
        "<Date> <Log Level> <Content>",  # not a name
        r"\[<Time> (<Level> <Content>",  # not a pattern
    ],
)
def test_a_bad_layout_fails_when_parsed(spec: str) -> None:
    with pytest.raises(LayoutError):
        Layout.parse(spec)
