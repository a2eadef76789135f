"""Loaders on the real Loghub slices (counts from ../shared/data/README.md) and on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedlog.data.loaders import SiloError, load_silo
from fedlog.data.records import ANOMALY, NORMAL


def _line_labels(silo) -> tuple[int, int]:
    labels = [r.label for r in silo.records]
    return labels.count(NORMAL), labels.count(ANOMALY)


def test_hdfs_counts_match_the_readme(shared_data: Path) -> None:
    silo = load_silo("hdfs", shared_data / "hdfs" / "HDFS_2pct.log")
    assert silo.report.lines_read == silo.report.records == 222_579
    blocks = {b for r in silo.records for b in r.sessions}
    assert len(blocks) == 11_501
    labels = [silo.session_labels[b] for b in blocks]
    assert (labels.count(NORMAL), labels.count(ANOMALY)) == (11_151, 350)
    anomalous = {b for b in blocks if silo.session_labels[b] == ANOMALY}
    assert sum(any(b in anomalous for b in r.sessions) for r in silo.records) == 5_749
    assert silo.records[0].content.startswith("Receiving block blk_4394112519745907149")


@pytest.mark.parametrize(
    ("fmt", "relpath", "lines", "normal", "anomalous"),
    [
        ("bgl", "bgl/BGL_20k_resampled.log", 20_000, 10_000, 10_000),
        ("bgl", "bgl/BGL_first10k.log", 10_000, 10_000, 0),
        ("thunderbird", "thunderbird/Thunderbird_19k.log", 19_350, 18_635, 715),
        ("thunderbird", "thunderbird/Thunderbird_2k.log", 2_000, 2_000, 0),
    ],
)
def test_label_first_formats(shared_data, fmt, relpath, lines, normal, anomalous) -> None:
    silo = load_silo(fmt, shared_data / relpath)
    assert silo.report.records == lines and silo.report.malformed == 0
    assert _line_labels(silo) == (normal, anomalous)
    times = [r.timestamp for r in silo.records]
    assert times == sorted(times)


def test_thunderbird_content_keeps_the_component(shared_data) -> None:
    silo = load_silo("thunderbird", shared_data / "thunderbird" / "Thunderbird_2k.log")
    assert all(":" in r.content for r in silo.records[:50])


def test_hadoop_counts_match_the_readme(shared_data) -> None:
    silo = load_silo("hadoop", shared_data / "hadoop")
    report = silo.report
    assert len(report.files) == 975 and report.lines_read == 177_262
    assert report.accounted == report.lines_read  # stack traces are continuation, not lost
    apps = {}
    for path in report.files:
        apps[Path(path).parent.name] = silo.session_labels[Path(path).stem]
    assert len(apps) == 55
    assert sorted(apps.values()).count(NORMAL) == 11 and sorted(apps.values()).count(ANOMALY) == 44


def test_spirit_format_on_generated_data(synthetic_silos) -> None:
    silo = load_silo("spirit", synthetic_silos["spirit"])
    assert silo.report.malformed == 0 and silo.report.records > 1000
    normal, anomalous = _line_labels(silo)
    assert normal > 0 and anomalous > 0


def test_garbage_bytes_and_truncated_lines_are_counted_with_file_and_line(tmp_path, shared_data) -> None:
    real = (shared_data / "bgl" / "BGL_first10k.log").read_bytes().splitlines(keepends=True)[:100]
    mixed = real[:10] + [b"\xff\xfe\x00garbage\x81\n", real[10][:25] + b"\n", b"\n"] + real[10:]
    path = tmp_path / "bgl.log"
    path.write_bytes(b"".join(mixed))
    silo = load_silo("bgl", path)
    report = silo.report
    assert report.records == 100
    assert report.undecodable == 1 and report.malformed == 1 and report.blank == 1
    assert report.accounted == report.lines_read == 103
    assert {(i.lineno, i.source) for i in report.issues} == {(11, str(path)), (12, str(path))}


def test_empty_and_missing_files_are_clear_errors(tmp_path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    with pytest.raises(SiloError, match="empty.log: file is empty"):
        load_silo("thunderbird", empty)
    with pytest.raises(SiloError, match="nope.log: no such file"):
        load_silo("bgl", tmp_path / "nope.log")
    with pytest.raises(SiloError, match="unknown log format"):
        load_silo("syslog", empty)


def test_wrong_format_is_a_clear_error(shared_data) -> None:
    with pytest.raises(SiloError, match="no line in thunderbird format"):
        load_silo("thunderbird", shared_data / "bgl" / "BGL_first10k.log")
    with pytest.raises(SiloError, match="anomaly_label.csv: file not found"):
        load_silo("hdfs", shared_data / "bgl" / "BGL_first10k.log")
