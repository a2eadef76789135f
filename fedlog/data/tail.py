"""Following a growing log file like ``tail -F``: new complete lines, across rotation and truncation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fedlog.data.loaders import MAX_LINE_BYTES
from fedlog.data.records import LoadReport

CHUNK_BYTES = 64 * 1024
# One poll reads at most this much, so memory per poll is bounded however much was appended; the
# rest waits for the next poll. 100,000 lines per 0.2 s poll is far above any real log's rate.
MAX_POLL_BYTES = 8 * 1024 * 1024
MAX_POLL_LINES = 100_000

Line = tuple[str, int, bytes | None]


@dataclass
class FollowedFile:
    """Reads what was appended since the last poll; a partial last line waits for its newline.

    Memory stays bounded per file: a partial line is kept only up to
    MAX_LINE_BYTES, beyond which its bytes are dropped as they arrive and the
    line is handed on as None (too long, as in batch loading). Rotation (the
    path now names a new file) is noticed by inode; the old file is drained
    first, then the new one is read from its start, and the old file's
    unterminated last line is a line (its writer is gone). Truncation in place
    restarts at the top; a partial line then, or at ``close``, is counted in
    ``report`` as ``unterminated`` (pass the reader's report to count it there).
    Each generation of the file is a separate source (``app.log``,
    ``app.log (rotation 1)``...), so line numbers stay true.
    """

    path: Path
    from_start: bool = True
    report: LoadReport = field(default_factory=LoadReport)
    generation: int = 0
    lineno: int = 0
    _handle: BinaryIO | None = None
    _inode: int = -1
    _partial: bytes = b""
    _overlong: bool = False  # the pending line passed MAX_LINE_BYTES: its bytes are being dropped

    @property
    def source(self) -> str:
        return str(self.path) if self.generation == 0 else f"{self.path} (rotation {self.generation})"

    def _open(self, at_end: bool) -> bool:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return False
        self._handle, self._inode = handle, os.fstat(handle.fileno()).st_ino
        self.report.files.append(self.source)
        if at_end:
            handle.seek(0, os.SEEK_END)
        return True

    def _drain(self) -> tuple[list[Line], bool]:
        """Lines completed by what was appended, up to MAX_POLL_BYTES / MAX_POLL_LINES; True once at the end."""
        assert self._handle is not None
        lines: list[Line] = []
        budget = MAX_POLL_BYTES
        while budget > 0 and len(lines) < MAX_POLL_LINES:
            chunk = self._handle.read(min(CHUNK_BYTES, budget))
            if not chunk:
                return lines, True
            budget -= len(chunk)
            self._take(chunk, lines)
        return lines, False

    def _take(self, chunk: bytes, lines: list[Line]) -> None:
        *complete, rest = chunk.split(b"\n")
        for piece in complete:
            self.lineno += 1
            too_long = self._overlong or len(self._partial) + len(piece) > MAX_LINE_BYTES
            lines.append((self.source, self.lineno, None if too_long else self._partial + piece))
            self._partial, self._overlong = b"", False
        if self._overlong:
            return
        if len(self._partial) + len(rest) > MAX_LINE_BYTES:
            self._partial, self._overlong = b"", True
        else:
            self._partial += rest

    def _pending(self) -> bool:
        return bool(self._partial) or self._overlong

    def _give_up(self, why: str) -> None:
        """Count the pending partial line, if any, as unterminated, and forget it."""
        if self._pending():
            self.lineno += 1
            size = f"over {MAX_LINE_BYTES}" if self._overlong else str(len(self._partial))
            self.report.give_up(self.source, self.lineno, f"no newline after {size} bytes at {why}")
        self._partial, self._overlong = b"", False

    def _next_generation(self) -> list[Line]:
        assert self._handle is not None
        self._handle.close()
        self._handle, self._partial, self._overlong = None, b"", False
        self.generation += 1
        self.lineno = 0
        return self._drain()[0] if self._open(at_end=False) else []

    def poll(self) -> list[Line]:
        """(source, line number, raw bytes without newline, or None for a line longer than MAX_LINE_BYTES)
        for each line completed since the last poll."""
        if self._handle is None and not self._open(at_end=not self.from_start and self.generation == 0):
            return []
        lines, at_end = self._drain()
        if not at_end:
            return lines  # rotation and truncation are checked once caught up
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return lines  # rotated away and not yet recreated: keep the old handle
        if current.st_ino != self._inode:
            if self._pending():  # the writer is gone: its unterminated last line is a line
                self.lineno += 1
                lines.append((self.source, self.lineno, None if self._overlong else self._partial))
            lines += self._next_generation()
        elif current.st_size < self._handle.tell():  # truncated in place (copytruncate)
            self._give_up("truncation")
            lines += self._next_generation()
        return lines

    def close(self) -> None:
        """Stop following; a partial last line is counted as unterminated in ``report``."""
        self._give_up("stop")
        if self._handle is not None:
            self._handle.close()
            self._handle = None
