"""The physical reference: DuckDB computes the central view (items per product over valid,
unique sales) straight from the log's JSON-lines files, on the same cores.

It is what one well-built vectorised engine does with the same bytes, so each pipeline's
throughput is reported as a ratio to it. The result is checked against the generator's
manifest (a reference that is not exact would prove nothing).
"""

from __future__ import annotations

import time
from pathlib import Path

from vendlab import schema
from vendlab.world.catalog import Catalog
from vendlab.world.generator import Manifest

COLUMNS = {
    "event_id": "VARCHAR",
    "type": "VARCHAR",
    "machine_id": "VARCHAR",
    "place": "VARCHAR",
    "product": "VARCHAR",
    "category": "VARCHAR",
    "quantity": "BIGINT",
    "unit_price": "DOUBLE",
    "customer_id": "VARCHAR",
    "event_time": "VARCHAR",
}


def _list(values) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


def central_view_sql(log_glob: str, catalog: Catalog) -> str:
    cols = ", ".join(f"{k}: '{v}'" for k, v in COLUMNS.items())
    return f"""
        WITH ev AS (
          SELECT * FROM read_json('{log_glob}', format = 'newline_delimited', ignore_errors = true,
                                  maximum_object_size = {schema.MAX_LINE_CHARS * 4}, columns = {{{cols}}})
        ), valid AS (
          SELECT event_id, product, quantity FROM ev
          WHERE type = 'sale' AND event_id IS NOT NULL AND place IS NOT NULL AND customer_id IS NOT NULL
            AND machine_id IN ({_list(catalog.machine_ids)}) AND product IN ({_list(catalog.product_names)})
            AND category IN ({_list(schema.CATEGORIES)})
            AND quantity BETWEEN 1 AND {getattr(schema, "MAX_SALE_QUANTITY", 2**31 - 1)}
            AND unit_price > 0 AND unit_price <= {getattr(schema, "MAX_UNIT_PRICE", 1e300)}
            AND regexp_full_match(event_time, '{schema.TIME_REGEX.strip("^$")}')
        )
        SELECT product, sum(quantity)::BIGINT AS items
        FROM (SELECT DISTINCT ON (event_id) event_id, product, quantity FROM valid)
        GROUP BY product ORDER BY product
    """


def run_reference(data_dir: Path, threads: int = 2, memory: str = "4GB") -> dict:
    import duckdb

    data_dir = Path(data_dir)
    m = Manifest.load(data_dir / "manifest.json")
    catalog = Catalog.load(data_dir / "catalog.json")
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute(f"SET memory_limit = '{memory}'")
    sql = central_view_sql(str(data_dir / "log" / "seg-*.jsonl"), catalog)
    best = None
    view = {}
    for _ in range(2):  # the second run reads from the page cache, as the pipelines do
        t0 = time.perf_counter()
        view = {p: int(n) for p, n in con.execute(sql).fetchall()}
        s = time.perf_counter() - t0
        best = s if best is None else min(best, s)
    con.close()
    expected = {k: v for k, v in m.items_by_product.items() if v}
    return {
        "events": m.events,
        "seconds": round(best, 3),
        "duckdb_eps": round(m.events / best, 1),
        "threads": threads,
        "exact": view == expected,
        "duckdb_version": duckdb.__version__,
    }
