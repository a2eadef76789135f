"""User-defined header layouts (the parser side of the ``custom`` format).

A layout names the header fields of a line the way Loghub's benchmark does, e.g.
``<Date> <Time> <Pid> <Level> <Component>: <Content>``: a run of spaces matches any run of
whitespace, and the text between fields is a regex fragment (so ``\\[``, ``\\|`` and optional parts
such as ``(\\[<PID>\\])?`` work as in Loghub's published layouts). Only ``<Content>`` reaches the
template miner; the other fields are for the loader (timestamps, sessions, labels).

Unlike Loghub, whose every field is a lazy ``.*?``, a header field (not the content) ends at the
first place where the text that must follow it matches: a field followed by spaces holds no
whitespace, ``<Node>:`` holds no ``:``, ``<Program> - `` holds no " - " (but may hold "chrome.exe
*64"); and it holds at most ``MAX_FIELD`` characters. Loghub's lazy fields backtrack over every split
of a line that does not match: 8 s for a malformed 450-character Zookeeper line, over 4 minutes for
a 900-character one. Ours reject a 20,000-character line in milliseconds, and
split every line of the loghub-2k samples as Loghub's structured CSVs do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTENT = "Content"
MAX_FIELD = 256  # characters in a header field (not the content): longer, the line is malformed
_FIELD = re.compile(r"<([^<>]+)>")
_SPACES = r"\s++"  # a run of spaces in a layout: any whitespace, without backtracking into it

# The log_format of each system in Loghub's parsing benchmark (logpai/logparser, benchmark settings),
# as data/README.md lists them; each splits its loghub-2k sample exactly as the structured CSV does.
LOGHUB_LAYOUTS: dict[str, str] = {
    "HDFS": r"<Date> <Time> <Pid> <Level> <Component>: <Content>",
    "Hadoop": r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
    "Spark": r"<Date> <Time> <Level> <Component>: <Content>",
    "Zookeeper": r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
    "OpenStack": r"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>",
    "HPC": r"<LogId> <Node> <Component> <State> <Time> <Flag> <Content>",
    "Thunderbird": r"<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> "
    r"<Component>(\[<PID>\])?: <Content>",
    "Windows": r"<Date> <Time>, <Level>                  <Component>    <Content>",
    "Linux": r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
    "Android": r"<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>",
    "HealthApp": r"<Time>\|<Component>\|<Pid>\|<Content>",
    "Apache": r"\[<Time>\] \[<Level>\] <Content>",
    "Proxifier": r"\[<Time>\] <Program> - <Content>",
    "OpenSSH": r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>",
    "Mac": r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>",
}


class LayoutError(ValueError):
    """The layout itself is unusable (not a line that fails to match it)."""


@dataclass(frozen=True)
class Layout:
    """A header layout compiled once into a regex with one named group per field."""

    spec: str
    fields: tuple[str, ...]
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, spec: str) -> Layout:
        """Compile ``spec``; raise ``LayoutError`` on a bad layout, so a typo fails at start, not per line."""
        parts = _FIELD.split(spec)  # literal, field, literal, field, ..., literal
        fields = tuple(parts[1::2])
        if CONTENT not in fields:
            raise LayoutError(f"layout {spec!r} has no <{CONTENT}> field")
        for name in fields:
            if not name.isidentifier():
                raise LayoutError(f"layout {spec!r}: field <{name}> is not a name (letters, digits, _)")
        if len(set(fields)) != len(fields):
            raise LayoutError(f"layout {spec!r} names a field twice")
        literals = [re.sub(" +", lambda _: _SPACES, part) for part in parts[::2]]
        pattern = literals[0] + "".join(
            f"(?P<{name}>{_field_pattern(name, after)}){after}"
            for name, after in zip(fields, literals[1:], strict=True)
        )
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise LayoutError(f"layout {spec!r} is not a valid pattern: {exc}") from exc
        return cls(spec, fields, regex)

    def split(self, line: str) -> dict[str, str] | None:
        """The line's fields by name (an absent optional field is ""), or None where it is malformed.

        Surrounding whitespace (a CRLF's \\r included) is stripped first, as Loghub does.
        """
        match = self.regex.fullmatch(line.strip())
        if match is None:
            return None
        return {name: value or "" for name, value in match.groupdict().items()}


def _field_pattern(name: str, after: str) -> str:
    """What a field may hold, given the fragment that follows it (see the module docstring)."""
    if name == CONTENT:
        return ".*" if not after else ".*?"  # greedy up to the end: a try costs no scan
    stop = _mandatory_prefix(after)
    if stop:  # up to the first place the fragment matches, and no further
        return f"(?:(?!{stop}).){{0,{MAX_FIELD}}}"
    return f".{{0,{MAX_FIELD}}}?"


def _mandatory_prefix(fragment: str) -> str:
    """The fragment up to its first group boundary: text that must follow the field ("" if none can be told).

    In ``<Component>(\\[<PID>\\])?: `` the PID is followed by ``\\])?: ``, of which ``\\]`` is certain;
    the Component by ``(\\[``, of which nothing is.
    """
    i = 0
    while i < len(fragment) and fragment[i] not in "()":
        i += 2 if fragment[i] == "\\" else 1
    prefix = fragment[:i]
    try:
        return prefix if re.compile(prefix).fullmatch("") is None else ""
    except re.error:
        return ""
