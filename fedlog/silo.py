"""One silo from raw files to split windows: load -> window -> split -> mine -> match.

The prepared silo (and the parser state with the id -> template map) is cached
in the client's own state directory, keyed by the inputs and settings, so
repeated rounds and repeated runs do not re-parse. Nothing here is sent to the
server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import os
import pickle
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fedlog.data.custom import CUSTOM, CustomFormat
from fedlog.data.loaders import FORMATS, SiloError, load_silo
from fedlog.data.records import NORMAL, SiloLog
from fedlog.parse.drain import FORMAT_SETTINGS, EventParser, ParserSettings
from fedlog.windows import Split, SplitSpec, Window, WindowSpec, build_windows, chronological_split, fill_events

log = logging.getLogger(__name__)

DEFAULT_WINDOWS = {
    "hdfs": "session",
    "hadoop": "session",
    "bgl": "count:20",
    "thunderbird": "count:20",
    "spirit": "count:20",
    CUSTOM: "count:20",  # "session" where custom.session names a session key
}
SILO_FORMATS = (*FORMATS, CUSTOM)
STATE_ENV = "FEDLOG_STATE_DIR"


def default_window(fmt: str, custom: CustomFormat | None = None) -> str:
    """The window a format is cut into when the run config does not say (``window.<format>``)."""
    return "session" if fmt == CUSTOM and custom is not None and custom.session else DEFAULT_WINDOWS[fmt]


def default_state_dir() -> Path:
    """Client-local cache: $FEDLOG_STATE_DIR or ~/.cache/fedlog."""
    return Path(os.environ.get(STATE_ENV) or Path.home() / ".cache" / "fedlog")


@dataclass(frozen=True)
class SiloSource:
    """Where a silo's raw logs are and how to cut them."""

    fmt: str
    path: str
    window: str = ""
    max_lines: int = 0
    behaviours: tuple[int, int] | None = None  # (k, n): this silo holds behaviour group k of n (see below)
    custom: CustomFormat | None = None  # how a custom silo's lines read (custom.* in the run config)

    @property
    def window_spec(self) -> WindowSpec:
        return WindowSpec.parse(self.window or default_window(self.fmt, self.custom))

    @property
    def parser_settings(self) -> ParserSettings:
        return self.custom.parser_settings() if self.custom else FORMAT_SETTINGS[self.fmt]

    @classmethod
    def parse(cls, text: str, base_dir: str = "", **kw) -> SiloSource:
        """``format=path[#behaviours=K/N]`` (path relative to ``base_dir`` unless absolute)."""
        fmt, sep, path = text.strip().partition("=")
        fmt = fmt.strip().lower()
        path, _, option = path.partition("#")
        if not sep or fmt not in SILO_FORMATS or not path.strip():
            raise SiloError(f"bad silo {text!r}: expected FORMAT=PATH with FORMAT in {', '.join(SILO_FORMATS)}")
        if (fmt == CUSTOM) != (kw.get("custom") is not None):
            raise SiloError(f"silo {text!r}: custom.* settings go with, and only with, a custom silo")
        full = Path(base_dir, path.strip()).expanduser() if base_dir else Path(path.strip()).expanduser()
        return cls(fmt=fmt, path=str(full.resolve()), behaviours=_behaviours(option, text) if option else None, **kw)


def _behaviours(option: str, text: str) -> tuple[int, int]:
    name, _, value = option.partition("=")
    k, _, n = value.partition("/")
    if name.strip() != "behaviours" or not (k.strip().isdigit() and n.strip().isdigit()) or not 0 <= int(k) < int(n):
        raise SiloError(f"bad silo option in {text!r}: expected #behaviours=K/N with 0 <= K < N")
    return int(k), int(n)


def behaviour_share(split: Split, k: int, n: int, val_fraction: float = 0.1) -> Split:
    """Silo k of n in a federation where each silo has seen only some of the system's behaviours.

    The normal windows of the training prefix are grouped by their *set* of events (HDFS's normal
    training sessions have 9 such sets); sets are ranked by frequency and dealt round-robin, so silo
    k keeps the normal training and validation windows of sets k, k+n, ... and every n-th anomalous
    one. The test part stays whole: every silo is scored on all kinds of behaviour, which is where a
    federation has something to add to a silo that trains alone.

    Validation is the last ``val_fraction`` of the silo's *own* share of the prefix (in time order),
    not the share of the prefix's validation tail: the tail holds only the behaviours that happen to be
    frequent at the end of the prefix, and silos dealt other behaviours got no normal validation
    window at all (two of four on the HDFS sample), so their thresholds fell back to training normals."""
    normal = [w for w in split.train + split.val if w.label == NORMAL]
    counts = Counter(frozenset(w.events) for w in normal)
    ranked = sorted(counts, key=lambda s: (-counts[s], sorted(e or "" for e in s)))
    group = {events: i % n for i, events in enumerate(ranked)}

    def keep(part: list[Window]) -> list[Window]:
        anomalous = [w for w in part if w.label != NORMAL]
        mine = {id(w) for w in anomalous[k::n]}
        return [w for w in part if (group.get(frozenset(w.events)) == k if w.label == NORMAL else id(w) in mine)]

    prefix = keep(split.train + split.val)
    n_val = max(1, int(round(len(prefix) * val_fraction))) if len(prefix) > 1 else 0
    return dataclasses.replace(split, train=prefix[: len(prefix) - n_val], val=prefix[len(prefix) - n_val :])


@dataclass
class PreparedSilo:
    """Split windows of one silo plus the reports a user needs to trust them."""

    fmt: str
    split: Split
    sources: list[str]
    load_report: dict
    parse_report: dict
    state_dir: str
    train_histogram: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the figures rest on (an unlabelled custom silo)

    @property
    def parser_path(self) -> Path:
        return Path(self.state_dir) / "parser.pkl"

    @property
    def templates(self) -> dict[str, str]:
        """The parser's event id -> template map (client-local, for detectors that embed text)."""
        return json.loads((Path(self.state_dir) / "templates.json").read_text())

    def describe(self) -> dict:
        parts = {
            name: {"windows": len(ws), "anomalous": sum(w.label == 1 for w in ws)}
            for name, ws in self.split.parts().items()
        }
        return {
            "format": self.fmt,
            "load": self.load_report,
            "parse": self.parse_report,
            "split": parts | {"unlabeled": self.split.unlabeled, "purged": self.split.purged},
        } | ({"notes": self.notes} if self.notes else {})


def _fingerprint(source: SiloSource, split: SplitSpec, settings: ParserSettings, key: bytes) -> str:
    root = Path(source.path)
    files = sorted(root.rglob("*")) if root.is_dir() else [root]
    stats = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
    key_tag = hmac.new(key, b"fedlog-cache", hashlib.sha256).hexdigest()  # never the key itself
    parts = [asdict(source), asdict(split), repr(settings), stats, key_tag]
    if source.behaviours:  # version 2: validation from the silo's own share (earlier caches split differently)
        parts.append("behaviour-share-v2")
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _build(source: SiloSource, split_spec: SplitSpec, key: bytes, state_dir: Path) -> PreparedSilo:
    silo: SiloLog = load_silo(source.fmt, source.path, custom=source.custom)
    if silo.report.malformed or silo.report.undecodable:
        log.warning("%s: %s", source.path, silo.report.summary())
    records = silo.records[: source.max_lines] if source.max_lines else silo.records
    sources = list(dict.fromkeys(r.source for r in records))
    spec = source.window_spec
    windows = build_windows(records, spec, {s: i for i, s in enumerate(sources)}, silo.session_labels)
    split = chronological_split(windows, split_spec, overlapping=spec.overlapping)
    if source.behaviours:  # behaviours are event sets: parse once to see them, then keep this silo's share
        provisional = EventParser(source.parser_settings, key)
        provisional.mine(records[i].content for i in sorted({r for w in split.train for r in w.rows}))
        ids = provisional.match_all([r.content for r in records])
        fill_events(split.train, ids)
        fill_events(split.val, ids)
        split = behaviour_share(split, *source.behaviours, val_fraction=split_spec.val_fraction)
    train_rows = sorted({row for w in split.train for row in w.rows})
    if not train_rows:
        raise SiloError(f"{source.path}: the training split is empty ({len(windows)} windows)")

    parser = EventParser(source.parser_settings, key)  # mined on this silo's own training lines only
    parser.mine(records[i].content for i in train_rows)
    ids = parser.match_all([r.content for r in records])
    for part in split.parts().values():
        fill_events(part, ids)
    if parser.report.collisions:
        log.warning("%s: %d event-id collisions", source.path, len(parser.report.collisions))

    state_dir.mkdir(parents=True, exist_ok=True)
    parser.save(state_dir / "parser.pkl")
    (state_dir / "templates.json").write_text(json.dumps(parser.templates, indent=1))
    histogram = Counter(e for w in split.train for e in w.events if e is not None)
    return PreparedSilo(
        fmt=source.fmt,
        split=split,
        sources=sources,
        load_report=silo.report.to_dict(),
        parse_report=parser.report.to_dict(),
        state_dir=str(state_dir),
        train_histogram=dict(histogram),
        notes=source.custom.notes() if source.custom else [],
    )


_MEMORY: dict[str, PreparedSilo] = {}


def prepare_silo(
    source: SiloSource,
    split_spec: SplitSpec,
    key: bytes,
    state_dir: Path | None = None,
) -> PreparedSilo:
    """Prepared silo from memory, the client's disk cache, or a fresh parse."""
    settings = source.parser_settings
    digest = _fingerprint(source, split_spec, settings, key)
    if digest in _MEMORY:
        return _MEMORY[digest]
    cache_dir = (state_dir or default_state_dir()) / "silos" / f"{source.fmt}-{digest}"
    cached = cache_dir / "prepared.pkl"
    if cached.exists():
        prepared = pickle.loads(cached.read_bytes())
    else:
        prepared = _build(source, split_spec, key, cache_dir)
        with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as tmp:
            tmp.write(pickle.dumps(prepared))
        os.replace(tmp.name, cached)  # atomic: concurrent clients never see half a file
    _MEMORY[digest] = prepared
    return prepared
