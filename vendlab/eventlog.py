"""The embedded log: a folder of immutable, numbered JSON-lines segment files.

A segment is written under a hidden temporary name (``.seg-....tmp``, which Spark's file
source and every reader here ignore) and renamed into place when it is complete, so no
reader ever sees half a segment. The name carries the segment number and the simulated
time of its first line (never earlier than the previous segment's), the embedded counterpart of
a Kafka record's timestamp:

    DIR/log/seg-000000000042-1767592800123.jsonl

An event's position in the log is (segment number, line number). The Kafka profile uses
(partition, offset) instead; see ``vendlab.kafka_log``.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

SEGMENT_RE = re.compile(r"^seg-(\d{12})-(\d+)\.jsonl$")
SEGMENT_GLOB = "seg-*.jsonl"


@dataclass(frozen=True)
class Segment:
    number: int
    first_ms: int
    path: Path


def segment_name(number: int, first_ms: int) -> str:
    return f"seg-{number:012d}-{first_ms}.jsonl"


def list_segments(log_dir: Path, after: int = -1) -> list[Segment]:
    """Complete segments with a number greater than ``after``, in order."""
    out = []
    try:
        names = os.listdir(log_dir)
    except FileNotFoundError:
        return []
    for name in names:
        m = SEGMENT_RE.match(name)
        if m and int(m.group(1)) > after:
            out.append(Segment(int(m.group(1)), int(m.group(2)), log_dir / name))
    out.sort(key=lambda s: s.number)
    return out


class SegmentWriter:
    """Appends lines to the current segment and rolls it by size or age.

    Lines are buffered in memory; ``roll()`` writes the buffer to a temporary file, fsyncs it
    and renames it into place (atomic on POSIX), so a crash leaves either the whole segment or
    nothing. Resumes numbering after the last complete segment found in the folder and removes
    temporary files a crashed writer left behind.
    """

    def __init__(
        self, log_dir: Path, roll_seconds: float = 0.5, roll_lines: int = 200_000, fsync: bool = True, on_roll=None
    ):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.log_dir.glob(".seg-*.tmp"):
            stale.unlink()
        existing = list_segments(self.log_dir)
        self.next_number = existing[-1].number + 1 if existing else 0
        # Log time never goes back: a segment is stamped no earlier than the one before it. A
        # reader's watermark on log time drops rows stamped behind it as late data (the end
        # marker that a resumed run appends was stamped with a fresh generator's start time).
        self._last_ms = existing[-1].first_ms if existing else None
        self.roll_seconds = roll_seconds
        self.roll_lines = roll_lines
        self.fsync = fsync
        self._buf: list[bytes] = []
        self._lines = 0
        self._first_ms: int | None = None
        self._opened = 0.0
        self.segments_written = 0
        self.lines_written = 0
        # Called as on_roll(phase, segment_number) with phase "prepare" just before the rename
        # and "commit" just after: the generator keeps its manifest consistent with the log.
        self.on_roll = on_roll

    def append(self, data: bytes | list, lines: int, first_ms: int) -> None:
        """Buffer ``lines`` lines: ``data`` is their bytes, or a list of buffers to write in order."""
        if not lines:
            return
        if self._first_ms is None:
            self._first_ms = first_ms
            self._opened = time.monotonic()
        if isinstance(data, list):
            self._buf.extend(data)
        else:
            self._buf.append(data)
        self._lines += lines
        if self._lines >= self.roll_lines or time.monotonic() - self._opened >= self.roll_seconds:
            self.roll()

    def due(self) -> bool:
        return self._first_ms is not None and time.monotonic() - self._opened >= self.roll_seconds

    def roll(self) -> Segment | None:
        if not self._lines:
            return None
        stamp = self._first_ms if self._last_ms is None else max(self._first_ms, self._last_ms)
        name = segment_name(self.next_number, stamp)
        tmp = self.log_dir / f".{name}.tmp"
        with open(tmp, "wb") as f:
            for part in self._buf:
                f.write(part)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        final = self.log_dir / name
        if self.on_roll:
            self.on_roll("prepare", self.next_number)
        os.replace(tmp, final)
        if self.on_roll:
            self.on_roll("commit", self.next_number)
        seg = Segment(self.next_number, stamp, final)
        self._last_ms = stamp
        self.next_number += 1
        self.segments_written += 1
        self.lines_written += self._lines
        self._buf, self._lines, self._first_ms = [], 0, None
        return seg

    def close(self) -> None:
        self.roll()
