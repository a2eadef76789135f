"""Loaders for the Loghub formats: HDFS, BGL, Thunderbird, Spirit and Hadoop.

Each loader reads bytes, decodes line by line and accounts for every line in a
:class:`LoadReport`; a bad line is counted with its file and line number, never
raised deep inside and never dropped silently. A missing or empty input is a
clear :class:`SiloError` naming the path.
"""

from __future__ import annotations

import calendar
import csv
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from fedlog.data.records import ANOMALY, NORMAL, LoadReport, LogRecord, SiloLog

FORMATS = ("hdfs", "bgl", "thunderbird", "spirit", "hadoop")
MAX_LINE_BYTES = 64 * 1024

_HDFS_RE = re.compile(r"^(\d{6}) (\d{6}) (\d+) ([A-Z]+) (\S+?): ?(.*)$")
_BLOCK_RE = re.compile(r"blk_-?\d+")
_HADOOP_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}),(\d{3}) ([A-Z]+) \[(.*?)\] (\S+): ?(.*)$")
_APP_RE = re.compile(r"application_\d+_\d+")


class SiloError(ValueError):
    """Input that cannot be loaded at all (missing, empty, wrong format)."""


def _bounded_lines(handle: BinaryIO) -> Iterator[bytes | None]:
    """Physical lines, each read with at most MAX_LINE_BYTES + 1 bytes in memory; a longer line is
    consumed in chunks and yielded as None, so a gigabyte without a newline cannot exhaust memory."""
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        if len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n"):
            yield raw
            continue
        while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
            pass
        yield None


def _lines(path: Path, report: LoadReport) -> Iterator[tuple[int, str]]:
    """Yield (line number, decoded text) of non-blank, decodable, sane-length lines."""
    name = str(path)
    report.files.append(name)
    with path.open("rb") as handle:
        for lineno, raw in enumerate(_bounded_lines(handle), start=1):
            report.lines_read += 1
            if raw is None or len(raw) > MAX_LINE_BYTES:
                report.skip(name, lineno, f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                report.skip(name, lineno, f"not UTF-8 ({err.reason})", undecodable=True)
                continue
            if "\x00" in text:
                report.skip(name, lineno, "contains NUL bytes", undecodable=True)
                continue
            if not text.strip():
                report.blank += 1
                continue
            yield lineno, text


def _require_files(paths: list[Path], what: str) -> list[Path]:
    if not paths:
        raise SiloError(f"no {what} found")
    for path in paths:
        if not path.is_file():
            raise SiloError(f"{path}: file not found")
        if path.stat().st_size == 0:
            raise SiloError(f"{path}: file is empty")
    return paths


def _log_files(path: Path) -> list[Path]:
    if path.is_dir():
        return _require_files(sorted(path.glob("*.log")), f"*.log files in {path}")
    return _require_files([path], str(path))


def _finish(fmt: str, records: list[LogRecord], report: LoadReport, **kw) -> SiloLog:
    if not records:
        raise SiloError(f"{', '.join(report.files)}: no line in {fmt} format ({report.summary()})")
    return SiloLog(fmt=fmt, records=records, report=report, **kw)


# -- HDFS ---------------------------------------------------------------------------------


def _read_hdfs_labels(path: Path) -> dict[str, int]:
    _require_files([path], str(path))
    labels: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for lineno, row in enumerate(csv.reader(handle), start=1):
            if lineno == 1 and row and row[0] == "BlockId":
                continue
            if len(row) != 2 or row[1] not in ("Normal", "Anomaly"):
                raise SiloError(f"{path}:{lineno}: expected 'BlockId,Normal|Anomaly', got {row!r}")
            labels[row[0]] = ANOMALY if row[1] == "Anomaly" else NORMAL
    return labels


def load_hdfs(path: Path, labels: Path | None = None) -> SiloLog:
    """HDFS: a block id is a session; labels per block from ``anomaly_label.csv``."""
    files = _log_files(path)
    label_path = labels or (path if path.is_dir() else path.parent) / "anomaly_label.csv"
    session_labels = _read_hdfs_labels(label_path)
    report, records = LoadReport(), []
    for file in files:
        for lineno, text in _lines(file, report):
            m = _HDFS_RE.match(text)
            if m is None:
                report.skip(str(file), lineno, "not an HDFS line (date time pid level component: msg)")
                continue
            d, t = m.group(1), m.group(2)
            ts = calendar.timegm((2000 + int(d[:2]), int(d[2:4]), int(d[4:]), int(t[:2]), int(t[2:4]), int(t[4:])))
            content = m.group(6)
            blocks = tuple(dict.fromkeys(_BLOCK_RE.findall(content)))
            records.append(LogRecord(str(file), lineno, float(ts), content, sessions=blocks))
            report.records += 1
    return _finish("hdfs", records, report, session_labels=session_labels)


# -- BGL, Thunderbird, Spirit: label is the first token ----------------------------------


_DATE_RE = re.compile(r"^\d{4}\.\d{2}\.\d{2}$")
_BGL_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}\.\d{2}\.\d{2}")
_MONTHS = frozenset(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])


def _is_bgl(fields: list[str]) -> bool:
    return bool(_DATE_RE.match(fields[2]) and _BGL_TIME_RE.match(fields[4]))


def _is_syslog(fields: list[str]) -> bool:
    return bool(_DATE_RE.match(fields[2]) and fields[4] in _MONTHS)


def _labelled_loader(fmt: str, n_header: int, valid: Callable[[list[str]], bool]) -> Callable[[Path], SiloLog]:
    """Loghub's label-first formats: ``label epoch date ...header... content``.

    ``n_header`` fields precede the content passed to the parser (for
    Thunderbird/Spirit that content keeps the ``component[pid]:`` part).
    """

    def load(path: Path) -> SiloLog:
        report, records = LoadReport(), []
        for file in _log_files(path):
            for lineno, text in _lines(file, report):
                fields = text.split(maxsplit=n_header)
                if len(fields) < n_header or not fields[1].isdigit() or not valid(fields):
                    report.skip(str(file), lineno, f"not a {fmt} line (label epoch date ... message)")
                    continue
                content = fields[n_header] if len(fields) > n_header else ""
                label = NORMAL if fields[0] == "-" else ANOMALY
                records.append(LogRecord(str(file), lineno, float(fields[1]), content, label))
                report.records += 1
        records.sort(key=lambda r: r.timestamp)  # stable: file order within a second
        return _finish(fmt, records, report)

    load.__doc__ = f"{fmt}: label as first token, epoch seconds second; sorted by time."
    return load


# BGL: label epoch date node time noderepeat type component level content
load_bgl = _labelled_loader("bgl", n_header=9, valid=_is_bgl)
# Thunderbird/Spirit: label epoch date user month day time location component[pid]: content
load_thunderbird = _labelled_loader("thunderbird", n_header=8, valid=_is_syslog)
load_spirit = _labelled_loader("spirit", n_header=8, valid=_is_syslog)


# -- Hadoop ---------------------------------------------------------------------------------


def _read_hadoop_labels(path: Path) -> dict[str, int]:
    """``abnormal_label.txt``: a section header (``Normal:``, ``Machine down:``...) then apps."""
    _require_files([path], str(path))
    labels: dict[str, int] = {}
    current: int | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.endswith(":") and not stripped.startswith("+"):
            current = NORMAL if stripped.lower() == "normal:" else ANOMALY
        elif stripped.startswith("+") and current is not None:
            app = _APP_RE.search(stripped)
            if app:
                labels[app.group(0)] = current
    if not labels:
        raise SiloError(f"{path}: no '+ application_...' entries found")
    return labels


def load_hadoop(path: Path) -> SiloLog:
    """Hadoop: one container log is a session, labelled by its application."""
    if not path.is_dir():
        raise SiloError(f"{path}: expected a directory of application_*/container_*.log")
    app_labels = _read_hadoop_labels(path / "abnormal_label.txt")
    files = _require_files(sorted(path.glob("application_*/*.log")), f"container logs in {path}")
    report, records, session_labels = LoadReport(), [], {}
    for file in files:
        session = file.stem
        app = file.parent.name
        if app not in app_labels:
            report.unlabeled_sessions += 1
        else:
            session_labels[session] = app_labels[app]
        last: LogRecord | None = None
        for lineno, text in _lines(file, report):
            m = _HADOOP_RE.match(text)
            if m is None:
                if last is not None:  # stack traces and wrapped messages
                    report.continuation += 1
                else:
                    report.skip(str(file), lineno, "not a Hadoop line (date time,ms LEVEL [thread] class: msg)")
                continue
            y, mo, d, h, mi, s, ms = (int(m.group(i)) for i in range(1, 8))
            ts = calendar.timegm((y, mo, d, h, mi, s)) + ms / 1000.0
            last = LogRecord(str(file), lineno, ts, m.group(11), sessions=(session,))
            records.append(last)
            report.records += 1
    return _finish("hadoop", records, report, session_labels=session_labels)


LOADERS: dict[str, Callable[[Path], SiloLog]] = {
    "hdfs": load_hdfs,
    "bgl": load_bgl,
    "thunderbird": load_thunderbird,
    "spirit": load_spirit,
    "hadoop": load_hadoop,
}


def load_silo(fmt: str, path: str | Path) -> SiloLog:
    """Load one silo of a known format from a file or directory."""
    if fmt not in LOADERS:
        raise SiloError(f"unknown log format {fmt!r}; choose one of {', '.join(FORMATS)}")
    path = Path(path)
    if not path.exists():
        raise SiloError(f"{path}: no such file or directory")
    return LOADERS[fmt](path)
