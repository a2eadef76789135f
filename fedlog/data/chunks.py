"""Batch reading in chunks of lines, in this process or in worker processes, masking contents on the way.

``fedlog detect`` on a large file spends most of its time turning bytes into
records and masking their contents for Drain. Both are per line and
independent between lines (a Hadoop continuation only within its file), so a
file is cut at line boundaries into chunks that worker processes (and this
one) read, parse and mask; results are put back in chunk order, so records,
line numbers and the load report (counts, first issues, examples) are exactly
those of a sequential read. With one worker the same chunks run in this
process alone: one code path.

Masking here uses the rules of the parser that will match the records (the
parser's own settings), through the same :class:`TokenMasker`, so
``record.masked`` is the text ``EventParser`` would compute itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import os
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fedlog.data.custom import CustomFormat
from fedlog.data.records import LoadReport, LogRecord
from fedlog.parse.masking import TokenMasker

CHUNK_BYTES = 4 * 1024 * 1024  # ~40k HDFS lines: few enough tasks to amortize, enough to share out
_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class Reading:
    """How :meth:`LineReader.read_files` reads: ``workers`` processes (1: this one); with ``masking`` rules
    each record's ``masked`` is filled in."""

    workers: int = 1
    masking: tuple[tuple[str, str], ...] | None = None

    @staticmethod
    def resolve_workers(workers: int) -> int:
        """``0`` means one worker per CPU core."""
        return workers if workers > 0 else os.cpu_count() or 1


@dataclass(frozen=True)
class Chunk:
    """``lines`` physical lines of ``path`` in bytes ``start`` to ``end``, the first being line ``first``
    (``lines`` None: to the end of the file, ``end`` being its size when planned)."""

    path: str
    start: int
    end: int
    first: int
    lines: int | None


def plan_chunks(path: Path, whole: bool, size: int) -> list[Chunk]:
    """Cut a file just after the first newline past every ``size`` bytes (``whole``: one chunk), counting
    the lines before each cut to number the next chunk's first; memory stays at one block per read."""
    if whole:
        return [Chunk(str(path), 0, path.stat().st_size, 1, None)]
    chunks: list[Chunk] = []
    start, first = 0, 1
    with path.open("rb") as handle:
        total = os.fstat(handle.fileno()).st_size
        while start + size < total:
            handle.seek(start)
            lines = sum(block.count(b"\n") for block in _blocks(handle, size))
            cut = start + size
            while (block := handle.read(_BLOCK)) and (newline := block.find(b"\n")) < 0:
                cut += len(block)
            if not block:  # no newline after the last cut: the rest is one chunk
                break
            cut += newline + 1
            chunks.append(Chunk(str(path), start, cut, first, lines + 1))
            start, first = cut, first + lines + 1
    if start < total or not chunks:
        chunks.append(Chunk(str(path), start, total, first, None))
    return chunks


def _blocks(handle: BinaryIO, size: int) -> Iterator[bytes]:
    """The next ``size`` bytes, a block at a time."""
    while size > 0 and (block := handle.read(min(_BLOCK, size))):
        size -= len(block)
        yield block


def read_chunk(
    fmt: str,
    custom: CustomFormat | None,
    masking: tuple[tuple[str, str], ...] | None,
    chunk: Chunk,
    masker: TokenMasker | None = None,
) -> tuple[list[LogRecord], LoadReport]:
    """One chunk's records (masked when rules are given: by ``masker``, else by this process's masker
    for the rules) and its load report; the task a worker runs."""
    from fedlog.data.loaders import LineReader, bounded_lines  # the loaders import this module

    reader = LineReader(fmt, custom=custom)
    records = []
    path, report = chunk.path, reader.report
    with open(path, "rb") as handle:
        handle.seek(chunk.start)
        texts = _clean_lines(handle, chunk)
        if texts is not None:  # the common case, as feed() would see it line by line
            report.lines_read += len(texts)
            feed, keep = reader.feed_text, records.append
            for lineno, text in enumerate(texts, start=chunk.first):
                if not text.strip():
                    report.blank += 1
                elif (record := feed(path, lineno, text)) is not None:
                    keep(record)
        else:
            raws: Iterator[bytes | None] = bounded_lines(handle)
            if chunk.lines is not None:
                raws = itertools.islice(raws, chunk.lines)
            for lineno, raw in enumerate(raws, start=chunk.first):
                if (record := reader.feed(path, lineno, raw)) is not None:
                    records.append(record)
    if masking is not None:  # after the chunk: a Hadoop continuation may still have extended a record
        mask = (masker or _masker(masking)).mask
        for record in records:
            record.masked = mask(record.content)
    return records, reader.report


Columns = tuple[list, ...]  # one list per LogRecord field after ``source`` (a chunk's records share it)
_COLUMNS = tuple(f.name for f in dataclasses.fields(LogRecord))[1:]


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch builds and scores its records and windows:
    they hold no reference cycles, yet every collection walks all of them again (half the cost of
    creating a record; a second on HDFS_2pct.log's windows). Reference counting still frees what it
    can; any cyclic garbage waits for the collector, back on at the end."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_chunk_columns(
    fmt: str, custom: CustomFormat | None, masking: tuple[tuple[str, str], ...] | None, chunk: Chunk
) -> tuple[Columns, LoadReport]:
    """``read_chunk`` in a worker: its records go back to the parent as columns, which pickle several
    times faster than as record objects."""
    with no_cyclic_gc():
        records, report = read_chunk(fmt, custom, masking, chunk)
        columns = {name: [getattr(r, name) for r in records] for name in _COLUMNS}
        interned: dict[str, str] = {}  # equal masked texts as one object: pickled once
        columns["masked"] = [interned.setdefault(m, m) if m is not None else m for m in columns["masked"]]
    return tuple(columns.values()), report


def _records(path: str, columns: Columns) -> list[LogRecord]:
    return [LogRecord(path, *row) for row in zip(*columns)]


def _clean_lines(handle: BinaryIO, chunk: Chunk) -> list[str] | None:
    """The chunk's lines, read and decoded in one go when none needs ``decode_line``'s care and the file
    still holds what was planned; else None, with the handle back at the chunk's start."""
    from fedlog.data.loaders import decode_block

    if chunk.end - chunk.start > 2 * CHUNK_BYTES:  # a huge line inside: read it bounded, line by line
        return None
    data = handle.read(chunk.end - chunk.start if chunk.lines is not None else 2 * CHUNK_BYTES)
    planned = data.count(b"\n") == chunk.lines if chunk.lines is not None else not handle.read(1)
    texts = decode_block(data) if planned else None
    if texts is None:
        handle.seek(chunk.start)
    return texts


_MASKERS: dict[tuple[tuple[str, str], ...], TokenMasker] = {}


def _masker(rules: tuple[tuple[str, str], ...]) -> TokenMasker:
    """A worker's masker for these rules, kept for the pool's life: its token cache serves every chunk."""
    if rules not in _MASKERS:
        _MASKERS[rules] = TokenMasker(rules)
    return _MASKERS[rules]


def read_chunked(
    fmt: str, custom: CustomFormat | None, files: list[Path], reading: Reading, report: LoadReport
) -> list[LogRecord]:
    """Every file's records in file and line order; the chunks' reports are merged into ``report`` in order.

    With N workers this process is one of them: N - 1 worker processes take chunks from the front
    while this one takes them from the back, as long as no worker has started them; their records
    need no trip through a pipe, and a pool of N would leave this process idle while they work.
    """
    whole = fmt == "hadoop"  # continuation lines attach to the record before them, in the same file
    chunks = [c for f in files for c in plan_chunks(f, whole, CHUNK_BYTES)]
    workers = min(Reading.resolve_workers(reading.workers), len(chunks))
    masker = TokenMasker(reading.masking) if reading.masking is not None else None  # cold, as each read
    results: list[tuple[list[LogRecord], LoadReport] | None] = [None] * len(chunks)
    with contextlib.ExitStack() as stack:
        futures: list[Future] = []
        if workers > 1:
            pool = stack.enter_context(ProcessPoolExecutor(workers - 1))
            futures = [pool.submit(read_chunk_columns, fmt, custom, reading.masking, c) for c in chunks]
        for i in reversed(range(len(chunks))):
            if futures and not futures[i].cancel():  # a worker has it: the rest are theirs too
                break
            results[i] = read_chunk(fmt, custom, reading.masking, chunks[i], masker)
        for i, future in enumerate(futures):
            if results[i] is None:
                columns, part = future.result()
                results[i] = (_records(chunks[i].path, columns), part)
    records: list[LogRecord] = []
    report.files += [str(f) for f in files]
    for chunk_records, chunk_report in results:  # type: ignore[misc]
        records += chunk_records
        report.merge(chunk_report)
    return records
