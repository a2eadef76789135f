"""What a loader hands to the parser: log records plus an account of every input line."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

NORMAL, ANOMALY, UNLABELED = 0, 1, -1
MAX_REPORTED_ISSUES = 20
MAX_EXAMPLES = 5


@dataclass(slots=True)
class LogRecord:
    """One log message; ``source``/``lineno`` point back at the raw line for localisation.

    ``masked`` is the content as the parser masks it, when a chunked batch read computed it
    (:mod:`fedlog.data.chunks`, in worker processes); None: the parser masks ``content`` itself.
    """

    source: str
    lineno: int
    timestamp: float
    content: str
    label: int = UNLABELED
    sessions: tuple[str, ...] = ()
    masked: str | None = None


@dataclass
class LineIssue:
    source: str
    lineno: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.lineno}: {self.reason}"


# Every physical log line lands in exactly one of these (``LoadReport.accounted``).
PARTITION = ("records", "continuation", "blank", "malformed", "undecodable", "unterminated")
# Other counts, summed by ``merge``: subsets of the partition and label-file rows.
EXTRA_COUNTS = ("too_long", "no_session", "unlabeled_sessions", "label_rows", "label_skipped")


@dataclass
class LoadReport:
    """Every physical line ends up in exactly one partition counter, so nothing is lost silently.

    ``too_long`` (a subset of ``malformed``) and ``no_session`` (a subset of ``records``: lines that
    name no session key, so session windows never see them) are named because they hide evidence
    differently from plain garbage. Label-file rows are counted apart from log lines; a bad label row
    is skipped and reported in ``label_issues``, so one bad row cannot fail a client every round.
    """

    files: list[str] = field(default_factory=list)
    lines_read: int = 0
    records: int = 0
    continuation: int = 0
    blank: int = 0
    malformed: int = 0
    undecodable: int = 0
    unterminated: int = 0
    too_long: int = 0
    no_session: int = 0
    unlabeled_sessions: int = 0
    label_rows: int = 0
    label_skipped: int = 0
    issues: list[LineIssue] = field(default_factory=list)
    label_issues: list[LineIssue] = field(default_factory=list)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, source: str, lineno: int, reason: str, *, undecodable: bool = False) -> None:
        if undecodable:
            self.undecodable += 1
        else:
            self.malformed += 1
        self._issue(self.issues, source, lineno, reason)

    def give_up(self, source: str, lineno: int, reason: str) -> None:
        """A line a follower stopped waiting for (no newline at truncation or at stop): read, never parsed."""
        self.lines_read += 1
        self.unterminated += 1
        self._issue(self.issues, source, lineno, reason)

    def skip_label(self, source: str, lineno: int, reason: str) -> None:
        self.label_skipped += 1
        self._issue(self.label_issues, source, lineno, reason)

    def note(self, kind: str, source: str, lineno: int) -> None:
        """Keep a few file:line examples of a named count (``no_session``, ``continuation``...)."""
        seen = self.examples.setdefault(kind, [])
        if len(seen) < MAX_EXAMPLES:
            seen.append(f"{source}:{lineno}")

    @staticmethod
    def _issue(issues: list[LineIssue], source: str, lineno: int, reason: str) -> None:
        if len(issues) < MAX_REPORTED_ISSUES:
            issues.append(LineIssue(source, lineno, reason))

    @property
    def accounted(self) -> int:
        return sum(getattr(self, name) for name in PARTITION)

    def merge(self, other: LoadReport) -> None:
        """Add another report's counts, files, issues and examples (within their caps)."""
        self.files += other.files
        self.lines_read += other.lines_read
        for name in PARTITION + EXTRA_COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.issues += other.issues[: max(0, MAX_REPORTED_ISSUES - len(self.issues))]
        self.label_issues += other.label_issues[: max(0, MAX_REPORTED_ISSUES - len(self.label_issues))]
        for kind, where in other.examples.items():
            seen = self.examples.setdefault(kind, [])
            seen += where[: max(0, MAX_EXAMPLES - len(seen))]

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["issues"] = [str(i) for i in self.issues]
        out["label_issues"] = [str(i) for i in self.label_issues]
        out["examples"] = {kind: list(where) for kind, where in self.examples.items()}
        return out

    def summary(self) -> str:
        text = f"{self.lines_read} lines from {len(self.files)} file(s), {self.accounted} accounted for: " + ", ".join(
            f"{getattr(self, name)} {name}" for name in PARTITION
        )
        if self.too_long or self.no_session:
            text += f" ({self.too_long} too long, {self.no_session} records with no session)"
        if self.label_skipped:
            text += f"; {self.label_skipped} of {self.label_rows} label rows skipped"
        problems = self.issues[:5] + self.label_issues[:5]
        if problems:
            text += "; first problems: " + "; ".join(str(i) for i in problems)
        return text


@dataclass
class SiloLog:
    """A loaded silo: records in file order, session labels where the format has them."""

    fmt: str
    records: list[LogRecord]
    report: LoadReport
    session_labels: dict[str, int] | None = None
