"""Scoring new logs with a finished run's global model: ``fedlog detect``, batch or ``--follow``.

It runs where a client runs: it needs that client's parsing state (the frozen
Drain tree in its state directory) and sends nothing anywhere. The threshold is
the silo's label-free one (the value the run recorded, from normal validation
windows), or is recalibrated on the first N windows of the input taken as
normal (``--calibrate N``); labels of the scored logs never set it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from fedlog.config import RunSettings
from fedlog.data.chunks import Reading, no_cyclic_gc
from fedlog.data.custom import CUSTOM, CustomFormat
from fedlog.data.loaders import LineReader, load_silo
from fedlog.data.records import NORMAL, UNLABELED, LoadReport, LogRecord
from fedlog.data.tail import FollowedFile
from fedlog.detectors import Detector
from fedlog.detectors.base import LocalContext
from fedlog.metrics import detection_metrics
from fedlog.parse.drain import FORMAT_SETTINGS, EventParser, ParserSettings
from fedlog.parse.hashing import federation_key
from fedlog.rundir import load_global_state, summarize
from fedlog.session import SiloSession, new_detector
from fedlog.silo import default_window
from fedlog.windows import Window, WindowSpec, WindowStream, build_windows

log = logging.getLogger(__name__)

MIN_CALIBRATION = 20
CACHE_LIMIT = 200_000  # distinct event sequences remembered between batches (follow mode)
Closed = tuple[Window, list[LogRecord]]


def _run_silo_entry(params: dict[str, Any], settings: RunSettings, fmt: str) -> str | None:
    """The run's silo of this format (the client's own data), if the run had one."""
    entries = [params["silo"]] if "silo" in params else settings.silo_entries
    matches = [e for e in entries if e.partition("=")[0].strip().lower() == fmt]
    if len(matches) > 1:
        raise ValueError(f"the run has {len(matches)} {fmt} silos ({', '.join(matches)}): choose one with --silo")
    return matches[0] if matches else None


def _recorded_threshold(run_dir: Path, round_idx: int, fmt: str) -> float | None:
    """The threshold the run's evaluation used for this silo in that round."""
    file = run_dir / "rounds.jsonl"
    for line in file.read_text().splitlines() if file.exists() else []:
        record = json.loads(line)
        if record.get("round") != round_idx:
            continue
        for name, entry in record.get("silos", {}).items():
            if name.split(":")[-1] == fmt and entry.get("eval", {}).get("threshold") is not None:
                return float(entry["eval"]["threshold"])
    return None


@dataclass
class Scorer:
    """A run's global model plus one client's parsing state and threshold, ready for new windows."""

    fmt: str
    spec: WindowSpec
    detector: Detector
    parser: EventParser | None  # None: a new system, mined on the calibration windows
    threshold: float | None
    calibrate: int = 0
    new_system: bool = False  # no silo of this format in the run: local state comes from calibration
    top: int = 3
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    custom: CustomFormat | None = None  # how the lines of a custom format read: the run's custom.* settings
    _calibration: list[Closed] = field(default_factory=list)
    _labels: list[int] = field(default_factory=list)
    _scores: list[float] = field(default_factory=list)
    windows: int = 0
    alerts: int = 0
    _scores_by_events: dict[tuple, float] = field(default_factory=dict)
    _lines_by_events: dict[tuple, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_run(
        cls,
        run_dir: Path,
        fmt: str,
        round_idx: int | None = None,
        silo: str = "",
        calibrate: int = 0,
        window: str = "",
        top: int = 3,
        state_dir: Path | None = None,
    ) -> Scorer:
        params = json.loads((run_dir / "params.json").read_text())
        settings = RunSettings.from_flat(params)
        custom = settings.custom_format() if fmt == CUSTOM else None
        spec = WindowSpec.parse(window or str(params.get(f"window.{fmt}", "")) or default_window(fmt, custom))
        entry = silo or _run_silo_entry(params, settings, fmt)
        if calibrate and calibrate < MIN_CALIBRATION:
            raise ValueError(f"--calibrate needs at least {MIN_CALIBRATION} windows to set a quantile")
        if entry is None:
            if not calibrate:
                raise ValueError(
                    f"the run never saw a {fmt} silo: give --calibrate N (a new parser and threshold from the first "
                    f"N windows, taken as normal) or --silo {fmt}=PATH (this client's training logs)"
                )
            detector = new_detector(settings)
            round_idx, state = load_global_state(run_dir, round_idx)
            detector.load_state(state)
            info = {"run": str(run_dir), "round": round_idx, "detector": settings.detector, "window": spec_text(spec)}
            note = f"the run had no {fmt} silo: a new parser is mined on the first {calibrate} windows"
            return cls(fmt, spec, detector, None, None, calibrate, True, top, info, [note], custom)
        session = SiloSession.open(settings, entry, state_dir)
        if session.name != fmt:
            raise ValueError(f"--silo {entry!r} is a {session.name} silo, but --format is {fmt}")
        round_idx = session.load_run(run_dir, round_idx)
        detector, split = session.detector, session.silo.split
        parser = EventParser.load(session.silo.parser_path, federation_key())
        own = detector.threshold(split.val, split.train)
        recorded = _recorded_threshold(run_dir, round_idx, fmt)
        threshold = own if recorded is None else recorded
        info = {"run": str(run_dir), "round": round_idx, "detector": settings.detector, "window": spec_text(spec)}
        info |= {"silo": entry, "threshold_source": detector.threshold_source}
        notes = [f"parser of the run's silo {entry} ({len(parser.templates)} templates)"]
        if recorded is None:
            notes.append(f"no threshold recorded for {fmt} in round {round_idx}: recomputed on its validation normals")
        elif not np.isclose(recorded, own, rtol=1e-4):
            notes.append(f"recorded threshold {recorded:.6g} differs from the recomputed {own:.6g}; using the recorded")
        if calibrate:
            notes.append(f"threshold recalibrated on the first {calibrate} windows, taken as normal")
            threshold = None
        return cls(fmt, spec, detector, parser, threshold, calibrate, False, top, info, notes, custom)

    # -- windows in, records out ----------------------------------------------------------------

    def parser_settings(self) -> ParserSettings:
        """The settings of the parser that matches the input: the run's, or the one calibration mines."""
        if self.parser is not None:
            return self.parser.settings
        return self.custom.parser_settings() if self.custom else FORMAT_SETTINGS[self.fmt]

    def _fill(self, closed: Sequence[Closed]) -> list[Window]:
        assert self.parser is not None
        masked = [r.masked for _, records in closed for r in records]  # a chunked batch read, this parser's rules
        if None in masked:
            ids = self.parser.match_all([r.content for _, records in closed for r in records])
        else:
            ids = self.parser.match_masked(masked)
        pos = 0
        for window, records in closed:
            window.events = ids[pos : pos + len(records)]
            pos += len(records)
        return [w for w, _ in closed]

    def _calibrate(self) -> None:
        if self.parser is None:
            self.parser = EventParser(self.parser_settings(), federation_key())
            self.parser.mine(r.content for _, records in self._calibration for r in records)
        normal = [dataclasses.replace(w, label=NORMAL) for w in self._fill(self._calibration)]
        if self.new_system:  # its client-local context (templates, vocabulary...) comes from calibration
            self.detector.bind(LocalContext(self.parser.templates, None, normal, normal))
        self.threshold = self.detector.threshold(normal)
        self.info["threshold_source"] = f"first {len(normal)} windows of the input, taken as normal"
        self.notes.append(f"threshold {self.threshold:.6g} from {len(normal)} calibration windows")

    def process(self, closed: Sequence[Closed], sources: Sequence[str]) -> list[dict[str, Any]]:
        """Score closed windows; the first ``calibrate`` windows only calibrate."""
        closed = list(closed)
        if self.threshold is None:
            take = self.calibrate - len(self._calibration)
            self._calibration += closed[:take]
            closed = closed[take:]
            if len(self._calibration) < self.calibrate:
                return []
            self._calibrate()
        if not closed:
            return []
        windows = self._fill(closed)
        scores = np.array(self._cached(windows, self._scores_by_events, self.detector.score))
        flagged = [i for i, s in enumerate(scores) if s > self.threshold]
        explained = self._cached([windows[i] for i in flagged], self._lines_by_events, self.detector.line_scores)
        contributions = dict(zip(flagged, explained))
        out = []
        for i, (w, records) in enumerate(closed):
            record = self._record(w, records, float(scores[i]), contributions.get(i), sources)
            if w.label != UNLABELED:
                self._labels.append(w.label)
                self._scores.append(float(scores[i]))
            out.append(record)
        self.windows += len(out)
        self.alerts += len(flagged)
        return out

    @property
    def distinct_sequences(self) -> int:
        return len(self._scores_by_events)

    @staticmethod
    def _cached(windows: Sequence[Window], cache: dict[tuple, Any], compute: Callable[[list[Window]], Any]) -> list:
        """Windows with the same events score the same, and logs repeat themselves: HDFS's 11,501
        sessions hold 1,532 distinct event sequences. Compute each distinct one once."""
        keys = [tuple(w.events) for w in windows]
        if len(cache) + len(keys) > CACHE_LIMIT:
            cache.clear()
        todo = {k: w for k, w in zip(keys, windows) if k not in cache}
        if todo:
            cache.update(zip(todo, compute(list(todo.values()))))
        return [cache[k] for k in keys]

    def _record(
        self,
        w: Window,
        records: Sequence[LogRecord],
        score: float,
        contribution: np.ndarray | None,
        sources: Sequence[str],
    ) -> dict:
        def where(ref: tuple[int, int]) -> dict[str, Any]:
            return {"file": sources[ref[0]], "line": ref[1]}

        record: dict[str, Any] = {
            "window": w.key,
            "first": where(w.lines[0]),
            "last": where(w.lines[-1]),
            "lines": len(w.lines),
            "score": score,
            "threshold": self.threshold,
            "anomalous": score > self.threshold,
            "top_lines": [],
        }
        if w.label != UNLABELED:
            record["label"] = w.label
        if contribution is not None:
            templates = self.parser.templates if self.parser else {}
            record["top_lines"] = [
                where(w.lines[j])
                | {
                    "event": w.events[j] or "unknown",
                    "contribution": float(contribution[j]),
                    "text": records[j].content,  # local output only: it never leaves this machine
                    "template": templates.get(w.events[j] or "", "(no template: a kind of line never seen)"),
                }
                for j in self._evidence(w, contribution)
            ]
        return record

    def _evidence(self, w: Window, contribution: np.ndarray) -> list[int]:
        """The ``top`` lines that raised the score most, one per event type: ten lines of one retried
        write say no more than one of them."""
        chosen: dict[str | None, int] = {}
        for j in np.argsort(-contribution, kind="stable"):
            chosen.setdefault(w.events[j], int(j))
            if len(chosen) == self.top:
                break
        return list(chosen.values())

    def summary(self, extra: dict[str, Any]) -> dict[str, Any]:
        """The training runs' summary.json shape; metrics only when the scored windows had labels."""
        silos = {}
        if self._labels:
            silos[self.fmt] = detection_metrics(self._labels, self._scores, self.threshold) | {
                "examples": len(self._labels)
            }
        parse = self.parser.report.to_dict() if self.parser else {}
        return summarize(
            silos,
            self.info
            | {"threshold": self.threshold, "windows": self.windows, "alerts": self.alerts, "parse": parse}
            | {"calibration_windows": len(self._calibration), "notes": self.notes}
            | extra,
        )


def spec_text(spec: WindowSpec) -> str:
    return "session" if spec.kind == "session" else f"{spec.kind}:{spec.size:g}:{spec.step:g}"


def _merge_reports(reports: Iterable[LoadReport]) -> dict[str, Any]:
    total = LoadReport()
    for r in reports:
        total.merge(r)
    return total.to_dict()


def _write(records: Iterable[dict], out: TextIO) -> None:
    for record in records:
        out.write(json.dumps(record) + "\n")
    out.flush()


def detect_files(
    scorer: Scorer, paths: Sequence[Path], out: TextIO, labels: Path | None = None, workers: int = 1
) -> dict[str, Any]:
    """Batch: load, parse, window and score whole files; one JSON line per window to ``out``.

    Reading and masking run in chunks, in ``workers`` processes (0: one per CPU core); the default 1
    keeps everything in this process, which suits small inputs and machines busy with training.
    The output does not depend on ``workers``.
    """
    started = time.perf_counter()
    reading = Reading(workers, scorer.parser_settings().masking)
    with no_cyclic_gc():
        silos = [load_silo(scorer.fmt, p, labels, labels is not None, scorer.custom, reading) for p in paths]
        records = [r for s in silos for r in s.records]
        session_labels = {k: v for s in silos for k, v in (s.session_labels or {}).items()}
        sources = list(dict.fromkeys(r.source for r in records))
        windows = build_windows(records, scorer.spec, {s: i for i, s in enumerate(sources)}, session_labels)
        closed = [(w, [records[i] for i in w.rows]) for w in windows]
        _write(scorer.process(closed, sources), out)  # each collection would walk every record again
    if scorer.threshold is None:
        raise ValueError(f"only {len(windows)} windows in the input: fewer than --calibrate {scorer.calibrate}")
    seconds = time.perf_counter() - started
    load = _merge_reports(s.report for s in silos)
    return scorer.summary({"load": load, "seconds": round(seconds, 3), "lines_per_s": load["lines_read"] / seconds})


def follow_files(
    scorer: Scorer,
    paths: Sequence[Path],
    out: TextIO,
    stop: threading.Event,
    on_record: Callable[[dict], None] = lambda record: None,
    poll_s: float = 0.2,
    idle_s: float = 2.0,
    from_start: bool = True,
) -> dict[str, Any]:
    """Streaming: tail the files (surviving rotation) and score each window as it closes, until ``stop``.

    Sessions close after ``idle_s`` seconds without a new line; whatever is still
    open when ``stop`` is set is scored before the summary.
    """
    # one report for every file: over-long and unfinished lines are counted there
    reader = LineReader(scorer.fmt, custom=scorer.custom)
    followed = [FollowedFile(Path(p), from_start=from_start, report=reader.report) for p in paths]
    stream = WindowStream(scorer.spec, idle_s=idle_s)
    sources: list[str] = []
    index: dict[str, int] = {}

    def handle(closed: list[Closed]) -> None:
        records = scorer.process(closed, sources)
        _write(records, out)
        for record in records:
            on_record(record)

    while True:
        stopping = stop.is_set()
        now = time.monotonic()
        closed: list[Closed] = []
        for file in followed:
            for source, lineno, raw in file.poll():
                record = reader.feed(source, lineno, raw)
                if record is None:
                    continue
                if source not in index:
                    index[source] = len(sources)
                    sources.append(source)
                closed += stream.feed(record, (index[source], lineno), now)
        closed += stream.expire(now)
        if stopping:
            handle(closed + stream.flush())
            break
        if closed:
            handle(closed)
        stop.wait(poll_s)
    for file in followed:
        file.close()
    return scorer.summary({"load": reader.report.to_dict(), "files_followed": [str(p) for p in paths]})
