"""The one writer of finished logs (vendlab.finished_log) and the generator's text: the same bytes
for a seed however many threads make them, and the same bytes as before the text was made from
pieces."""

import hashlib
from pathlib import Path

import orjson
import pytest

from vendlab.cli import main
from vendlab.eventlog import list_segments
from vendlab.finished_log import FinishedLog, write_log
from vendlab.world import generator
from vendlab.world.catalog import Catalog, make_catalog
from vendlab.world.generator import Generator, Manifest

# sha256 of the first 30,000 lines, as the generator of commit 3e08a4f wrote them (each event
# formatted by Arrow string kernels): the pieces-of-text generator must give the very same stream.
# A deliberate change of the stream changes these (and the samples: scripts/samples.py).
STREAMS = [
    (
        dict(seed=5, machines=20, rate=20_000, time_scale=60.0, bad_rate=0.01, dup_rate=0.01),
        "b8c8a1a1b8c66ec62f4a382ba71d5e8e77902047116bf367a3306fcff7922ea4",
    ),
    (
        dict(seed=3, machines=7, rate=1_000, time_scale=3_600.0, bad_rate=0.05, dup_rate=0.05),
        "a195fd3161530c844a7da2ec753cb3df0caf7019f02b132df673f9ca405bdec5",
    ),
]


def _gen(seed, machines, **kw) -> Generator:
    return Generator(make_catalog(seed, machines=machines), seed, **kw)


@pytest.mark.parametrize("settings,digest", STREAMS)
def test_the_stream_of_a_seed_is_unchanged(settings, digest):
    assert hashlib.sha256(_gen(**settings).take(30_000).data).hexdigest() == digest


def test_same_bytes_whatever_the_number_of_text_threads(monkeypatching_pool):
    settings = STREAMS[0][0]
    texts = []
    for threads in (1, 3):
        monkeypatching_pool(threads)
        g = _gen(**settings)
        texts.append(b"".join(g.take(n).data for n in (1, 4095, 4097, 20_000)))
    assert texts[0] == texts[1]


@pytest.fixture
def monkeypatching_pool(monkeypatch):
    def use(threads: int) -> None:
        monkeypatch.setattr(generator, "TEXT_THREADS", threads)
        monkeypatch.setattr(generator, "_POOL", [])

    yield use


def test_numbers_and_temperatures_beyond_the_tables_are_formatted(monkeypatch):
    settings = STREAMS[0][0]
    want = _gen(**settings).take(20_000).data
    monkeypatch.setattr(generator, "NUM_TABLE", 2)  # every stock count >= 2,000 formatted by Arrow
    monkeypatch.setattr(generator, "TEMP_TABLE", 450)  # every temperature >= 4.5 degrees likewise
    assert _gen(**settings).take(20_000).data == want


def test_a_finished_log_is_the_stream_with_a_complete_manifest(tmp_path):
    settings = dict(seed=2, machines=5, rate=5_000, time_scale=60.0, bad_rate=0.01, dup_rate=0.02)
    seen = []
    log = write_log(
        tmp_path,
        _gen(**settings),
        25_000,
        segment_lines=10_000,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(10_000, 25_000), (20_000, 25_000), (25_000, 25_000)]
    segs = list_segments(tmp_path / "log")
    assert [s.number for s in segs] == [0, 1, 2]
    m = Manifest.load(tmp_path / "manifest.json")
    assert m.complete and m.segments == 3 and m.events == 25_000 == log.manifest.events
    assert Catalog.load(tmp_path / "catalog.json").machines == log.gen.catalog.machines
    text = b"".join(Path(s.path).read_bytes() for s in segs)
    assert text == _gen(**settings).take(25_000).data
    assert [len(Path(s.path).read_bytes().splitlines()) for s in segs] == [10_000, 10_000, 5_000]


def test_a_finished_log_grows_in_steps_and_stays_finished(tmp_path):
    settings = dict(seed=4, machines=5, rate=20_000, time_scale=60.0, bad_rate=0.0, dup_rate=0.01)
    flog = FinishedLog(tmp_path, _gen(**settings), segment_lines=4_000)
    flog.write(6_000)
    assert Manifest.load(tmp_path / "manifest.json").segments == 2
    flog.write(3_000)
    m = Manifest.load(tmp_path / "manifest.json")
    assert (m.complete, m.segments, m.events) == (True, 3, 9_000)
    text = b"".join(Path(s.path).read_bytes() for s in list_segments(tmp_path / "log"))
    assert text == _gen(**settings).take(9_000).data


def test_mix_replaces_each_chunk(tmp_path):
    calls = []

    def mix(data: bytes) -> tuple[bytes, int]:
        calls.append(data.count(b"\n"))
        return data + b'{"extra":1}\n', data.count(b"\n") + 1

    write_log(tmp_path, _gen(seed=1, machines=3, rate=20_000), 5_000, segment_lines=2_000, mix=mix)
    assert calls == [2_000, 2_000, 1_000]
    segs = list_segments(tmp_path / "log")
    assert [Path(s.path).read_bytes().count(b'{"extra":1}\n') for s in segs] == [1, 1, 1]


def test_generate_writes_a_finished_log_with_its_segments(tmp_path, capsys):
    d = tmp_path / "d"
    assert main(["generate", "--data-dir", str(d), "--events", "2500", "--segment-lines", "1000", "--seed", "7"]) == 0
    m = Manifest.load(d / "manifest.json")
    assert (m.complete, m.segments, m.events) == (True, 3, 2_500)
    assert "events/s" in capsys.readouterr().err
    text = b"".join(Path(s.path).read_bytes() for s in list_segments(d / "log"))
    assert text == Generator(make_catalog(7), 7, 20_000).take(2_500).data


def test_the_warm_up_log_is_a_finished_log_with_a_marker_closing_each_segment(tmp_path):
    from vendlab.warmup import write_warmup_log

    cat = make_catalog(2, machines=4)
    write_warmup_log(tmp_path, cat, 2_500, segment_lines=1_000)
    m = Manifest.load(tmp_path / "manifest.json")
    assert (m.complete, m.segments, m.events) == (True, 3, 2_500)
    segs = [Path(s.path).read_bytes().splitlines() for s in list_segments(tmp_path / "log")]
    assert [len(s) for s in segs] == [1_001, 1_001, 501]
    assert [orjson.loads(s[-1])["event_id"] for s in segs] == ["warmup-1", "warmup-2", "warmup-3"]
    assert not any(b'"marker"' in line for s in segs for line in s[:-1])
