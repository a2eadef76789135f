"""The ``custom`` format: any line-oriented log, described in the run config the way Loghub describes its datasets.

A user's own logs need no code: ``custom.layout`` splits a line into fields (a Loghub header layout, or a
regex with named groups), ``custom.timestamp`` names the fields that hold the time and how to read them,
``custom.masks`` / ``custom.parser`` shape the Drain templates, ``custom.session`` names what groups lines
into sessions, and ``custom.label-field`` / ``custom.labels`` say where labels are, if anywhere. Everything
is checked when the settings are read, so a typo fails at start, not once per line; a line that does not
fit (no match, a timestamp that does not parse) is a counted malformed line with its file:line.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedlog.data.layout import CONTENT, Layout, LayoutError
from fedlog.data.records import ANOMALY, NORMAL, UNLABELED, LogRecord
from fedlog.parse.drain import FORMAT_SETTINGS, ParserSettings

CUSTOM = "custom"
PREFIX = f"{CUSTOM}."
DRAIN_PARAM = "*"  # a mask named "*" becomes Drain's own <*> (see fedlog.parse.drain)
_MASK_SEPARATOR = re.compile(r"(?<!\\);")  # masks are ";"-separated; "\;" is a ";" inside a regex
_TIMESTAMP = re.compile(r"^\s*((?:[A-Za-z_]\w*\s+)*?[A-Za-z_]\w*)\s*=>\s*(\S.*?)\s*$")

RecordParser = Callable[[str, int, str], LogRecord | None]


class CustomFormatError(ValueError):
    """Custom-format settings that cannot work (not a line that fails to fit them)."""


@dataclass(frozen=True)
class Splitter:
    """A compiled line layout: Loghub's ``<Field>`` syntax or a plain regex with named groups."""

    spec: str
    fields: tuple[str, ...]
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, spec: str) -> Splitter:
        if "(?P<" not in spec:
            try:
                layout = Layout.parse(spec)
            except LayoutError as err:
                raise CustomFormatError(f"custom.layout: {err}") from err
            return cls(spec, layout.fields, layout.regex)
        try:
            regex = re.compile(spec)
        except re.error as err:
            raise CustomFormatError(f"custom.layout {spec!r} is not a valid regex: {err}") from err
        if CONTENT not in regex.groupindex:
            raise CustomFormatError(f"custom.layout {spec!r} has no (?P<{CONTENT}>...) group")
        return cls(spec, tuple(regex.groupindex), regex)

    def split(self, line: str) -> dict[str, str] | None:
        """The line's fields (an absent optional one is ""), or None where the line does not fit."""
        match = self.regex.fullmatch(line.strip())
        return None if match is None else {name: value or "" for name, value in match.groupdict().items()}


@dataclass(frozen=True)
class CustomFormat:
    """The ``custom.*`` run-config keys, validated. Plain strings only: it is part of a silo's cache key.

    ``timestamp`` is ``"FIELD [FIELD...] => STRPTIME"`` (the fields joined by one space, read as UTC
    unless the format has ``%z``); ``masks`` is ``"REGEX => NAME; ..."`` (``*`` for Drain's ``<*>``);
    ``session`` is a layout field or a regex over the content whose first group is the key;
    ``label_field`` is ``"FIELD:NORMAL_VALUE"``; ``labels`` a ``key,label`` CSV of session labels.
    """

    layout: str
    timestamp: str
    masks: str = ""
    parser: str = ""
    session: str = ""
    label_field: str = ""
    labels: str = ""

    def __post_init__(self) -> None:
        fields = self.splitter().fields
        for name in (*self.timestamp_fields, *([self.label_field_name] if self.label_field else [])):
            if name not in fields:
                raise CustomFormatError(f"custom: field {name!r} is not in the layout's fields {', '.join(fields)}")
        if self.parser and self.parser not in FORMAT_SETTINGS:
            raise CustomFormatError(f"custom.parser {self.parser!r}: choose one of {', '.join(FORMAT_SETTINGS)}")
        if self.label_field and self.labels:
            raise CustomFormatError("give custom.label-field (per line) or custom.labels (per session), not both")
        if self.labels and not self.session:
            raise CustomFormatError("custom.labels labels sessions: set custom.session too")
        self.parser_settings()
        self._session_key()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], base_dir: str = "") -> CustomFormat:
        """From flat run-config keys; ``custom.labels`` is relative to ``base_dir`` (``data.dir``) unless absolute."""
        values = {k[len(PREFIX) :].replace("-", "_"): str(v).strip() for k, v in config.items() if k.startswith(PREFIX)}
        if not values.get("layout") or not values.get("timestamp"):
            raise CustomFormatError("a custom silo needs custom.layout and custom.timestamp in the run config")
        if values.get("labels"):
            values["labels"] = str(Path(base_dir, values["labels"]).expanduser().resolve())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CustomFormatError(f"unknown custom setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return cls(**values)

    # -- the parts, compiled -------------------------------------------------------------------

    def splitter(self) -> Splitter:
        return Splitter.parse(self.layout)

    @property
    def timestamp_fields(self) -> tuple[str, ...]:
        return tuple(self._timestamp()[0].split())

    def _timestamp(self) -> tuple[str, str]:
        match = _TIMESTAMP.match(self.timestamp)
        if match is None:
            raise CustomFormatError(
                f"custom.timestamp {self.timestamp!r}: expected 'FIELD [FIELD...] => STRPTIME', "
                "e.g. 'Date Time => %Y-%m-%d %H:%M:%S,%f'"
            )
        return match.group(1), match.group(2)

    @property
    def label_field_name(self) -> str:
        return self.label_field.partition(":")[0].strip()

    @property
    def labelled(self) -> bool:
        """Whether the log says which lines or sessions are anomalous (else it is taken as normal to train)."""
        return bool(self.label_field or self.labels)

    def parser_settings(self) -> ParserSettings:
        """Drain settings: the named Loghub system's (default: Drain's defaults), extra masks applied first."""
        base = FORMAT_SETTINGS[self.parser] if self.parser else ParserSettings()
        extra = []
        for item in _MASK_SEPARATOR.split(self.masks):
            if not item.strip():
                continue
            pattern, sep, name = item.replace(r"\;", ";").rpartition("=>")
            pattern, name = pattern.strip(), name.strip()
            if not sep or not pattern or not (name == DRAIN_PARAM or name.isidentifier()):
                raise CustomFormatError(f"custom.masks entry {item.strip()!r}: expected 'REGEX => NAME' (or '=> *')")
            try:
                re.compile(pattern)
            except re.error as err:
                raise CustomFormatError(f"custom.masks regex {pattern!r}: {err}") from err
            extra.append((pattern, name))
        return dataclasses.replace(base, masking=(*extra, *base.masking))

    def _session_key(self) -> Callable[[dict[str, str]], tuple[str, ...]]:
        """Fields -> the line's session keys (none when it names no session)."""
        if not self.session:
            return lambda fields: ()
        if self.session in self.splitter().fields:
            name = self.session
            return lambda fields: (fields[name],) if fields[name] else ()
        try:
            regex = re.compile(self.session)
        except re.error as err:
            why = f"custom.session {self.session!r} is neither a layout field nor a regex: {err}"
            raise CustomFormatError(why) from err
        if regex.groups < 1:
            raise CustomFormatError(f"custom.session {self.session!r}: the regex needs a group (the session key)")

        def key(fields: dict[str, str]) -> tuple[str, ...]:
            match = regex.search(fields[CONTENT])
            return (match.group(1),) if match and match.group(1) else ()

        return key

    def record_parser(self) -> RecordParser:
        """One line -> one record: None when it does not fit the layout, ValueError for a bad timestamp."""
        splitter, session_key = self.splitter(), self._session_key()
        names, fmt = self.timestamp_fields, self._timestamp()[1]
        label_name, _, normal = self.label_field.partition(":")
        label_name, normal = label_name.strip(), normal.strip()

        def record(source: str, lineno: int, text: str) -> LogRecord | None:
            fields = splitter.split(text)
            if fields is None:
                return None
            stamp = " ".join(fields[n] for n in names)
            try:
                when = datetime.strptime(stamp, fmt)
            except ValueError as err:
                raise ValueError(f"timestamp {stamp[:40]!r} does not fit {fmt!r} ({err})") from None
            epoch = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
            label = UNLABELED
            if label_name:
                label = NORMAL if fields[label_name] == normal else ANOMALY
            return LogRecord(source, lineno, epoch, fields[CONTENT], label, session_key(fields))

        return record

    def expected(self) -> str:
        """What a malformed line failed to be, for the load report."""
        return f"does not fit custom.layout {self.layout!r}"

    def notes(self) -> list[str]:
        """What a user must know when reading the figures of a silo in this format."""
        if self.labelled:
            return []
        return [
            "custom silo without labels (no custom.label-field or custom.labels): every window is taken as "
            "normal, so the model learns the training prefix as normal behaviour and its test figures count "
            "each alert as a false positive (recall and F1 undefined)"
        ]
