"""Loaders on the real Loghub slices (counts from ../shared/data/README.md) and on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedlog.data.loaders import MAX_LINE_BYTES, SiloError, load_silo
from fedlog.data.records import ANOMALY, EXTRA_COUNTS, NORMAL, PARTITION, LoadReport


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


# -- confirmed bugs of issue 14: each line below once failed the whole client ------------------

HDFS_LINE = (
    b"081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 done"
)
HADOOP_LINE = b"2015-10-17 21:47:48,288 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster"
BGL_LINE = (
    b"- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 "
    b"RAS KERNEL INFO instruction cache parity error corrected"
)
TB_LINE = (
    b"- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session closed for user root"
)


def _hadoop_dir(tmp_path: Path, lines: list[bytes]) -> Path:
    app = tmp_path / "hadoop" / "application_1445062781478_0011"
    app.mkdir(parents=True)
    (app / "container_1445062781478_0011_01_000001.log").write_bytes(b"\n".join(lines) + b"\n")
    return tmp_path / "hadoop"


def test_impossible_dates_are_malformed_lines_with_file_and_line(tmp_path) -> None:
    hdfs = tmp_path / "hdfs.log"
    hdfs.write_bytes(HDFS_LINE + b"\n" + b"081309" + HDFS_LINE[6:] + b"\n" + b"081109 256199" + HDFS_LINE[13:] + b"\n")
    report = load_silo("hdfs", hdfs, require_labels=False).report
    assert (report.records, report.malformed) == (1, 2)
    assert [str(i) for i in report.issues][0] == f"{hdfs}:2: impossible field in a hdfs line: month must be in 1..12"
    assert report.issues[1].lineno == 3 and "hour must be in 0..23" in report.issues[1].reason

    bad = HADOOP_LINE.replace(b"2015-10-17", b"2015-13-17")
    report = load_silo(
        "hadoop", _hadoop_dir(tmp_path, [HADOOP_LINE, bad, b"\tat x.y(Z.java:1)"]), require_labels=False
    ).report
    assert (report.records, report.malformed, report.continuation) == (1, 2, 0)  # its trace does not join line 1
    assert [(i.lineno, "month must be in 1..12" in i.reason) for i in report.issues] == [(2, True), (3, False)]


@pytest.mark.parametrize(("fmt", "line"), [("bgl", BGL_LINE), ("thunderbird", TB_LINE), ("spirit", TB_LINE)])
@pytest.mark.parametrize("epoch", ["²", "١١١٧٨٣٨٥٧٠", "1" * 400])
def test_epoch_fields_of_unicode_digits_or_absurd_length_are_malformed(tmp_path, fmt, line, epoch) -> None:
    path = tmp_path / "log"
    path.write_bytes(line + b"\n" + line.replace(line.split()[1], epoch.encode()) + b"\n")
    silo = load_silo(fmt, path)
    assert (silo.report.records, silo.report.malformed) == (1, 1)
    assert silo.report.issues[0].lineno == 2 and "ASCII digits" in silo.report.issues[0].reason


def test_label_files_with_bad_rows_or_bytes_are_read_with_errors_counted(tmp_path) -> None:
    hdfs = tmp_path / "hdfs.log"
    hdfs.write_bytes(HDFS_LINE + b"\n")
    labels = tmp_path / "anomaly_label.csv"
    rows = [b"BlockId,Label", b"blk_38865049064139660,Anomaly", b"blk_1,Norm\xe9l", b"blk_2,Maybe", b"x,y,z", b""]
    labels.write_bytes(b"\n".join(rows) + b"\n")
    silo = load_silo("hdfs", hdfs)
    assert silo.session_labels == {"blk_38865049064139660": ANOMALY}
    assert (silo.report.label_rows, silo.report.label_skipped) == (6, 3)
    assert [(i.source, i.lineno) for i in silo.report.label_issues] == [(str(labels), n) for n in (3, 4, 5)]
    assert "not UTF-8" in silo.report.label_issues[0].reason

    root = _hadoop_dir(tmp_path, [HADOOP_LINE])
    text = b"### WordCount\n+ application_1_1\nNormal:\n+ application_1445062781478_0011\n+ appl\xffcation\n"
    (root / "abnormal_label.txt").write_bytes(text)
    silo = load_silo("hadoop", root)
    assert silo.session_labels == {"container_1445062781478_0011_01_000001": NORMAL}
    assert [i.lineno for i in silo.report.label_issues] == [2, 5] and silo.report.label_skipped == 2
    (root / "abnormal_label.txt").write_bytes(b"\xff\xfe" * 100)
    with pytest.raises(SiloError, match=r"abnormal_label.txt: no '\+ application_...' entries found.*not UTF-8"):
        load_silo("hadoop", root)


def test_hdfs_lines_without_a_block_id_are_a_named_count(tmp_path) -> None:
    path = tmp_path / "hdfs.log"
    no_block = b"081109 203615 148 INFO dfs.FSNamesystem: BLOCK* NameSystem.heartbeat: no block here"
    path.write_bytes(b"\n".join([HDFS_LINE, no_block, no_block]) + b"\n")
    silo = load_silo("hdfs", path, require_labels=False)
    assert silo.report.records == 3 and silo.report.no_session == 2
    assert silo.report.examples["no_session"] == [f"{path}:2", f"{path}:3"]
    assert silo.records[1].sessions == ()


def test_hadoop_stack_traces_stay_with_their_record(tmp_path) -> None:
    trace = [
        b"java.io.IOException: Connection reset by peer",
        b"\tat sun.nio.ch.FileDispatcherImpl.read0(Native Method)",
    ]
    lines = [b"a stack trace before any record", HADOOP_LINE, *trace, HADOOP_LINE]
    root = _hadoop_dir(tmp_path, lines)
    silo = load_silo("hadoop", root, require_labels=False)
    report = silo.report
    assert (report.records, report.continuation, report.malformed) == (2, 2, 1)
    assert report.accounted == report.lines_read == 5
    assert silo.records[0].content == "Created MRAppMaster\n" + "\n".join(t.decode() for t in trace)
    assert silo.records[1].content == "Created MRAppMaster"
    log = str(next(root.glob("*/*.log")))
    assert report.examples["continuation"] == [f"{log}:3", f"{log}:4"] and report.issues[0].lineno == 1


def test_real_hadoop_traces_keep_their_exception_class(shared_data) -> None:
    silo = load_silo("hadoop", shared_data / "hadoop")
    assert silo.report.continuation > 10_000 and silo.report.malformed == 0
    assert any("\njava.io.IOException: " in r.content for r in silo.records)


def test_a_record_stops_growing_at_the_line_limit(tmp_path) -> None:
    frame = b"\tat " + b"f" * 1000
    root = _hadoop_dir(tmp_path, [HADOOP_LINE] + [frame] * 100)
    silo = load_silo("hadoop", root, require_labels=False)
    assert len(silo.records[0].content) <= MAX_LINE_BYTES
    assert silo.report.continuation == MAX_LINE_BYTES // 1005 and silo.report.too_long == 100 - MAX_LINE_BYTES // 1005
    assert silo.report.accounted == silo.report.lines_read == 101


def test_merged_reports_keep_every_count(tmp_path) -> None:
    """``LoadReport.merge`` is what a caller with several silos or followed files sums with."""
    hdfs = tmp_path / "hdfs.log"
    hdfs.write_bytes(HDFS_LINE + b"\n081109 203615 148 INFO dfs.X: no block\n\xff\n")
    hadoop = _hadoop_dir(tmp_path, [HADOOP_LINE, b"\tat x.y(Z.java:1)", b"x" * (MAX_LINE_BYTES + 1)])
    parts = [
        load_silo("hdfs", hdfs, require_labels=False).report,
        load_silo("hadoop", hadoop, require_labels=False).report,
    ]
    total = LoadReport()
    for part in parts:
        total.merge(part)
    for name in PARTITION + EXTRA_COUNTS:
        assert getattr(total, name) == sum(getattr(p, name) for p in parts), name
    assert total.lines_read == total.accounted == 6 and total.files == parts[0].files + parts[1].files
    assert total.examples == {"no_session": [f"{hdfs}:2"], "continuation": [f"{next(hadoop.glob('*/*.log'))}:2"]}
    assert [i.lineno for i in total.issues] == [3, 3]


@pytest.mark.parametrize(
    "stamp",
    [
        "081109 203615",
        "000229 000000",
        "991231 235959",
        "081109 240000",
        "081109 006000",
        "081109 000060",
        "081309 000000",
        "081132 990000",
        "010229 000000",
    ],
)
def test_hdfs_timestamps_equal_datetimes_value_and_error(stamp: str) -> None:
    """The cached HDFS timestamp (a day lookup and a sum) is datetime's value, or raises its error."""
    from fedlog.data.loaders import _epoch, _hdfs_epoch

    fields = [int(stamp[i : i + 2]) for i in (0, 2, 4, 7, 9, 11)]
    try:
        expected: float | str = _epoch(2000 + fields[0], *fields[1:])
    except ValueError as err:
        expected = str(err)
    try:
        got: float | str = _hdfs_epoch(stamp)
    except ValueError as err:
        got = str(err)
    assert got == expected
