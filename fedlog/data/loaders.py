"""Loaders for the Loghub formats (HDFS, BGL, Thunderbird, Spirit, Hadoop) and the user-described ``custom`` one.

Each loader reads bytes, decodes line by line and accounts for every line in a
:class:`LoadReport`; a bad line (any bytes, any length, any field content) is
counted with its file and line number, never raised deep inside and never
dropped silently, so one bad line cannot fail a client every round. Label files
are read the same way: a bad row is counted and reported, not fatal. A missing
or empty input, or one with no usable line at all, is a clear
:class:`SiloError` naming the path.
"""

from __future__ import annotations

import csv
import functools
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from fedlog.data.chunks import Reading, read_chunked
from fedlog.data.custom import CUSTOM, CustomFormat
from fedlog.data.records import ANOMALY, NORMAL, UNLABELED, LoadReport, LogRecord, SiloLog

log = logging.getLogger(__name__)

FORMATS = ("hdfs", "bgl", "thunderbird", "spirit", "hadoop")
MAX_LINE_BYTES = 64 * 1024
MAX_EPOCH_DIGITS = 10  # epoch seconds up to the year 2286; more is a corrupt field, not a date

# re.ASCII: \d must not match other scripts' digits, which int() would then have to accept.
_HDFS_RE = re.compile(r"^(\d{6}) (\d{6}) (\d+) ([A-Z]+) (\S+?): ?(.*)$", re.ASCII)
_BLOCK_RE = re.compile(r"blk_-?\d+", re.ASCII)
_HADOOP_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}),(\d{3}) ([A-Z]+) \[(.*?)\] (\S+): ?(.*)$", re.ASCII
)
_APP_RE = re.compile(r"application_\d+_\d+", re.ASCII)


class SiloError(ValueError):
    """Input that cannot be loaded at all (missing, empty, wrong format)."""


def bounded_lines(handle: BinaryIO) -> Iterator[bytes | None]:
    """Physical lines without their newline, each read with at most MAX_LINE_BYTES + 2 bytes in memory; a
    longer line is consumed in chunks and yielded as None, so a gigabyte without a newline cannot exhaust memory."""
    while raw := handle.readline(MAX_LINE_BYTES + 2):
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        elif len(raw) > MAX_LINE_BYTES:
            while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
        yield raw if len(raw) <= MAX_LINE_BYTES else None


def decode_line(raw: bytes | None, source: str, lineno: int, report: LoadReport) -> str | None:
    """The text of a raw line (without its newline; None: longer than MAX_LINE_BYTES), or None when it
    is counted as blank, too long or undecodable."""
    report.lines_read += 1
    if raw is None or len(raw) > MAX_LINE_BYTES:
        report.too_long += 1
        report.skip(source, lineno, f"line longer than {MAX_LINE_BYTES} bytes")
        return None
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as err:
        report.skip(source, lineno, f"not UTF-8 ({err.reason} at byte {err.start})", undecodable=True)
        return None
    if "\x00" in text:
        report.skip(source, lineno, "contains NUL bytes", undecodable=True)
        return None
    if not text.strip():
        report.blank += 1
        return None
    return text


def decode_block(data: bytes) -> list[str] | None:
    """The lines of a block of whole lines when ``decode_line`` would return each one unchanged (or count
    it blank): valid UTF-8, no NUL, no carriage return, none over MAX_LINE_BYTES. Else None: decode
    them one by one. A batch reader's fast path: one decode and one split for thousands of lines."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text:
        return []
    if "\x00" in text or "\r" in text:
        return None
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    bytes_per_char = 1 if text.isascii() else 4  # at most 4 UTF-8 bytes a character
    return lines if max(map(len, lines)) * bytes_per_char <= MAX_LINE_BYTES else None


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


# -- one line -> one record, per format ------------------------------------------------------
# Each returns None for a line that is not in its format (the reader counts it) and raises
# ValueError, naming the field, for a line in its format with an impossible field (month 13).


def _epoch(y: int, mo: int, d: int, h: int, mi: int, s: int) -> float:
    """UTC calendar fields -> epoch seconds; ValueError for an impossible date or time (timegm would
    silently roll day 45 or hour 99 over into the next month or day)."""
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp()


@functools.lru_cache(maxsize=4096)
def _hdfs_epoch(stamp: str) -> float:
    """``yymmdd hhmmss`` -> epoch seconds; cached (one string is the cheapest key), since busy logs
    write many lines per second. Each new second costs a day lookup and a sum, not a datetime: the
    same value and the same ValueError (date first, as datetime checks) as ``_epoch``."""
    day = _hdfs_day(stamp[:6])
    h, mi, s = int(stamp[7:9]), int(stamp[9:11]), int(stamp[11:13])
    for value, name, top in ((h, "hour", 23), (mi, "minute", 59), (s, "second", 59)):
        if value > top:
            raise ValueError(f"{name} must be in 0..{top}")
    return day + (h * 3600 + mi * 60 + s)


@functools.lru_cache(maxsize=1024)
def _hdfs_day(d: str) -> float:
    return _epoch(2000 + int(d[:2]), int(d[2:4]), int(d[4:]), 0, 0, 0)


def _hdfs_record(source: str, lineno: int, text: str) -> LogRecord | None:
    """A line belongs to every block id it names; one naming none is kept (time and count windows use
    it) and counted by the reader as ``no_session``, since session windows never see it."""
    m = _HDFS_RE.match(text)
    if m is None:
        return None
    content = m.group(6)
    blocks = _BLOCK_RE.findall(content)
    if len(blocks) > 1:  # a deletion may name a block twice
        blocks = dict.fromkeys(blocks)
    return LogRecord(source, lineno, _hdfs_epoch(text[:13]), content, UNLABELED, tuple(blocks))


_DATE_RE = re.compile(r"^\d{4}\.\d{2}\.\d{2}$", re.ASCII)
_BGL_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}\.\d{2}\.\d{2}", re.ASCII)
_MONTHS = frozenset(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])


def _is_bgl(fields: list[str]) -> bool:
    return bool(_DATE_RE.match(fields[2]) and _BGL_TIME_RE.match(fields[4]))


def _is_syslog(fields: list[str]) -> bool:
    return bool(_DATE_RE.match(fields[2]) and fields[4] in _MONTHS)


def _labelled(n_header: int, valid: Callable[[list[str]], bool]) -> Callable[[str, int, str], LogRecord | None]:
    """Loghub's label-first formats: ``label epoch date ...header... content``.

    ``n_header`` fields precede the content passed to the parser (for
    Thunderbird/Spirit that content keeps the ``component[pid]:`` part).
    """

    def record(source: str, lineno: int, text: str) -> LogRecord | None:
        fields = text.split(maxsplit=n_header)
        if len(fields) < n_header or not valid(fields):
            return None
        epoch = fields[1]
        # isdigit() alone passes '²' and other scripts' digits, which float() then rejects or misreads
        if not (epoch.isascii() and epoch.isdigit() and len(epoch) <= MAX_EPOCH_DIGITS):
            raise ValueError(f"epoch seconds {epoch[:20]!r} is not 1-{MAX_EPOCH_DIGITS} ASCII digits")
        content = fields[n_header] if len(fields) > n_header else ""
        return LogRecord(source, lineno, float(epoch), content, NORMAL if fields[0] == "-" else ANOMALY)

    return record


def _hadoop_record(source: str, lineno: int, text: str) -> LogRecord | None:
    """One container log (its file name) is a session."""
    m = _HADOOP_RE.match(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, ms = (int(m.group(i)) for i in range(1, 8))
    return LogRecord(
        source, lineno, _epoch(y, mo, d, h, mi, s) + ms / 1000.0, m.group(11), sessions=(Path(source).stem,)
    )


# BGL: label epoch date node time noderepeat type component level content
# Thunderbird/Spirit: label epoch date user month day time location component[pid]: content
RECORD_PARSERS: dict[str, Callable[[str, int, str], LogRecord | None]] = {
    "hdfs": _hdfs_record,
    "bgl": _labelled(9, _is_bgl),
    "thunderbird": _labelled(8, _is_syslog),
    "spirit": _labelled(8, _is_syslog),
    "hadoop": _hadoop_record,
}
EXPECTED = {
    "hdfs": "not an HDFS line (date time pid level component: msg)",
    "bgl": "not a bgl line (label epoch date ... message)",
    "thunderbird": "not a thunderbird line (label epoch date ... message)",
    "spirit": "not a spirit line (label epoch date ... message)",
    "hadoop": "not a Hadoop line (date time,ms LEVEL [thread] class: msg) and no record before it to continue",
}


class LineReader:
    """Raw lines of one format -> records, each line counted once in ``report``.

    The batch loaders and ``fedlog detect --follow`` share it, so a line means
    the same thing in training and in production.

    Hadoop lines that do not start a record (stack traces, wrapped messages) are
    appended, newline-separated, to the content of the record they continue
    rather than parsed as events of their own: the exception class and the
    ``Caused by`` chain then shape that record's template, which is the
    evidence, while each distinct stack frame as its own event would be a
    template of its own. On /work/shared/data/hadoop Drain mines 236 templates
    from the head lines alone, 253 with continuations appended and 443 with
    every continuation line as its own event. A record's text stops growing at
    MAX_LINE_BYTES: further continuation lines are counted as ``too_long``. With
    ``--follow`` a continuation reaches the record only while its window is open.

    A ``custom`` reader takes its line parser from the user's :class:`CustomFormat`; like HDFS, a
    custom line with no session key (when ``custom.session`` is set) is counted as ``no_session``.
    """

    def __init__(self, fmt: str, report: LoadReport | None = None, custom: CustomFormat | None = None) -> None:
        if fmt == CUSTOM:
            if custom is None:
                raise SiloError("the custom format needs its custom.* settings (custom.layout, custom.timestamp)")
            self._parse, self._expected = custom.record_parser(), custom.expected()
        elif fmt in RECORD_PARSERS:
            self._parse, self._expected = RECORD_PARSERS[fmt], EXPECTED[fmt]
        else:
            raise SiloError(f"unknown log format {fmt!r}; choose one of {', '.join((*FORMATS, CUSTOM))}")
        self.fmt = fmt
        self._custom = custom
        self.report = report or LoadReport()
        self._sessions_expected = fmt == "hdfs" or bool(custom and custom.session)
        self._open: dict[str, LogRecord | None] = {}  # per source: the Hadoop record a continuation extends

    def feed(self, source: str, lineno: int, raw: bytes | None) -> LogRecord | None:
        """The record this line starts, or None when it is counted as anything else."""
        text = decode_line(raw, source, lineno, self.report)
        return None if text is None else self.feed_text(source, lineno, text)

    def feed_text(self, source: str, lineno: int, text: str) -> LogRecord | None:
        """``feed`` for a line already counted as read, decoded and not blank (see ``decode_line``)."""
        try:
            record = self._parse(source, lineno, text)
        except ValueError as err:
            self.report.skip(source, lineno, f"impossible field in a {self.fmt} line: {err}")
            self._open[source] = None  # its stack trace must not extend the record before it
            return None
        if record is None:
            self._continue(source, lineno, text)
            return None
        self.report.records += 1
        if self.fmt == "hadoop":
            self._open[source] = record
        elif not record.sessions and self._sessions_expected:
            self.report.no_session += 1
            self.report.note("no_session", source, lineno)
        return record

    def _continue(self, source: str, lineno: int, text: str) -> None:
        record = self._open.get(source)
        if record is None:
            self.report.skip(source, lineno, self._expected)
        elif len(record.content) + 1 + len(text) > MAX_LINE_BYTES:
            self.report.too_long += 1
            self.report.skip(source, lineno, f"continuation past {MAX_LINE_BYTES} characters of record text")
        else:
            record.content += "\n" + text
            self.report.continuation += 1
            self.report.note("continuation", source, lineno)

    def read_files(self, files: list[Path], reading: Reading | None = None) -> list[LogRecord]:
        """Records of the files in order; with ``reading``, read in chunks (see :mod:`fedlog.data.chunks`)."""
        if reading is not None:
            return read_chunked(self.fmt, self._custom, files, reading, self.report)
        records = []
        for file in files:
            name = str(file)
            self.report.files.append(name)
            with file.open("rb") as handle:
                for lineno, raw in enumerate(bounded_lines(handle), start=1):
                    record = self.feed(name, lineno, raw)
                    if record is not None:
                        records.append(record)
        return records


# -- whole silos ------------------------------------------------------------------------------


def _label_lines(path: Path, report: LoadReport) -> Iterator[tuple[int, str]]:
    """(line number, text) of a label file; an undecodable or over-long row is counted and skipped."""
    _require_files([path], str(path))
    with path.open("rb") as handle:
        for lineno, raw in enumerate(bounded_lines(handle), start=1):
            report.label_rows += 1
            if raw is None:
                report.skip_label(str(path), lineno, f"row longer than {MAX_LINE_BYTES} bytes")
                continue
            try:
                yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8").rstrip("\r")
            except UnicodeDecodeError as err:
                report.skip_label(str(path), lineno, f"not UTF-8 ({err.reason} at byte {err.start})")


def _label_problems(report: LoadReport) -> str:
    first = "; ".join(str(i) for i in report.label_issues[:3])
    return f"{report.label_skipped} of {report.label_rows} rows skipped" + (f"; first: {first}" if first else "")


def _csv_label_rows(path: Path, report: LoadReport) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, text, CSV fields) of a label file's rows; a row that is not CSV is a counted skip."""
    for lineno, text in _label_lines(path, report):
        try:
            yield lineno, text, next(csv.reader([text]), [])
        except csv.Error as err:
            report.skip_label(str(path), lineno, f"not a CSV row ({err})")


def _read_hdfs_labels(path: Path, report: LoadReport) -> dict[str, int]:
    """``anomaly_label.csv``: ``BlockId,Normal|Anomaly`` rows after an optional header."""
    labels: dict[str, int] = {}
    for lineno, text, row in _csv_label_rows(path, report):
        if not row or (lineno == 1 and row[0] == "BlockId"):
            continue
        if len(row) != 2 or row[1] not in ("Normal", "Anomaly") or not _BLOCK_RE.fullmatch(row[0]):
            report.skip_label(str(path), lineno, f"expected 'BlockId,Normal|Anomaly', got {text[:80]!r}")
            continue
        labels[row[0]] = ANOMALY if row[1] == "Anomaly" else NORMAL
    if not labels:
        raise SiloError(f"{path}: no 'BlockId,Normal|Anomaly' rows ({_label_problems(report)})")
    return labels


def load_hdfs(
    path: Path, labels: Path | None = None, require_labels: bool = True, reading: Reading | None = None
) -> SiloLog:
    """HDFS: a block id is a session; labels per block from ``anomaly_label.csv``."""
    files = _log_files(path)
    label_path = labels or (path if path.is_dir() else path.parent) / "anomaly_label.csv"
    reader = LineReader("hdfs")
    use_labels = require_labels or label_path.exists()
    session_labels = _read_hdfs_labels(label_path, reader.report) if use_labels else {}
    return _finish("hdfs", reader.read_files(files, reading), reader.report, session_labels=session_labels)


def _labelled_loader(fmt: str) -> Callable[..., SiloLog]:
    def load(path: Path, reading: Reading | None = None) -> SiloLog:
        reader = LineReader(fmt)
        records = reader.read_files(_log_files(path), reading)
        records.sort(key=lambda r: r.timestamp)  # stable: file order within a second
        return _finish(fmt, records, reader.report)

    load.__doc__ = f"{fmt}: label as first token, epoch seconds second; sorted by time."
    return load


load_bgl = _labelled_loader("bgl")
load_thunderbird = _labelled_loader("thunderbird")
load_spirit = _labelled_loader("spirit")


def read_hadoop_labels(path: Path, report: LoadReport | None = None) -> dict[str, int]:
    """``abnormal_label.txt``: a section header (``Normal:``, ``Machine down:``...) then ``+ application_...``
    entries; other lines are prose. An entry with no application id or before any header is counted in
    ``report`` and skipped."""
    report = report if report is not None else LoadReport()
    labels: dict[str, int] = {}
    current: int | None = None
    for lineno, line in _label_lines(path, report):
        stripped = line.strip()
        if stripped.endswith(":") and not stripped.startswith("+"):
            current = NORMAL if stripped.lower() == "normal:" else ANOMALY
        elif stripped.startswith("+"):
            app = _APP_RE.search(stripped)
            if app is None or current is None:
                why = "no application id" if app is None else "no section header (Normal: ...) before it"
                report.skip_label(str(path), lineno, f"entry with {why}: {stripped[:80]!r}")
            else:
                labels[app.group(0)] = current
    if not labels:
        raise SiloError(f"{path}: no '+ application_...' entries found ({_label_problems(report)})")
    return labels


def load_hadoop(
    path: Path, labels: Path | None = None, require_labels: bool = True, reading: Reading | None = None
) -> SiloLog:
    """Hadoop: one container log is a session, labelled by its application."""
    if not path.is_dir():
        raise SiloError(f"{path}: expected a directory of application_*/container_*.log")
    label_path = labels or path / "abnormal_label.txt"
    reader = LineReader("hadoop")
    use_labels = require_labels or label_path.exists()
    app_labels = read_hadoop_labels(label_path, reader.report) if use_labels else {}
    files = _require_files(sorted(path.glob("application_*/*.log")), f"container logs in {path}")
    session_labels = {}
    for file in files:
        if file.parent.name in app_labels:
            session_labels[file.stem] = app_labels[file.parent.name]
        else:
            reader.report.unlabeled_sessions += 1
    return _finish("hadoop", reader.read_files(files, reading), reader.report, session_labels=session_labels)


_LABEL_VALUES = {"normal": NORMAL, "0": NORMAL, "anomaly": ANOMALY, "anomalous": ANOMALY, "1": ANOMALY}


def _read_session_labels(path: Path, report: LoadReport) -> dict[str, int]:
    """``custom.labels``: ``key,label`` rows (label Normal/Anomaly or 0/1, any case), as HDFS's
    ``anomaly_label.csv``; a first row whose label is none of these is a header."""
    labels: dict[str, int] = {}
    for lineno, text, row in _csv_label_rows(path, report):
        value = _LABEL_VALUES.get(row[1].strip().lower()) if len(row) == 2 else None
        if not row or (lineno == 1 and len(row) == 2 and value is None):
            continue
        if value is None or not row[0].strip():
            report.skip_label(str(path), lineno, f"expected 'key,Normal|Anomaly' (or 0|1), got {text[:80]!r}")
            continue
        labels[row[0].strip()] = value
    if not labels:
        raise SiloError(f"{path}: no 'key,Normal|Anomaly' rows ({_label_problems(report)})")
    return labels


def load_custom(
    path: Path,
    custom: CustomFormat,
    labels: Path | None = None,
    require_labels: bool = True,
    reading: Reading | None = None,
) -> SiloLog:
    """A user-described log, in file order (year-less timestamps may wrap, so lines are not re-sorted).

    Labels come per line (``custom.label-field``) or per session (``labels``, else ``custom.labels``).
    With neither, ``require_labels`` (training) takes every line as normal and says so in the log and
    in :meth:`CustomFormat.notes`; without it (scoring new logs) the lines stay unlabelled.
    """
    reader = LineReader(CUSTOM, custom=custom)
    label_path = labels or (Path(custom.labels) if custom.labels else None)
    session_labels: dict[str, int] = {}
    if label_path is not None and (require_labels or label_path.exists()):
        session_labels = _read_session_labels(label_path, reader.report)
    records = reader.read_files(_log_files(path), reading)
    if custom.label_field:  # a session is anomalous when any of its lines is
        for record in records:
            for key in record.sessions:
                session_labels[key] = max(session_labels.get(key, NORMAL), record.label)
    elif label_path is None and require_labels:
        log.warning("%s: %s", path, custom.notes()[0])
        for record in records:
            record.label = NORMAL
            session_labels.update(dict.fromkeys(record.sessions, NORMAL))
    keys = {key for record in records for key in record.sessions}
    reader.report.unlabeled_sessions += len(keys - session_labels.keys()) if session_labels else 0
    return _finish(CUSTOM, records, reader.report, session_labels=session_labels)


LOADERS: dict[str, Callable[..., SiloLog]] = {
    "hdfs": load_hdfs,
    "bgl": load_bgl,
    "thunderbird": load_thunderbird,
    "spirit": load_spirit,
    "hadoop": load_hadoop,
}


def load_silo(
    fmt: str,
    path: str | Path,
    labels: str | Path | None = None,
    require_labels: bool = True,
    custom: CustomFormat | None = None,
    reading: Reading | None = None,
) -> SiloLog:
    """Load one silo of a known format (or ``custom``, described by ``custom``) from a file or directory.

    ``labels`` overrides where session labels are read (HDFS ``anomaly_label.csv``,
    Hadoop ``abnormal_label.txt``, a custom ``key,label`` CSV); the other formats carry a label on every line.
    Without ``require_labels``, sessions with no label file are unlabelled (scoring new logs).
    ``reading`` reads in chunks, in worker processes and/or masking contents (``fedlog detect``).
    """
    if fmt not in LOADERS and fmt != CUSTOM:
        raise SiloError(f"unknown log format {fmt!r}; choose one of {', '.join((*FORMATS, CUSTOM))}")
    path = Path(path)
    if not path.exists():
        raise SiloError(f"{path}: no such file or directory")
    if fmt == CUSTOM:
        if custom is None:
            raise SiloError("the custom format needs its custom.* settings (custom.layout, custom.timestamp)")
        return load_custom(path, custom, Path(labels) if labels else None, require_labels, reading)
    if fmt not in ("hdfs", "hadoop"):
        if labels is not None:
            raise SiloError(f"{fmt} logs carry their labels on each line; --labels applies to hdfs and hadoop")
        return LOADERS[fmt](path, reading)
    return LOADERS[fmt](path, Path(labels) if labels else None, require_labels, reading)
