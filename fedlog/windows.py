"""Grouping parsed lines into windows, and the chronological train/validation/test split.

Window kinds (spec strings, as in the run config):
- ``session``: one window per session key (HDFS block, Hadoop container), in
  order of first appearance; its label comes from the session labels.
- ``time:SIZE:STEP``: sliding windows of SIZE seconds every STEP seconds.
- ``count:SIZE:STEP``: windows of SIZE consecutive lines every STEP lines.
A sliding window is anomalous when any of its lines is.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from fedlog.data.records import ANOMALY, NORMAL, UNLABELED, LogRecord


@dataclass(slots=True)
class Window:
    """A sequence of event ids (None = unknown event) with pointers to its raw lines.

    Windows are cut before parsing (``rows`` index the silo's records) because
    the split decides which lines Drain may learn from; ``events`` is filled in
    once the parser is frozen.
    """

    key: str
    start: float
    end: float
    rows: list[int]
    lines: list[tuple[int, int]]  # (source index, line number) per event
    label: int
    events: list[str | None] = field(default_factory=list)


@dataclass(frozen=True)
class WindowSpec:
    kind: str
    size: float = 0
    step: float = 0

    @classmethod
    def parse(cls, spec: str) -> WindowSpec:
        parts = spec.strip().split(":")
        kind = parts[0]
        if kind == "session" and len(parts) == 1:
            return cls("session")
        if kind in ("time", "count") and len(parts) in (2, 3):
            size = float(parts[1])
            step = float(parts[2]) if len(parts) == 3 else size
            if size > 0 and step > 0:
                return cls(kind, size, step)
        raise ValueError(f"bad window spec {spec!r}: use 'session', 'time:SECONDS[:STEP]' or 'count:LINES[:STEP]'")

    @property
    def overlapping(self) -> bool:
        return self.kind != "session" and self.step < self.size


def _label(labels: Sequence[int]) -> int:
    if any(lab == ANOMALY for lab in labels):
        return ANOMALY
    if any(lab == UNLABELED for lab in labels):
        return UNLABELED
    return NORMAL


def build_windows(
    records: Sequence[LogRecord],
    spec: WindowSpec,
    sources: dict[str, int],
    session_labels: dict[str, int] | None = None,
) -> list[Window]:
    """Group records into windows ordered by start time."""
    refs = [(sources[r.source], r.lineno) for r in records]
    if spec.kind == "session":
        windows = _sessions(records, refs, session_labels or {})
    else:
        windows = _sliding(records, refs, spec)
    windows.sort(key=lambda w: (w.start, w.key))
    return windows


def fill_events(windows: Sequence[Window], ids: Sequence[str | None]) -> None:
    for w in windows:
        w.events = [ids[i] for i in w.rows]


def _sessions(records, refs, session_labels) -> list[Window]:
    groups: dict[str, Window] = {}
    for row, (rec, ref) in enumerate(zip(records, refs)):
        timestamp = rec.timestamp
        for key in rec.sessions:  # one pass over every line of a large batch: kept lean
            win = groups.get(key)
            if win is None:
                label = session_labels.get(key, UNLABELED)
                win = groups[key] = Window(key, timestamp, timestamp, [], [], label)
            win.rows.append(row)
            win.lines.append(ref)
            if timestamp > win.end:
                win.end = timestamp
    return list(groups.values())


def _sliding(records, refs, spec: WindowSpec) -> list[Window]:
    n = len(records)
    if spec.kind == "count":
        size, step = int(spec.size), int(spec.step)
        bounds = [(i, min(i + size, n)) for i in range(0, max(n - size, 0) + 1, step)]
        if bounds and bounds[-1][1] < n and bounds[-1][0] + step < n:  # keep the tail: no line is left out
            bounds.append((bounds[-1][0] + step, n))
    else:
        times = [r.timestamp for r in records]
        t0, t_end = times[0], times[-1]
        n_win = max(1, math.floor((t_end - t0 - spec.size) / spec.step) + 2)  # the last one reaches past t_end
        bounds = []
        for k in range(n_win):
            lo_t = t0 + k * spec.step
            lo = bisect.bisect_left(times, lo_t)
            hi = bisect.bisect_left(times, lo_t + spec.size)
            if hi > lo:
                bounds.append((lo, hi))
    windows = []
    for lo, hi in bounds:
        windows.append(
            Window(
                key=f"{spec.kind}:{lo}",
                start=records[lo].timestamp,
                end=records[hi - 1].timestamp,
                rows=list(range(lo, hi)),
                lines=list(refs[lo:hi]),
                label=_label([r.label for r in records[lo:hi]]),
            )
        )
    return windows


@dataclass(frozen=True)
class SplitSpec:
    """Chronological split: a training prefix (its last part is validation), then test.

    ``train_normal`` > 0 sizes the prefix by its count of normal windows (the
    FastLogAD/LogBERT protocol: the first ~5,000 normal sessions); otherwise
    ``train_fraction`` of all windows.
    """

    train_fraction: float = 0.5
    val_fraction: float = 0.1
    train_normal: int = 0
    # The FastLogAD/LogBERT papers' variant: anomalous windows of the training prefix go to test too
    # (session windows; the chronological default keeps them in training, where they are seen).
    anomalies_to_test: bool = False


@dataclass
class Split:
    train: list[Window]
    val: list[Window]
    test: list[Window]
    unlabeled: int = 0
    purged: int = 0

    def parts(self) -> dict[str, list[Window]]:
        return {"train": self.train, "val": self.val, "test": self.test}


def _prefix_length(windows: Sequence[Window], spec: SplitSpec) -> int:
    if spec.train_normal > 0:
        seen = 0
        for i, w in enumerate(windows):
            seen += w.label == NORMAL
            if seen >= spec.train_normal:
                return i + 1
        return len(windows)
    return int(round(len(windows) * spec.train_fraction))


def _purge(before: list[Window], after: list[Window]) -> tuple[list[Window], int]:
    """Drop windows that start before the previous part ends (overlapping sliding windows)."""
    if not before:
        return after, 0
    cutoff = max(w.end for w in before)
    kept = [w for w in after if w.start > cutoff]
    return kept, len(after) - len(kept)


def chronological_split(windows: Sequence[Window], spec: SplitSpec, overlapping: bool) -> Split:
    """Split by start time; with overlapping windows, purge the boundary so no line is shared."""
    labelled = [w for w in windows if w.label != UNLABELED]
    n_prefix = _prefix_length(labelled, spec)
    prefix, test = labelled[:n_prefix], labelled[n_prefix:]
    if spec.anomalies_to_test:
        test = [w for w in prefix if w.label == ANOMALY] + test
        prefix = [w for w in prefix if w.label != ANOMALY]
    n_val = max(1, int(round(len(prefix) * spec.val_fraction))) if len(prefix) > 1 else 0
    train, val = prefix[: len(prefix) - n_val], prefix[len(prefix) - n_val :]
    purged = 0
    if overlapping:
        val, p1 = _purge(train, val)
        test, p2 = _purge(train + val, test)
        purged = p1 + p2
    return Split(train, val, test, unlabeled=len(windows) - len(labelled), purged=purged)


class WindowStream:
    """The same windows as :func:`build_windows`, cut incrementally from a live stream of records.

    ``feed`` returns the windows a record closes: a count window when it is full,
    a time window when a later timestamp arrives, a session when it has been
    idle for ``idle_s`` seconds of wall-clock time (checked by ``expire``).
    ``flush`` closes everything still open (end of input, Ctrl-C). Each closed
    window comes with its records, so events can be matched when it closes.
    """

    def __init__(self, spec: WindowSpec, session_labels: dict[str, int] | None = None, idle_s: float = 2.0) -> None:
        self.spec = spec
        self.session_labels = session_labels or {}
        self.idle_s = idle_s
        self._row = 0
        self._buffer: list[tuple[int, LogRecord, tuple[int, int]]] = []  # count/time: (row, record, ref)
        self._fresh = 0  # records fed since the last count window closed
        self._gap = 0
        self._t0: float | None = None
        self._k = 0  # index of the open time window
        self._sessions: dict[str, tuple[Window, list[LogRecord], float]] = {}

    def _window(self, key: str, items: Sequence[tuple[int, LogRecord, tuple[int, int]]]):
        records = [rec for _, rec, _ in items]
        window = Window(
            key=key,
            start=records[0].timestamp,
            end=records[-1].timestamp,
            rows=[row for row, _, _ in items],
            lines=[ref for _, _, ref in items],
            label=_label([r.label for r in records]),
        )
        return window, records

    def feed(self, record: LogRecord, ref: tuple[int, int], now: float) -> list[tuple[Window, list[LogRecord]]]:
        row, self._row = self._row, self._row + 1
        if self.spec.kind == "session":
            for key in record.sessions:
                if key not in self._sessions:
                    label = self.session_labels.get(key, UNLABELED)
                    self._sessions[key] = (Window(key, record.timestamp, record.timestamp, [], [], label), [], now)
                window, records, _ = self._sessions[key]
                window.rows.append(row)
                window.lines.append(ref)
                window.end = max(window.end, record.timestamp)
                records.append(record)
                self._sessions[key] = (window, records, now)
            return []
        if self.spec.kind == "count":
            if self._gap:  # step > size: lines between windows belong to none (as in build_windows)
                self._gap -= 1
                return []
            self._buffer.append((row, record, ref))
            self._fresh += 1
            if len(self._buffer) < self.spec.size:
                return []
            closed = [self._window(f"count:{self._buffer[0][0]}", self._buffer)]
            del self._buffer[: int(self.spec.step)]
            self._gap, self._fresh = max(0, int(self.spec.step - self.spec.size)), 0
            return closed
        return self._feed_time(row, record, ref)

    def _feed_time(self, row: int, record: LogRecord, ref: tuple[int, int]) -> list[tuple[Window, list[LogRecord]]]:
        if self._t0 is None:
            self._t0 = record.timestamp
        size, step, closed = self.spec.size, self.spec.step, []
        while self._t0 + self._k * step + size <= record.timestamp:
            lo = self._t0 + self._k * step
            inside = [item for item in self._buffer if lo <= item[1].timestamp < lo + size]
            if inside:
                closed.append(self._window(f"time:{inside[0][0]}", inside))
            self._k += 1
            self._buffer = [item for item in self._buffer if item[1].timestamp >= self._t0 + self._k * step]
            if not self._buffer:  # a quiet spell: jump to the first window that can hold this record
                self._k = max(self._k, math.floor((record.timestamp - self._t0 - size) / step) + 1)
        self._buffer.append((row, record, ref))
        return closed

    def expire(self, now: float) -> list[tuple[Window, list[LogRecord]]]:
        """Sessions idle for ``idle_s`` seconds are over."""
        idle = [k for k, (_, _, seen) in self._sessions.items() if now - seen >= self.idle_s]
        return [self._sessions.pop(k)[:2] for k in idle]

    def flush(self) -> list[tuple[Window, list[LogRecord]]]:
        closed = [v[:2] for v in self._sessions.values()]
        self._sessions.clear()
        if self.spec.kind == "count" and self._fresh and self._buffer:
            closed.append(self._window(f"count:{self._buffer[0][0]}", self._buffer))
        elif self.spec.kind == "time" and self._buffer:
            last, k = self._buffer[-1][1].timestamp, self._k
            while True:  # the open window, then later ones until one reaches past the last record
                lo = self._t0 + k * self.spec.step
                inside = [item for item in self._buffer if lo <= item[1].timestamp < lo + self.spec.size]
                if inside:
                    closed.append(self._window(f"time:{inside[0][0]}", inside))
                if lo + self.spec.size > last:
                    break
                k += 1
        self._buffer, self._fresh = [], 0
        return closed
