"""Kappa's reprocessing: the whole log into a new view version (``vendlab replay``).

A replay runs the streaming view job, unchanged, with a new job name (``kappa_vN``) and its own
new checkpoint, on Spark's ``availableNow`` trigger: it processes what the log holds, then stops.
The new version is checked against the generator's manifest and, when the validation consumer has
read the whole log, the validation view. The benchmark's replay is this code.

With ``replace`` (``vendlab replay --data-dir DIR --replace``, the rebuild command the data dir's
safety checks name) an exact new version becomes kappa's served view: its rows become job
``kappa`` in one store transaction and its checkpoint becomes ``checkpoints/kappa``, so ``views``,
``answer``, the dashboard and ``run --resume`` go on from it. A data dir that holds lambda's
state gets lambda rebuilt from the log too (master dataset, ingest and speed checkpoints, one
batch run), as ``run --resume`` would have built it without the damage.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from pathlib import Path

from vendlab import datadir
from vendlab.config import Profile
from vendlab.eventlog import list_segments
from vendlab.store import base
from vendlab.world.catalog import Catalog
from vendlab.world.generator import Manifest

VERSION_RE = re.compile(r"^kappa_v(\d+)$")


def _log(msg: str) -> None:
    print(f"vendlab: {msg}", file=sys.stderr, flush=True)


def _wait(q, what: str, log=_log) -> dict:
    """Wait for an availableNow query to finish; rows read and micro-batches by its progress."""
    batches: dict[int, int] = {}
    last = time.monotonic()
    while q.isActive:
        for pr in q.recentProgress:
            batches[pr["batchId"]] = pr["numInputRows"]
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            log(
                f"{what}: running ({sum(batches.values()):,} lines in {len(batches)} finished micro-batches so far) ..."
            )
        time.sleep(0.2)
    for pr in q.recentProgress:
        batches[pr["batchId"]] = pr["numInputRows"]
    if q.exception():
        raise RuntimeError(f"{what} failed: {q.exception()}")
    return {"rows_read": sum(batches.values()), "batches": len(batches)}


def replay_view(spark, profile: Profile, catalog: Catalog, store, job: str, log=_log) -> dict:
    """The whole log into view version ``job`` (a new checkpoint, its old rows dropped)."""
    from vendlab.jobs.streaming import start_view_job

    ckpt = Path(profile.checkpoint(job))
    datadir.remove_tree(ckpt)
    if hasattr(store, "drop_jobs"):
        store.drop_jobs([job])
        qid = str(uuid.uuid4())
        store.bind(job, qid)
        datadir.new_checkpoint(ckpt, qid)
    t0 = time.time()
    q = start_view_job(spark, profile, catalog, job, available_now=True)
    out = _wait(q, f"replay into {job}", log)
    out.update(seconds=round(time.time() - t0, 2), job=job)
    return out


def next_version(profile: Profile, store) -> int:
    """1 + the newest view version of kappa in the data dir (kappa itself is version 1)."""
    names = set(store.jobs()) | {p.name for p in Path(profile.checkpoint_dir).glob("*")}
    versions = [1 for n in names if n == base.KAPPA] + [int(m.group(1)) for n in names if (m := VERSION_RE.match(n))]
    return max(versions, default=0) + 1


def has_lambda(profile: Profile, store) -> bool:
    from vendlab.jobs.ingest import INGEST

    return (
        base.LAMBDA_SPEED in store.jobs()
        or store.current_batch() is not None
        or Path(profile.checkpoint(INGEST)).exists()
        or Path(profile.checkpoint(base.LAMBDA_SPEED)).exists()
        or Path(profile.master_path).exists()
    )


def make_served(profile: Profile, store, job: str) -> None:
    """View version ``job`` becomes kappa's served view (store rows, then the checkpoint)."""
    store.move_job(job, base.KAPPA)
    target, source = Path(profile.checkpoint(base.KAPPA)), Path(profile.checkpoint(job))
    old = target.with_name(f".{base.KAPPA}-replaced-{int(time.time() * 1000)}")
    if target.exists():
        target.rename(old)
    source.rename(target)
    datadir.remove_tree(old)


def rebuild_lambda(spark, profile: Profile, catalog: Catalog, store, log=_log) -> dict:
    """Lambda's state from the log: a new master dataset (ingest), a new speed view, one batch run."""
    from vendlab.architectures.lambda_ import LAMBDA
    from vendlab.jobs.batch import run_batch
    from vendlab.jobs.ingest import INGEST, start_ingest_job
    from vendlab.jobs.streaming import start_view_job

    t0 = time.time()
    for p in (profile.checkpoint(INGEST), profile.checkpoint(base.LAMBDA_SPEED), profile.master_path):
        datadir.remove_tree(Path(p))
    store.drop_jobs([base.LAMBDA_SPEED], batch_views=True)
    datadir.bind_master(profile.data_dir, Path(profile.checkpoint(INGEST)), Path(profile.master_path))
    datadir.bind_stream(
        profile.data_dir, Path(profile.checkpoint(base.LAMBDA_SPEED)), base.LAMBDA_SPEED, store, "lambda's speed job"
    )
    log("rebuilding lambda: ingesting the log into a new master dataset and a new speed view ...")
    ingest = _wait(start_ingest_job(spark, profile, available_now=True), "lambda ingest", log)
    speed = _wait(
        start_view_job(spark, profile, catalog, base.LAMBDA_SPEED, bucket_ms=profile.bucket_ms, available_now=True),
        "lambda speed view",
        log,
    )
    log("rebuilding lambda: one batch run over the new master dataset ...")
    info = run_batch(spark, profile, catalog, store)
    with store.snapshot():
        views = LAMBDA.views(store)
    return {
        "seconds": round(time.time() - t0, 2),
        "ingested": ingest["rows_read"],
        "speed_rows": speed["rows_read"],
        "batch_version": info.version,
        "serving": views["serving"],
    }


def open_or_set_aside(profile: Profile, replace: bool, log=_log):
    """The data dir's view store; with ``replace``, a damaged one is renamed aside (say so) and a
    new one started (the rebuild fills it)."""
    import sqlite3

    from vendlab.config import open_store

    path = profile.sqlite_path
    try:
        store = open_store(profile)
        if path.exists():
            store._con().execute("SELECT count(*) FROM applied").fetchone()
        return store
    except sqlite3.DatabaseError as e:
        if not replace:
            raise datadir.DataDirError(
                f"the view store {path} is damaged ({e}); rebuild it from the log with "
                f"`{datadir.rebuild_command(profile.data_dir)}` (it sets the damaged file aside)"
            ) from None
        aside = path.with_name(f"views.sqlite.damaged-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(path) + suffix)
            if p.exists():
                p.rename(Path(str(aside) + suffix))
        log(f"the view store {path} is damaged ({e}): set aside as {aside.name}; rebuilding a new one")
        return open_store(profile)


def run_replay(profile: Profile, replace: bool = False, log=_log) -> dict:
    """``vendlab replay``: the caller holds the data dir's lock."""
    from vendlab.spark import get_spark

    d = profile.data_dir
    catalog = Catalog.load(profile.catalog_path)
    segs = list_segments(profile.log_dir)
    numbers = {s.number for s in segs}
    manifest = Manifest.recover(profile.manifest_path, lambda n: n in numbers)
    if manifest is None:
        raise datadir.DataDirError(
            f"no manifest.json in {d}: the log's ground truth is missing, so a replay "
            f"cannot be checked; replay a data dir written by `vendlab run` or `generate`"
        )
    store = open_or_set_aside(profile, replace, log)
    lambda_too = replace and has_lambda(profile, store)
    kappa_served = base.KAPPA in store.jobs() or Path(profile.checkpoint(base.KAPPA)).exists()
    version = next_version(profile, store)
    job = f"kappa_v{version}"
    log(
        f"replaying the log of {d} ({len(segs)} segments, {manifest.events:,} events) into view version "
        f"{version} ({job}) ..."
    )
    spark = get_spark(profile, app="vendlab-replay")
    try:
        r = replay_view(spark, profile, catalog, store, job, log)
        products = [p.product for p in catalog.products]
        expected = {k: v for k, v in manifest.items_by_product.items() if v}
        view = {k: v for k, v in store.read_view(job, base.ITEMS_BY_PRODUCT).items() if v}
        validation_done = bool(segs) and store.last_batch_id(base.VALIDATION) == segs[-1].number
        validation = {k: v for k, v in store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT).items() if v}
        out = {
            "events": manifest.events,
            "seconds": r["seconds"],
            "replay_eps": round(manifest.events / r["seconds"], 1) if r["seconds"] else None,
            "exact": False,
            "version": version,
            "job": job,
            "rows_read": r["rows_read"],
            "batches": r["batches"],
            "matches_manifest": view == expected,
            "matches_validation": (view == validation) if validation_done else None,
            "items": sum(view.values()),
            "expected_items": sum(expected.values()),
            "products": len(products),
            "replaced": False,
        }
        out["exact"] = out["matches_manifest"] and out["matches_validation"] is not False
        if replace and out["exact"] and (kappa_served or not lambda_too):
            make_served(profile, store, job)
            out["replaced"] = True
            log(
                f"view version {version} is now kappa's served view (job kappa, checkpoint "
                f"{profile.checkpoint(base.KAPPA)})"
            )
        elif replace and not kappa_served:
            # a data dir of lambda only: the kappa version was the log's check, not a view to keep
            store.drop_jobs([job])
            datadir.remove_tree(Path(profile.checkpoint(job)))
        if lambda_too:
            lam = rebuild_lambda(spark, profile, catalog, store, log)
            serving = {k: v for k, v in lam.pop("serving").items() if v}
            lam["exact"] = serving == expected
            out["lambda"] = lam
            out["exact"] = out["exact"] and lam["exact"]
        return out
    finally:
        spark.stop()
