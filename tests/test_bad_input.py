"""Bad input at scale: 10,000 bad lines (random bytes, truncated lines, other formats, 1 MB lines) and a
16 MB line without a newline mixed into real HDFS and BGL logs. Nothing crashes, every physical line is
accounted for, and the huge lines never sit in memory whole."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import pytest

from fedlog.data.loaders import MAX_LINE_BYTES, LineReader, load_bgl, load_hdfs, load_silo
from fedlog.data.tail import CHUNK_BYTES, FollowedFile
from fedlog.parse.drain import FORMAT_SETTINGS, EventParser

N_BAD = 10_000
HUGE = 1 << 20  # 1 MB lines
GIANT = 16 << 20  # one 16 MB line with no newline at all
N_HUGE = 8
REAL_LINES = 20_000


def _random_line(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(1, 300)).replace(b"\n", b"\x00").replace(b"\r", b"\xff")


def _mix(real: list[bytes], other: list[bytes], rng: random.Random) -> tuple[bytes, dict[str, int]]:
    """Real lines with bad ones inserted at random places; returns the file and what was inserted."""
    n_each = (N_BAD - N_HUGE) // 3
    bad = [_random_line(rng) + b"\n" for _ in range(n_each)]
    bad += [(line := rng.choice(real))[: rng.randint(1, max(1, len(line) - 2))] + b"\n" for _ in range(n_each)]
    bad += [rng.choice(other) for _ in range(N_BAD - N_HUGE - 2 * n_each)]
    bad += [b"x" * HUGE + b"\n" for _ in range(N_HUGE)]
    lines = real + bad
    rng.shuffle(lines)
    half = len(lines) // 2
    data = b"".join(lines[:half]) + b"G" * GIANT + b"".join(lines[half:])  # joins one line with the giant
    kinds = {"real": len(real), "random": n_each, "truncated": n_each, "wrong_format": len(bad) - 2 * n_each - N_HUGE}
    return data, kinds | {"huge": N_HUGE}


def _load_peak(load, path: Path):
    tracemalloc.start()
    try:
        silo = load(path)
        return silo, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", ["hdfs", "bgl"])
def test_bad_lines_are_counted_not_fatal_and_memory_stays_bounded(fmt, shared_data, tmp_path) -> None:
    hdfs = (shared_data / "hdfs" / "HDFS_2pct.log").read_bytes().splitlines(keepends=True)[:REAL_LINES]
    bgl = (shared_data / "bgl" / "BGL_first10k.log").read_bytes().splitlines(keepends=True)
    real, other = (hdfs, bgl) if fmt == "hdfs" else (bgl, hdfs)
    labels = shared_data / "hdfs" / "anomaly_label.csv"
    load = (lambda p: load_hdfs(p, labels)) if fmt == "hdfs" else load_bgl
    clean, mixed = tmp_path / "clean.log", tmp_path / "mixed.log"
    clean.write_bytes(b"".join(real))
    data, kinds = _mix(real, other, random.Random(6))
    mixed.write_bytes(data)
    physical = data.count(b"\n") + (not data.endswith(b"\n"))

    base, base_peak = _load_peak(load, clean)
    silo, peak = _load_peak(load, mixed)
    report = silo.report
    assert report.lines_read == physical and report.accounted == physical, report.summary()
    rejected = report.malformed + report.undecodable
    assert rejected >= kinds["random"] + kinds["wrong_format"] + kinds["huge"]
    # every real line except the one the giant swallowed still loads; truncated lines may parse too
    assert base.report.records - 1 <= report.records <= base.report.records + kinds["truncated"]
    assert peak < base_peak + 8 * (1 << 20), f"peak {peak / 2**20:.1f} MB vs clean {base_peak / 2**20:.1f} MB"

    parser = EventParser(FORMAT_SETTINGS[fmt], b"test-key")
    contents = [r.content for r in silo.records]
    parser.mine(contents[: len(contents) // 2])
    ids = parser.match_all(contents)
    assert parser.report.matched + parser.report.unknown == len(ids) == report.records
    print(
        f"\n{fmt}: {physical} physical lines ({kinds}) -> records {report.records}, "
        f"malformed {report.malformed}, undecodable {report.undecodable}, blank {report.blank}, "
        f"continuation {report.continuation}; parsed: matched {parser.report.matched}, unknown "
        f"{parser.report.unknown}; load peak {peak / 2**20:.1f} MB (clean file {base_peak / 2**20:.1f} MB)"
    )


# -- --follow: bounded memory and every partial line counted -----------------------------------

FOLLOW_LINE = b"- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session closed"


def _poll_all(followed: FollowedFile, reader: LineReader, polls: int = 10) -> list:
    """Records from enough polls to read 80 MiB (one poll reads at most MAX_POLL_BYTES = 8 MiB)."""
    return [r for _ in range(polls) for line in followed.poll() if (r := reader.feed(*line)) is not None]


def test_follow_memory_stays_bounded_on_a_64_mb_line_without_newline(tmp_path) -> None:
    path = tmp_path / "live.log"
    path.write_bytes(FOLLOW_LINE + b"\n")
    reader = LineReader("thunderbird")
    followed = FollowedFile(path, report=reader.report)
    assert len(_poll_all(followed, reader)) == 1
    with path.open("ab") as out:
        for _ in range(64):
            out.write(b"x" * (1 << 20))
    tracemalloc.start()
    try:
        assert _poll_all(followed, reader) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    bound = 4 * CHUNK_BYTES + 2 * MAX_LINE_BYTES  # 384 KiB, against 64 MiB appended
    assert peak < bound, f"peak {peak / 2**20:.2f} MiB for a 64 MiB line"
    with path.open("ab") as out:
        out.write(b"tail of the giant\n" + FOLLOW_LINE + b"\n")
    assert len(_poll_all(followed, reader)) == 1
    report = reader.report
    assert (report.lines_read, report.records, report.too_long, report.malformed) == (3, 2, 1, 1)
    assert str(report.issues[0]) == f"{path}:2: line longer than {MAX_LINE_BYTES} bytes"


def test_follow_counts_partial_lines_at_truncation_and_at_stop(tmp_path) -> None:
    path = tmp_path / "live.log"
    path.write_bytes(FOLLOW_LINE + b"\n" + FOLLOW_LINE[:30])
    reader = LineReader("thunderbird")
    followed = FollowedFile(path, report=reader.report)
    assert len(_poll_all(followed, reader)) == 1
    path.write_bytes(b"")  # copytruncate
    assert _poll_all(followed, reader) == []
    with path.open("ab") as out:
        out.write(FOLLOW_LINE + b"\n" + b"y" * (MAX_LINE_BYTES + 10))
    assert len(_poll_all(followed, reader)) == 1
    followed.close()
    report = reader.report
    assert report.files == [str(path), f"{path} (rotation 1)"]
    assert (report.lines_read, report.records, report.unterminated) == (4, 2, 2)
    assert report.accounted == report.lines_read
    assert [str(i) for i in report.issues] == [
        f"{path}:2: no newline after 30 bytes at truncation",
        f"{path} (rotation 1):2: no newline after over {MAX_LINE_BYTES} bytes at stop",
    ]


def test_follow_cuts_lines_at_the_same_length_as_batch_loading(tmp_path) -> None:
    longest = FOLLOW_LINE + b" " + b"z" * (MAX_LINE_BYTES - len(FOLLOW_LINE) - 1)
    data = b"\n".join([longest, longest + b"z", FOLLOW_LINE]) + b"\n"
    path = tmp_path / "live.log"
    path.write_bytes(data)
    reader = LineReader("thunderbird")
    followed = FollowedFile(path, report=reader.report)
    streamed = _poll_all(followed, reader)
    batch = load_silo("thunderbird", path)
    assert [r.lineno for r in streamed] == [r.lineno for r in batch.records] == [1, 3]
    assert reader.report.too_long == batch.report.too_long == 1
