"""What a loader hands to the parser: log records plus an account of every input line."""

from __future__ import annotations

from dataclasses import dataclass, field

NORMAL, ANOMALY, UNLABELED = 0, 1, -1
MAX_REPORTED_ISSUES = 20


@dataclass(slots=True)
class LogRecord:
    """One log message; ``source``/``lineno`` point back at the raw line for localisation."""

    source: str
    lineno: int
    timestamp: float
    content: str
    label: int = UNLABELED
    sessions: tuple[str, ...] = ()


@dataclass
class LineIssue:
    source: str
    lineno: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.lineno}: {self.reason}"


@dataclass
class LoadReport:
    """Every physical line ends up in exactly one counter, so nothing is lost silently."""

    files: list[str] = field(default_factory=list)
    lines_read: int = 0
    records: int = 0
    continuation: int = 0
    blank: int = 0
    malformed: int = 0
    undecodable: int = 0
    unlabeled_sessions: int = 0
    issues: list[LineIssue] = field(default_factory=list)

    def skip(self, source: str, lineno: int, reason: str, *, undecodable: bool = False) -> None:
        if undecodable:
            self.undecodable += 1
        else:
            self.malformed += 1
        if len(self.issues) < MAX_REPORTED_ISSUES:
            self.issues.append(LineIssue(source, lineno, reason))

    @property
    def accounted(self) -> int:
        return self.records + self.continuation + self.blank + self.malformed + self.undecodable

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "lines_read": self.lines_read,
            "records": self.records,
            "continuation": self.continuation,
            "blank": self.blank,
            "malformed": self.malformed,
            "undecodable": self.undecodable,
            "unlabeled_sessions": self.unlabeled_sessions,
            "issues": [str(i) for i in self.issues],
        }

    def summary(self) -> str:
        text = (
            f"{self.lines_read} lines from {len(self.files)} file(s): {self.records} records, "
            f"{self.continuation} continuation, {self.blank} blank, {self.malformed} malformed, "
            f"{self.undecodable} undecodable"
        )
        if self.issues:
            text += "; first problems: " + "; ".join(str(i) for i in self.issues[:5])
        return text


@dataclass
class SiloLog:
    """A loaded silo: records in file order, session labels where the format has them."""

    fmt: str
    records: list[LogRecord]
    report: LoadReport
    session_labels: dict[str, int] | None = None
