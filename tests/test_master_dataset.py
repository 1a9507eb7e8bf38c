"""Lambda's master dataset keeps the raw line and the parsed columns (vendlab.jobs.ingest): a batch
run reads the columns its contract version wrote and parses every other row again from the raw
line, with the same view either way; and the warm-up leaves nothing behind."""

from __future__ import annotations

import pytest

from vendlab.config import embedded
from vendlab.jobs import batch, parse
from vendlab.jobs.ingest import PARSED_BY, start_ingest_job
from vendlab.world.scenario import write_scenario

pytestmark = pytest.mark.spark


def _ingest(spark, profile, catalog):
    q = start_ingest_job(spark, profile, available_now=True, catalog=catalog)
    q.awaitTermination()
    assert q.exception() is None


def test_batch_view_is_the_same_from_parsed_columns_raw_lines_or_another_contract_version(spark, tmp_path, monkeypatch):
    catalog, manifest = write_scenario(
        tmp_path, seed=12, events=6_000, bad_rate=0.02, dup_rate=0.03, segment_lines=2_000
    )
    raw = embedded(tmp_path).with_(master_path=str(tmp_path / "master-raw"), checkpoint_dir=str(tmp_path / "ck-raw"))
    parsed = embedded(tmp_path)
    _ingest(spark, raw, None)  # the raw envelope only, as an older version wrote it
    _ingest(spark, parsed, catalog)

    machines, products = sorted(catalog.machine_ids), sorted(catalog.product_names)
    stored = spark.read.parquet(parsed.master_path)
    assert {r[0] for r in stored.select(PARSED_BY).distinct().collect()} == {parse.contract_version(machines, products)}
    assert stored.filter("kind = 'dead'").count() == manifest.malformed
    assert stored.count() == manifest.events  # every line, duplicates and malformed ones included

    from_columns = batch.compute_batch_view(spark, parsed, catalog)
    from_raw = batch.compute_batch_view(spark, raw, catalog)
    # another version of the contract (a fix): every stored row is parsed again from its raw line
    monkeypatch.setattr(parse, "contract_version", lambda m, p: "another-version")
    reparsed = batch.compute_batch_view(spark, parsed, catalog)
    assert from_columns[1] > 0 and from_columns[2] == manifest.events
    items = {k: v for view, k, v in from_columns[0] if view == "items_by_product"}
    assert sum(items.values()) > 0.5 * sum(manifest.items_by_product.values())  # the cutoff covers most of it
    assert sorted(from_columns[0]) == sorted(from_raw[0]) == sorted(reparsed[0])
    assert from_columns[1:] == from_raw[1:] == reparsed[1:]


def test_warm_up_runs_every_job_in_a_scratch_folder_it_removes(spark, tmp_path):
    from vendlab.warmup import warm_up
    from vendlab.world.catalog import make_catalog

    r = warm_up(spark, make_catalog(3), ["kappa", "lambda"], events=3_000, scratch_root=tmp_path)
    assert r["jobs"] == ["warmup_kappa_view", "warmup_lambda_speed", "warmup_lambda_ingest", "warmup_lambda_batch"]
    assert r["seconds"] > 0
    assert list(tmp_path.iterdir()) == []
    assert not any(q.isActive for q in spark.streams.active)
