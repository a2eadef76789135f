"""Property-based: any bytes, of any length and field content, mixed into real lines of every format load
without raising; every physical line is accounted for, with its file and line number where it is skipped,
and no real line is lost. Label files the same. ``--follow`` sees the same lines as batch loading however
the bytes arrive."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedlog.data.loaders import FORMATS, MAX_LINE_BYTES, LineReader, load_silo, read_hadoop_labels
from fedlog.data.records import LoadReport, SiloLog
from fedlog.data.tail import FollowedFile

N_REAL = 150
# Real lines per format; Spirit has no public raw lines, and its format is Thunderbird's.
REAL_FILES = {
    "hdfs": "hdfs/HDFS_2pct.log",
    "bgl": "bgl/BGL_20k_resampled.log",
    "thunderbird": "thunderbird/Thunderbird_19k.log",
    "spirit": "thunderbird/Thunderbird_2k.log",
    # lines 900-1050 of this container log hold a stack trace (continuation lines) among records
    "hadoop": "hadoop/application_1445062781478_0011/container_1445062781478_0011_01_000001.log",
}
HADOOP_APP, HADOOP_LOG = Path(REAL_FILES["hadoop"]).parts[-2:]
PROPERTY = settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def real_lines(shared_data: Path) -> dict[str, list[bytes]]:
    lines = {fmt: (shared_data / rel).read_bytes().splitlines() for fmt, rel in REAL_FILES.items()}
    return {fmt: found[900 : 900 + N_REAL] if fmt == "hadoop" else found[:N_REAL] for fmt, found in lines.items()}


_digits = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=12).map(str.encode)
_field = st.one_of(
    st.binary(max_size=12),
    _digits,  # '²', Arabic-Indic digits...: isdigit() passes them
    st.integers(0, 10**14).map(lambda n: str(n).zfill(6).encode()),  # month 13, hour 25, 14-digit epochs
    st.text(max_size=12).map(str.encode),
)


@st.composite
def _mutated(draw: st.DrawFn, real: list[bytes]) -> bytes:
    """A real line with one of its first ten space-separated fields (date, time, epoch, level...) replaced,
    or with that field's ASCII digits redrawn (month 13, day 45, hour 99 in the real layout)."""
    fields = draw(st.sampled_from(real)).split(b" ")
    # the first three fields (date, time, epoch) more often than the rest
    i = draw(st.one_of(st.integers(0, min(len(fields), 3) - 1), st.integers(0, min(len(fields), 10) - 1)))
    digits = iter(draw(st.lists(st.sampled_from(b"0123456789"), min_size=sum(c in b"0123456789" for c in fields[i]))))
    redigited = re.sub(rb"[0-9]", lambda _: bytes([next(digits)]), fields[i])
    fields[i] = draw(st.one_of(_field, st.just(redigited)))
    return b" ".join(fields)


def _bad_line(real: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),  # may hold newlines and so be several physical lines
        st.text(max_size=200).map(str.encode),
        st.integers(MAX_LINE_BYTES - 2, MAX_LINE_BYTES + 2).map(lambda n: b"x" * n),  # both sides of the limit
        st.integers(1, 4).map(lambda mb: b"y" * (mb << 20)),
    )


@st.composite
def _mixed(draw: st.DrawFn, real: list[bytes]) -> bytes:
    """Real lines with up to 10 bad and 10 mutated real ones inserted; maybe no newline at the end."""
    lines = list(real)
    for bad in (_bad_line(real), _mutated(real)):
        for _ in range(draw(st.integers(0, 10))):
            lines.insert(draw(st.integers(0, len(lines))), draw(bad))
    return b"\n".join(lines) + draw(st.sampled_from([b"\n", b""]))


def _physical_lines(data: bytes) -> int:
    return data.count(b"\n") + (not data.endswith(b"\n"))


def _load(fmt: str, data: bytes, root: Path) -> tuple[SiloLog, Path]:
    if fmt == "hadoop":
        path = root / "hadoop" / HADOOP_APP / HADOOP_LOG
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        return load_silo(fmt, root / "hadoop", require_labels=False), path
    path = root / "mixed.log"
    path.write_bytes(data)
    return load_silo(fmt, path, require_labels=False), path


def _check_accounted(report: LoadReport, lines: int, path: Path) -> None:
    assert report.lines_read == report.accounted == lines, report.summary()
    assert report.too_long <= report.malformed and report.no_session <= report.records
    assert all(i.source == str(path) and 1 <= i.lineno <= lines for i in report.issues)


@pytest.mark.parametrize("fmt", FORMATS)
def test_any_bytes_among_real_lines_never_raise_and_every_line_is_accounted_for(fmt, real_lines) -> None:
    real = real_lines[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        clean = _load(fmt, b"\n".join(real) + b"\n", Path(tmp))[0].report.records

    @PROPERTY
    @given(data=_mixed(real))
    def check(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            silo, path = _load(fmt, data, Path(tmp))
        _check_accounted(silo.report, _physical_lines(data), path)
        assert silo.report.records == len(silo.records) >= clean  # no real line is lost

    check()


@given(data=st.data())
@PROPERTY
def test_follow_yields_the_lines_batch_loading_does_however_the_bytes_arrive(data, real_lines) -> None:
    fmt = data.draw(st.sampled_from(FORMATS))
    content = data.draw(_mixed(real_lines[fmt][:40]))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(content)), max_size=8)))
    complete = content[: content.rfind(b"\n") + 1]  # follow never parses a last line without newline
    with tempfile.TemporaryDirectory() as tmp:
        batch, _ = _load(fmt, complete, Path(tmp))
        live = Path(tmp) / "live.log"
        live.write_bytes(b"")
        reader = LineReader(fmt)
        followed = FollowedFile(live, report=reader.report)
        streamed = []
        for start, end in zip([0, *cuts], [*cuts, len(content)]):
            with live.open("ab") as out:
                out.write(content[start:end])
            streamed += [r for _ in range(10) for line in followed.poll() if (r := reader.feed(*line)) is not None]
        followed.close()
    _check_accounted(reader.report, _physical_lines(content), live)
    assert reader.report.unterminated == (complete != content)
    assert sorted((r.lineno, r.content) for r in streamed) == sorted((r.lineno, r.content) for r in batch.records)


_label_junk = st.one_of(st.binary(max_size=100), st.text(max_size=60).map(str.encode), st.just(b"blk_1,Sometimes"))


@given(junk=st.lists(st.tuples(st.integers(0, 30), _label_junk), max_size=10))
@PROPERTY
def test_label_files_with_any_bytes_keep_every_good_row(junk, real_lines, shared_data) -> None:
    hdfs_rows = (shared_data / "hdfs" / "anomaly_label.csv").read_bytes().splitlines()[:30]
    hadoop_rows = (shared_data / "hadoop" / "abnormal_label.txt").read_bytes().splitlines()[:30]
    log = real_lines["hdfs"][0] + b"\n"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "hdfs.log").write_bytes(log)
        for rows, label_path in ((hdfs_rows, root / "anomaly_label.csv"), (hadoop_rows, root / "abnormal_label.txt")):
            mixed = list(rows)
            for at, bad in junk:
                mixed.insert(min(at, len(mixed)), bad)
            data = b"\n".join(mixed) + b"\n"
            label_path.write_bytes(data)
            if label_path.suffix == ".csv":
                silo = load_silo("hdfs", root / "hdfs.log")
                report, labels = silo.report, silo.session_labels
                good = {r.split(b",")[0].decode() for r in rows[1:]}
            else:
                report = LoadReport()
                labels = read_hadoop_labels(label_path, report)
                good = {r.split()[1].decode() for r in rows if r.startswith(b"+ application_")}
            assert report.label_rows == _physical_lines(data) and len(good) > 10
            assert all(i.source == str(label_path) for i in report.label_issues)
            assert good <= set(labels)
