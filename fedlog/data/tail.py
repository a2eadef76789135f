"""Following a growing log file like ``tail -F``: new complete lines, across rotation and truncation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO


@dataclass
class FollowedFile:
    """Reads what was appended since the last poll; a partial last line waits for its newline.

    Rotation (the path now names a new file) is noticed by inode; the old file is
    drained first, then the new one is read from its start. Truncation in place
    restarts at the top. Each generation of the file is a separate source
    (``app.log``, ``app.log (rotation 1)``...), so line numbers stay true.
    """

    path: Path
    from_start: bool = True
    generation: int = 0
    lineno: int = 0
    _handle: BinaryIO | None = None
    _inode: int = -1
    _partial: bytes = b""
    _sources: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        return str(self.path) if self.generation == 0 else f"{self.path} (rotation {self.generation})"

    def _open(self, at_end: bool) -> bool:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return False
        self._handle, self._inode = handle, os.fstat(handle.fileno()).st_ino
        if at_end:
            handle.seek(0, os.SEEK_END)
        return True

    def _drain(self) -> list[tuple[str, int, bytes]]:
        assert self._handle is not None
        data = self._partial + self._handle.read()
        *complete, self._partial = data.split(b"\n")
        out = []
        for raw in complete:
            self.lineno += 1
            out.append((self.source, self.lineno, raw))
        return out

    def _next_generation(self) -> None:
        assert self._handle is not None
        self._handle.close()
        self._handle, self._partial = None, b""
        self.generation += 1
        self.lineno = 0

    def poll(self) -> list[tuple[str, int, bytes]]:
        """(source, line number, raw bytes without newline) for each line completed since the last poll."""
        if self._handle is None and not self._open(at_end=not self.from_start and self.generation == 0):
            return []
        lines = self._drain()
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return lines  # rotated away and not yet recreated: keep the old handle
        if current.st_ino != self._inode:
            if self._partial:  # the writer is gone: its unterminated last line is a line
                self.lineno += 1
                lines.append((self.source, self.lineno, self._partial))
            self._next_generation()
            if self._open(at_end=False):
                lines += self._drain()
        elif current.st_size < self._handle.tell():  # truncated in place (copytruncate)
            self._next_generation()
            if self._open(at_end=False):
                lines += self._drain()
        return lines

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
