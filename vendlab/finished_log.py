"""The one writer of finished logs: a data dir holding catalog.json, log/ (segments of JSON lines)
and manifest.json, complete (``vendlab generate``, the owner's scenarios, the bench's logs, the
corpus tests). A live run writes its log with the runner instead (segments by time, a pending
manifest per segment).

Each chunk of at most ``segment_lines`` generated lines becomes one segment. Segments are
written on a second thread while the generator makes the next chunk (a write releases the GIL),
so a log is written about as fast as it is generated.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from vendlab.eventlog import SegmentWriter
from vendlab.world.generator import Generator, Manifest

# mix(data) -> (data, lines): what to write instead of a generated chunk (the corpus tests add
# lines to each); progress(done, total) after each chunk.
Mix = Callable[[bytes], tuple[bytes, int]]
Progress = Callable[[int, int], None]


class FinishedLog:
    """A finished log in ``data_dir``, made by ``gen``; ``write`` appends to it and leaves it
    finished again (all segments written, manifest complete), so a log can grow in steps."""

    def __init__(self, data_dir: Path, gen: Generator, segment_lines: int = 100_000, mix: Mix | None = None):
        if segment_lines < 1:
            raise ValueError(f"segment_lines must be >= 1 (got {segment_lines})")
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.gen = gen
        self.segment_lines = segment_lines
        self.mix = mix
        gen.catalog.save(self.data_dir / "catalog.json")
        self.writer = SegmentWriter(self.data_dir / "log", roll_seconds=1e9, roll_lines=segment_lines, fsync=False)

    @property
    def manifest(self) -> Manifest:
        return self.gen.manifest

    def _append(self, data, lines: int, first_ms: int) -> None:
        self.writer.append(data, lines, first_ms)
        self.writer.roll()

    def write(self, events: int, progress: Progress | None = None) -> Manifest:
        """Append ``events`` generated lines, then save the manifest (complete)."""
        left = events
        pending: Future | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="log-writer") as io:
            while left > 0:
                n = min(left, self.segment_lines)
                c = self.gen.take(n)
                data, lines = self.mix(c.data) if self.mix else (c.parts, c.lines)
                if pending is not None:
                    pending.result()  # one segment in flight: memory stays at two chunks
                pending = io.submit(self._append, data, lines, c.first_ms)
                left -= n
                if progress is not None:
                    progress(events - left, events)
            if pending is not None:
                pending.result()
        m = self.gen.manifest
        m.complete = True
        m.segments = self.writer.next_number
        m.save(self.data_dir / "manifest.json")
        return m


def write_log(
    data_dir: Path,
    gen: Generator,
    events: int,
    segment_lines: int = 100_000,
    mix: Mix | None = None,
    progress: Progress | None = None,
) -> FinishedLog:
    """A new finished log of ``events`` lines of ``gen`` in ``data_dir``."""
    log = FinishedLog(data_dir, gen, segment_lines, mix)
    log.write(events, progress)
    return log
