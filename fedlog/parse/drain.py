"""Drain3 template mining with per-format settings and keyed event ids.

Templates drift while Drain learns, so ids are assigned only after mining the
training split; every later line is ``match``-ed against the frozen tree and an
unmatched line becomes an *unknown* event (counted, never dropped). Masked
contents repeat a lot, so mining and matching run once per distinct masked
string; the cache makes the whole pass several times faster than raw Drain3.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from drain3.drain import Drain
from drain3.masking import LogMasker, MaskingInstruction

from fedlog.parse.hashing import event_id, find_collisions

_IP = r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?(?![\w.])"
_HEX = r"\b0[xX][0-9a-fA-F]+\b"
_NUM = r"(?<![\w.-])[-+]?\d+(?:\.\d+)?(?![\w.])"
_COMMON = ((_IP, "IP"), (_HEX, "HEX"), (_NUM, "NUM"))


@dataclass(frozen=True)
class ParserSettings:
    """Drain3 knobs for one log format (the Loghub benchmark values by default)."""

    sim_th: float = 0.5
    depth: int = 4
    max_children: int = 100
    masking: tuple[tuple[str, str], ...] = _COMMON
    extra_delimiters: tuple[str, ...] = ()


FORMAT_SETTINGS: dict[str, ParserSettings] = {
    "hdfs": ParserSettings(masking=((r"blk_-?\d+", "BLK"), *_COMMON)),
    "bgl": ParserSettings(masking=((r"\bcore\.\d+\b", "CORE"), (r"\b[0-9a-fA-F]{8}\b", "HEX"), *_COMMON)),
    "thunderbird": ParserSettings(masking=((r"\[\d+\]:", "[PID]:"), *_COMMON)),
    "spirit": ParserSettings(masking=((r"\[\d+\]:", "[PID]:"), *_COMMON)),
    "hadoop": ParserSettings(
        masking=(
            (r"\b(?:attempt|task|container|application|job|appattempt)_[\w]+", "ID"),
            *_COMMON,
        )
    ),
}


@dataclass
class ParseReport:
    lines: int = 0
    matched: int = 0
    unknown: int = 0
    distinct_masked: int = 0
    templates: int = 0
    collisions: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Counts only: collision templates stay on the client, so they are not included."""
        return {
            "lines": self.lines,
            "matched": self.matched,
            "unknown": self.unknown,
            "distinct_masked": self.distinct_masked,
            "templates": self.templates,
            "collisions": len(self.collisions),
        }


class EventParser:
    """Mine templates on training lines, then map any line to an event id (or None)."""

    def __init__(self, settings: ParserSettings, key: bytes) -> None:
        self.settings = settings
        self._key = key
        self._masker = LogMasker([MaskingInstruction(p, m) for p, m in settings.masking], "<", ">")
        self._drain = Drain(
            depth=settings.depth,
            sim_th=settings.sim_th,
            max_children=settings.max_children,
            extra_delimiters=list(settings.extra_delimiters),
            param_str="<*>",
        )
        self._cache: dict[str, str | None] = {}
        self.templates: dict[str, str] = {}  # event id -> template; client-local
        self.report = ParseReport()

    def mine(self, contents: Iterable[str]) -> None:
        """Learn templates; each distinct masked content is fed once (sizes do not shape templates)."""
        seen: set[str] = set()
        for content in contents:
            masked = self._masker.mask(content)
            if masked not in seen:
                seen.add(masked)
                self._drain.add_log_message(masked)
        self._freeze()

    def _freeze(self) -> None:
        self._cache.clear()
        final = [c.get_template() for c in self._drain.clusters]
        self.templates = {event_id(self._key, t): t for t in final}
        self.report.templates = len(self.templates)
        self.report.collisions = find_collisions(self._key, final)

    def match(self, content: str) -> str | None:
        masked = self._masker.mask(content)
        try:
            return self._cache[masked]
        except KeyError:
            cluster = self._drain.match(masked, full_search_strategy="fallback")
            eid = None if cluster is None else event_id(self._key, cluster.get_template())
            self._cache[masked] = eid
            return eid

    def match_all(self, contents: Sequence[str]) -> list[str | None]:
        ids = [self.match(c) for c in contents]
        unknown = sum(e is None for e in ids)
        self.report.lines += len(ids)
        self.report.unknown += unknown
        self.report.matched += len(ids) - unknown
        self.report.distinct_masked = len(self._cache)
        return ids

    def save(self, path: Path) -> None:
        """Client-local state (the id -> template map and Drain's tree); never sent anywhere."""
        path.write_bytes(pickle.dumps({"settings": self.settings, "drain": self._drain}))

    @classmethod
    def load(cls, path: Path, key: bytes) -> EventParser:
        state = pickle.loads(path.read_bytes())
        parser = cls(state["settings"], key)
        parser._drain = state["drain"]
        parser._freeze()
        return parser
