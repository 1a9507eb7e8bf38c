"""The data dir's safety (issue 17; docs/reliability.md, "Your data dir"): one writer at a time,
relocatable, checkpoints and store bound together with a rebuild command that is exact, bounded
flags, warnings when a run is not what was asked, and every user-caused error a message with a
next step (exit 2, no traceback). Each test names the numbered point of the issue it covers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import vendlab_env

from vendlab import datadir
from vendlab.cli import main

ROOT = Path(__file__).resolve().parents[1]
VENDLAB = [sys.executable, "-m", "vendlab.cli"]
# The runs pass --no-warmup: what they check is the data dir (lock, resume, relocation), and the warm-up
# (vendlab/warmup.py; tested in test_master_dataset.py and test_cli.py) only costs CPU the suite shares.


def vl(*argv: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        VENDLAB + [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=vendlab_env(), cwd=ROOT
    )


def no_traceback(p: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in p.stderr, p.stderr[-3000:]


def run_json(p: subprocess.CompletedProcess) -> dict:
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)


def assert_exact(doc: dict, view: str) -> None:
    nz = lambda v: {k: n for k, n in v.items() if n}  # noqa: E731
    assert doc["exact"] is True
    assert nz(doc["views"][view]) == nz(doc["views"]["validation"]) == nz(doc["expected"])
    assert sum(doc["expected"].values()) > 0


HOLD_LOCK = """
import sys, time
from pathlib import Path
from vendlab import datadir
datadir.acquire(Path(sys.argv[1]), "vendlab test-holder")
print("held", flush=True)
time.sleep(600)
"""


# -- point 1: one writer at a time ------------------------------------------------------------
def test_a_second_writer_is_refused_at_once_naming_the_holder_and_readers_need_no_lock(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(d)], stdout=subprocess.PIPE, text=True, env=vendlab_env()
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        assert main(["generate", "--data-dir", str(d), "--events", "1000"]) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "vendlab test-holder" in err and "in use" in err
        assert not (d / "log").exists() and not (d / "catalog.json").exists()  # nothing written
        assert main(["run", "--arch", "kappa", "--data-dir", str(d), "--duration", "1"]) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert time.monotonic() - t0 >= 0  # (refused before Spark: no JVM was needed, see the stderr above)
        # a reader needs no lock
        assert main(["views", "--data-dir", str(d)]) == 2  # no views yet: said, not blocked
        assert "no views" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: its lock is stale, taken over, and the new holder says whose it was
    assert main(["generate", "--data-dir", str(d), "--events", "1000"]) == 0
    err = capsys.readouterr().err
    assert f"taking over the lock left by pid {holder.pid}" in err
    assert json.loads((d / "manifest.json").read_text())["events"] == 1000
    assert (d / datadir.LOCK_NAME).read_text() == ""  # released at the end


def test_the_lock_is_reentrant_in_one_process_and_released(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    with datadir.hold(d, "outer"):
        with datadir.hold(d, "inner"):
            assert datadir.is_held_here(d)
        assert datadir.is_held_here(d)
        holder = json.loads((d / datadir.LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["command"] == "outer"
    assert not datadir.is_held_here(d)


@pytest.fixture(scope="module")
def finished_kappa(tmp_path_factory):
    """The issue's two commands of point 1 (shortened), then --resume: D is exact."""
    d = tmp_path_factory.mktemp("lock") / "D"
    first = subprocess.Popen(
        VENDLAB
        + ["run", "--arch", "kappa", "--data-dir", str(d)]
        + ["--duration", "8", "--rate", "2000", "--json", "--no-warmup"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=vendlab_env(),
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while not (d / datadir.LOCK_NAME).exists() or not (d / datadir.LOCK_NAME).read_text():
            assert time.monotonic() < deadline and first.poll() is None, "the first run never took the lock"
            time.sleep(0.1)
        second = vl(
            "run", "--arch", "kappa", "--data-dir", d, "--duration", "8", "--rate", "2000", "--seed", "2", "--json"
        )
        out, err = first.communicate(timeout=900)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"pid {first.pid}" in second.stderr and "starting Spark" not in second.stderr
    no_traceback(second)
    assert first.returncode == 0, err[-3000:]
    assert_exact(json.loads(out), "realtime")
    assert json.loads((d / "manifest.json").read_text())["seed"] == 1  # the first run's, not seed 2's
    resumed = run_json(vl("run", "--arch", "kappa", "--data-dir", d, "--resume", "--json", "--no-warmup"))
    assert_exact(resumed, "realtime")
    return d


@pytest.mark.spark  # a vendlab command in a subprocess runs the jobs
def test_point_1_two_runs_on_one_data_dir_leave_it_exact(finished_kappa):
    names = [p.name for p in (finished_kappa / "log").glob("seg-*.jsonl")]
    numbers = [n.split("-")[1] for n in names]
    assert len(numbers) == len(set(numbers))  # no duplicate segment numbers


# -- point 3: checkpoints and store bound together ---------------------------------------------
@pytest.mark.spark  # a vendlab command in a subprocess runs the jobs
def test_point_3_a_lost_checkpoint_is_refused_and_the_rebuild_command_restores_exact_views(finished_kappa, tmp_path):
    d = tmp_path / "copy"  # a copy: relocatable too (point 2)
    shutil.copytree(finished_kappa, d)
    shutil.rmtree(d / "checkpoints" / "kappa")
    refused = vl("run", "--arch", "kappa", "--data-dir", d, "--resume", "--json")
    assert refused.returncode == 2
    no_traceback(refused)
    assert "checkpoint" in refused.stderr and "missing" in refused.stderr
    assert f"vendlab replay --data-dir {d} --replace" in refused.stderr
    assert "starting Spark" not in refused.stderr

    rebuilt = vl("replay", "--data-dir", d, "--replace", "--json")
    doc = run_json(rebuilt)
    # issue 15's contract of vendlab replay --json
    assert {"events", "seconds", "replay_eps", "exact", "version"} <= set(doc)
    assert doc["exact"] is True and doc["matches_manifest"] is True and doc["matches_validation"] is True
    assert doc["version"] == 2 and doc["replaced"] is True and doc["replay_eps"] > 0
    assert doc["events"] == json.loads((d / "manifest.json").read_text())["events"]
    views = json.loads(vl("views", "--data-dir", d, "--json").stdout)
    manifest = json.loads((d / "manifest.json").read_text())
    assert {k: n for k, n in views["kappa_realtime"].items() if n} == {
        k: n for k, n in manifest["items_by_product"].items() if n
    }
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) == ["kappa"]
    # the rebuilt data dir goes on as any other: resume is exact
    assert_exact(
        run_json(vl("run", "--arch", "kappa", "--data-dir", d, "--resume", "--json", "--no-warmup")), "realtime"
    )


@pytest.mark.spark  # a vendlab command in a subprocess runs the jobs
def test_point_3_a_lost_or_foreign_store_is_refused_with_the_rebuild_command(finished_kappa, tmp_path):
    lost = tmp_path / "lost"
    shutil.copytree(finished_kappa, lost)
    for f in lost.glob("views.sqlite*"):
        f.unlink()
    p = vl("run", "--arch", "kappa", "--data-dir", lost, "--resume")
    assert p.returncode == 2 and "views.sqlite is missing" in p.stderr
    assert f"vendlab replay --data-dir {lost} --replace" in p.stderr
    no_traceback(p)
    assert not (lost / "views.sqlite").exists()  # refused without creating an empty store
    v = vl("views", "--data-dir", lost)
    assert v.returncode == 2 and f"vendlab replay --data-dir {lost} --replace" in v.stderr
    from vendlab.store.sqlite import SqliteStore

    SqliteStore(lost / "views.sqlite").close()  # an empty store (replaced): said too, not "realtime 0"
    v = vl("views", "--data-dir", lost)
    assert v.returncode == 2 and "holds nothing of kappa" in v.stderr
    p = vl("run", "--arch", "kappa", "--data-dir", lost, "--resume")
    assert p.returncode == 2 and "holds nothing of it" in p.stderr
    no_traceback(p)

    foreign = tmp_path / "foreign"
    shutil.copytree(finished_kappa, foreign)

    store = SqliteStore(foreign / "views.sqlite")
    store.bind("kappa", "another-query")
    store.close()
    p = vl("run", "--arch", "kappa", "--data-dir", foreign, "--resume")
    assert p.returncode == 2 and "belongs to another query" in p.stderr
    assert f"vendlab replay --data-dir {foreign} --replace" in p.stderr
    no_traceback(p)


# -- point 2 and 7: a moved data dir resumes exactly; SIGTERM as Ctrl-C with the --resume hint ----
@pytest.mark.spark  # a vendlab command in a subprocess runs the jobs
def test_point_2_a_lambda_run_stopped_by_sigterm_then_moved_resumes_exactly(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    err_path = tmp_path / "a.err"
    with open(err_path, "w") as err:
        # slow and long: still generating when the master dataset first commits, even on a loaded machine,
        # and little for the resume to drain
        p = subprocess.Popen(
            VENDLAB
            + [
                "run",
                "--arch",
                "lambda",
                "--data-dir",
                str(a),
                "--duration",
                "600",
                "--rate",
                "200",
                "--batch-interval",
                "2",
                "--no-warmup",
            ],
            stderr=err,
            text=True,
            env=vendlab_env(),
            cwd=ROOT,
        )
    meta = a / "master" / "_spark_metadata"
    try:
        deadline = time.monotonic() + 300
        # wait until the master dataset has committed files (their absolute paths are in its commit log)
        while not (meta.is_dir() and [f for f in meta.iterdir() if not f.name.startswith(".")]):
            assert p.poll() is None and time.monotonic() < deadline, err_path.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(2)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    rest = err_path.read_text()
    assert p.returncode == 130, rest[-2000:]
    assert "interrupted" in rest and f"vendlab run --arch lambda --data-dir {a} --resume" in rest
    assert list((a / "master" / "_spark_metadata").iterdir())
    a.rename(b)
    doc = run_json(
        vl("run", "--arch", "lambda", "--data-dir", b, "--resume", "--batch-interval", "2", "--json", "--no-warmup")
    )
    assert_exact(doc, "serving")
    assert not any(str(a) + "/" in f.read_text() for f in datadir.path_files(b))


def test_relocate_rewrites_only_paths_under_the_old_dir_and_drops_their_checksums(tmp_path):
    old, new = tmp_path / "x", tmp_path / "y"
    src = new / "checkpoints" / "kappa" / "sources" / "0"
    src.mkdir(parents=True)
    (src / "0").write_text(
        "v1\n"
        + json.dumps({"path": (old / "log" / "seg-1.jsonl").as_uri()})
        + "\n"
        + json.dumps({"path": str(tmp_path / "xy" / "log")})
        + "\n"
    )
    (src / ".0.crc").write_text("stale")
    meta = new / "master" / "_spark_metadata"
    meta.mkdir(parents=True)
    (meta / "0").write_text(json.dumps({"path": "file://" + str(old / "master" / "date=x" / "p.parquet")}))
    (new / datadir.LOCATION_NAME).write_text(str(old) + "\n")
    assert datadir.relocate(new, log=lambda m: None) == 2
    text = (src / "0").read_text()
    assert (new / "log" / "seg-1.jsonl").as_uri() in text and str(tmp_path / "xy" / "log") in text
    assert str(old) + "/" not in text and not (src / ".0.crc").exists()
    assert str(new / "master") in (meta / "0").read_text()
    assert (new / datadir.LOCATION_NAME).read_text().strip() == str(new)
    assert datadir.relocate(new, log=lambda m: None) == 0  # where it was recorded: nothing to do


# -- point 4: bounded flags ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv,needle",
    [
        (["generate", "--data-dir", "x", "--events", "2000", "--rate", "1e-9"], "simulated seconds per event"),
        (["generate", "--data-dir", "x", "--events", "2000", "--time-scale", "1e12"], "must be <= 86400"),
        (["generate", "--data-dir", "x", "--events", "2000", "--time-scale", "1e6"], "must be <= 86400"),
        (["run", "--arch", "kappa", "--data-dir", "x", "--duration", "5", "--rate", "nan"], "not a finite number"),
        (["run", "--arch", "kappa", "--data-dir", "x", "--duration", "nan"], "not a finite number"),
        (["run", "--arch", "kappa", "--data-dir", "x", "--duration", "inf"], "not a finite number"),
        (["run", "--arch", "kappa", "--data-dir", "x", "--duration", "1e9"], "must be <= 86400"),
        (["run", "--arch", "kappa", "--data-dir", "x", "--duration", "5", "--rate", "1e9"], "must be <= 10000000"),
        (
            ["run", "--arch", "kappa", "--data-dir", "x", "--duration", "5", "--rate", "1e7"],
            "simulated seconds per event",
        ),
        (["run", "--arch", "kappa", "--data-dir", "x", "--duration", "5", "--batch-interval", "1e-9"], ">= 0.1"),
        (["run", "--arch", "kappa", "--data-dir", "x", "--duration", "5", "--seed", str(2**40)], "<= 4294967295"),
        (["generate", "--data-dir", "x", "--events", "10", "--segment-lines", "100000000"], "<= 1000000"),
        (["run", "--arch", "kappa", "--data-dir", "", "--duration", "5"], "an empty path"),
        (["generate", "--data-dir", "", "--events", "10"], "an empty path"),
    ],
)
def test_point_4_numeric_flags_are_finite_and_bounded(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert needle in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_point_4_the_help_documents_every_range(capsys):
    for cmd in ("run", "generate"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "10,000,000]" in text and "[1e-05, 60] simulated seconds per event" in text and "86,400]" in text


@pytest.mark.slow
def test_point_4_the_generators_memory_does_not_grow_with_simulated_time(tmp_path):
    """The coarsest allowed time per event (60 simulated s): memory stays that of a chunk."""
    code = (
        "import resource, sys\nfrom vendlab.cli import main\n"
        "rc = main(['generate', '--data-dir', sys.argv[1], '--events', '300000', '--rate', '1', "
        "'--segment-lines', '50000'])\n"
        "print(rc, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "g")],
        capture_output=True,
        text=True,
        timeout=600,
        env=vendlab_env(),
    )
    rc, rss_mb = map(int, p.stdout.split())
    assert rc == 0, p.stderr[-2000:]
    assert rss_mb < 1024, f"{rss_mb} MB"  # the kernel killed the unbounded generator at 24 GB


def test_point_4_the_feeder_takes_bounded_chunks_whatever_the_rate(tmp_path):
    from vendlab.runner import MAX_CHUNK_EVENTS, LogFeeder
    from vendlab.world.catalog import make_catalog
    from vendlab.world.generator import Generator

    gen = Generator(make_catalog(1), 1, 6_000_000, time_scale=100)
    sizes = []
    take = gen.take
    gen.take = lambda n: (sizes.append(n), take(n))[1]

    class Sink:
        def append(self, data, lines, first_ms):
            pass

        def due(self):
            return False

        def close(self):
            pass

    f = LogFeeder(gen, Sink(), 6_000_000, 0.5, None)
    f.run()
    assert f.error is None and sizes and max(sizes) <= MAX_CHUNK_EVENTS


# -- point 5: a run that is not what was asked says so -------------------------------------------
def test_point_5_warnings_for_a_generator_behind_schedule_and_a_workload_without_sales():
    from vendlab.config import embedded
    from vendlab.runner import Runner, RunSettings
    from vendlab.world.generator import Manifest

    r = Runner(embedded("/nonexistent"), ["kappa"], RunSettings(duration=10, rate=1_000_000))
    w = r.warnings(None, Manifest(seed=1, settings={}, events=2_000_000, sales=0))
    assert any("fell behind its schedule" in x and "2,000,000 events" in x for x in w)
    assert any("no valid sales" in x for x in w)
    assert r.warnings(None, Manifest(seed=1, settings={}, events=9_600_000, sales=5)) == []
    r.resume = True  # a resume generates nothing: no schedule to fall behind
    assert r.warnings(None, Manifest(seed=1, settings={}, events=10, sales=5)) == []


def test_point_5_the_exit_code_says_a_run_is_not_what_was_asked(monkeypatch, tmp_path, capfd):
    from vendlab import runner

    doc = {
        "arch": "kappa",
        "exact": True,
        "warnings": ["the generator fell behind its schedule"],
        "generated": {"events": 1, "malformed": 0, "duplicates": 0},
        "expected": {},
        "views": {},
        "latency_ms": {"p50": 1, "p95": 1, "p99": 1},
        "throughput_eps": 1,
        "dead_letters": {},
    }
    monkeypatch.setattr(runner.Runner, "run", lambda self: {"kappa": doc})
    argv = ["run", "--arch", "kappa", "--data-dir", str(tmp_path / "d"), "--duration", "1"]
    assert main(argv + ["--json"]) == 3
    assert json.loads(capfd.readouterr().out)["warnings"]
    assert main(argv) == 3
    assert "WARNING: the generator fell behind its schedule" in capfd.readouterr().out
    doc["warnings"] = []
    assert main(argv) == 0
    doc["exact"] = False
    assert main(argv) == 1


def test_point_5_generate_warns_of_a_log_without_sales(tmp_path, capsys):
    assert (
        main(
            [
                "generate",
                "--data-dir",
                str(tmp_path / "g"),
                "--events",
                "3000",
                "--rate",
                "1000000",
                "--time-scale",
                "10",
            ]
        )
        == 3
    )
    assert "no valid sales" in capsys.readouterr().err


# -- point 6 and 7: errors are messages with a next step ------------------------------------------
@pytest.mark.slow
def test_point_6_damaged_files_and_a_missing_master_are_messages_not_tracebacks(tmp_path, log_factory):
    d = tmp_path / "d"
    log_factory(d, events=2_000)
    (d / "checkpoints").mkdir()
    # a cut manifest.json on --resume: said before Spark starts
    good = (d / "manifest.json").read_text()
    (d / "manifest.json").write_text(good[: len(good) // 2])
    p = vl("run", "--arch", "kappa", "--data-dir", d, "--resume")
    assert p.returncode == 2 and "manifest.json is damaged" in p.stderr and "starting Spark" not in p.stderr
    no_traceback(p)
    # a deleted manifest: the same, before Spark
    (d / "manifest.json").unlink()
    p = vl("run", "--arch", "kappa", "--data-dir", d, "--resume")
    assert p.returncode == 2 and "no manifest.json" in p.stderr and "starting Spark" not in p.stderr
    (d / "manifest.json").write_text(good)
    # a damaged views.sqlite: views, --resume and replay without --replace say how to rebuild
    (d / "views.sqlite").write_bytes(b"this is not a database" * 100)
    for argv in (
        ("views", "--data-dir", d),
        ("answer", "--data-dir", d),
        ("run", "--arch", "kappa", "--data-dir", d, "--resume"),
        ("replay", "--data-dir", d),
    ):
        p = vl(*argv)
        assert p.returncode == 2, (argv, p.stderr[-2000:])
        assert f"vendlab replay --data-dir {d} --replace" in p.stderr, argv
        no_traceback(p)


def test_point_6_a_deleted_master_is_refused_with_the_rebuild_command(tmp_path):
    d = tmp_path / "d"
    ckpt = d / "checkpoints" / "lambda_ingest"
    datadir.new_checkpoint(ckpt, "q1")
    (ckpt / "offsets").mkdir()
    (ckpt / "offsets" / "0").write_text("v1")
    with pytest.raises(datadir.DataDirError) as e:
        datadir.bind_master(d, ckpt, d / "master")
    assert "master dataset" in str(e.value) and f"vendlab replay --data-dir {d} --replace" in str(e.value)


def test_point_6_unwritable_targets_and_a_full_disk_exit_2(tmp_path, capsys, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["generate", "--data-dir", str(f), "--events", "10"]) == 2
    assert "choose a writable --data-dir" in capsys.readouterr().err
    assert main(["generate", "--data-dir", str(f / "sub"), "--events", "10"]) == 2
    assert "--data-dir" in capsys.readouterr().err

    import errno

    from vendlab import eventlog

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "g" / "log"))

    monkeypatch.setattr(eventlog.SegmentWriter, "append", full)
    assert main(["generate", "--data-dir", str(tmp_path / "g"), "--events", "10"]) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "free some space" in err


def test_point_7_resume_on_a_mistyped_path_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    assert main(["run", "--arch", "kappa", "--data-dir", str(missing), "--resume"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not missing.exists()
    assert main(["replay", "--data-dir", str(missing)]) == 2
    assert not missing.exists()
