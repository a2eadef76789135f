"""Chunked batch reading (in worker processes or not) gives a sequential read's records and load report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fedlog.data import chunks
from fedlog.data.chunks import Reading, plan_chunks
from fedlog.data.loaders import MAX_LINE_BYTES, load_silo
from fedlog.parse.drain import FORMAT_SETTINGS, EventParser

BAD_LINES = [
    b"081109 203615 148 INFO dfs.DataNode$PacketResponder: month 13 blk_1 follows",
    b"081399 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660",
    b"\xff\xfe not utf-8 blk_2",
    b"",
    b"x" * (MAX_LINE_BYTES + 10),
    b"garbage without a header",
    b"081109 203615 148 INFO dfs.DataNode: a line with no block id",
    b"081109 203615 148 INFO dfs.DataNode: a carriage return blk_3\r",
    b"  \t ",
]


def _junk_slice(shared_data: Path, target: Path, lines: int = 6000) -> Path:
    """Real HDFS lines with bad ones spread through them, and a last line without a newline."""
    raw = (shared_data / "hdfs" / "HDFS_2pct.log").read_bytes().split(b"\n")[:lines]
    for i, bad in enumerate(BAD_LINES * 3):
        raw.insert(1 + i * (lines // 21), bad)
    target.write_bytes(b"\n".join(raw))  # no final newline
    return target


def _plain(silo) -> tuple[list, dict]:
    return [dataclasses.replace(r, masked=None) for r in silo.records], silo.report.to_dict()


@pytest.mark.parametrize("workers", [1, 2])
def test_chunked_reads_equal_a_sequential_read(shared_data, tmp_path, monkeypatch, workers: int) -> None:
    log = _junk_slice(shared_data, tmp_path / "junk.log")
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 64 * 1024)  # many chunks, cut next to the bad lines
    assert len(plan_chunks(log, False, chunks.CHUNK_BYTES)) > 5
    sequential = load_silo("hdfs", log, require_labels=False)
    rules = FORMAT_SETTINGS["hdfs"].masking
    chunked = load_silo("hdfs", log, require_labels=False, reading=Reading(workers, rules))
    assert _plain(chunked) == _plain(sequential)
    report = chunked.report
    assert report.malformed >= 9 and report.undecodable == 3 and report.too_long == 3 and report.no_session >= 3
    parser = EventParser(FORMAT_SETTINGS["hdfs"], b"k")
    assert [r.masked for r in chunked.records] == [parser._masker.mask(r.content) for r in sequential.records]


def test_chunks_cover_the_file_once(tmp_path) -> None:
    """Cuts fall just after a newline; line numbers run on; a long line or a missing last newline is fine."""
    lines = [b"a" * n for n in (5, 0, 300, 7, 1, 2000, 3)]
    path = tmp_path / "lines.log"
    path.write_bytes(b"\n".join(lines))
    for size in (1, 4, 10, 100, 5000):
        plan = plan_chunks(path, False, size)
        assert plan[0].start == 0 and plan[0].first == 1 and plan[-1].lines is None
        data = path.read_bytes()
        assert plan[-1].end == len(data)
        for before, after in zip(plan, plan[1:]):
            assert before.end == after.start and data[after.start - 1 : after.start] == b"\n"
            assert after.first == before.first + before.lines == data[: after.start].count(b"\n") + 1


def test_labelled_formats_sort_chunked_records_like_sequential_ones(shared_data, monkeypatch) -> None:
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 256 * 1024)
    path = shared_data / "bgl" / "BGL_20k_resampled.log"
    reading = Reading(1, FORMAT_SETTINGS["bgl"].masking)
    assert _plain(load_silo("bgl", path, reading=reading)) == _plain(load_silo("bgl", path))


def test_custom_format_in_workers_equals_a_sequential_read(shared_data, monkeypatch) -> None:
    """A user's own format travels to the workers (its settings pickle) and reads as it does alone."""
    from fedlog.config import load_overlay
    from fedlog.data.custom import CustomFormat

    custom = CustomFormat.from_config(load_overlay(Path(__file__).parent.parent / "configs" / "custom-openssh.toml"))
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 32 * 1024)
    path = shared_data / "loghub-2k" / "OpenSSH" / "OpenSSH_2k.log"
    reading = Reading(2, custom.parser_settings().masking)
    sequential = load_silo("custom", path, require_labels=False, custom=custom)
    assert _plain(load_silo("custom", path, require_labels=False, custom=custom, reading=reading)) == _plain(sequential)


def test_hadoop_continuations_stay_with_their_record_in_workers(shared_data) -> None:
    """Hadoop files are read whole (a stack trace continues the record before it), a few per worker."""
    import shutil
    import tempfile

    source = shared_data / "hadoop"
    apps = sorted(p for p in source.glob("application_*") if p.is_dir())[:3]
    with tempfile.TemporaryDirectory() as tmp:
        for app in apps:
            shutil.copytree(app, Path(tmp) / app.name)
        sequential = load_silo("hadoop", Path(tmp), require_labels=False)
        chunked = load_silo("hadoop", Path(tmp), require_labels=False, reading=Reading(2, None))
    assert sequential.report.continuation > 0
    assert _plain(chunked) == _plain(sequential)
