"""A fixed master dataset for measuring lambda's batch layer: a generated log of EVENTS events
(seed 5, the bench's 1 % duplicates and 0.1 % malformed lines), ingested by lambda's ingest job
(available-now, parsed columns, as the pipeline writes it) into DIR/master.

    PYTHONPATH=. python scripts/perf/batch_master.py DIR [EVENTS] [MAX_FILES_PER_TRIGGER]
"""

import json
import sys
import time
from pathlib import Path

from vendlab.bench.worker import Worker
from vendlab.jobs.ingest import start_ingest_job
from vendlab.world.catalog import Catalog


def main():
    work = Path(sys.argv[1])
    events = int(sys.argv[2]) if len(sys.argv) > 2 else 1_200_000
    per_trigger = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    w = Worker({"work_dir": str(work), "seed": 5})
    d = work / "log"
    made = w.make_log({"log_dir": str(d), "events": events})
    catalog = Catalog.load(d / "catalog.json")
    spark = w.start_spark()
    p = w.profile(d, max_files_per_trigger=per_trigger).with_(
        master_path=str(work / "master"), checkpoint_dir=str(work / "ck")
    )
    t0 = time.time()
    q = start_ingest_job(spark, p, available_now=True, catalog=catalog)
    q.awaitTermination()
    files = sorted(str(f.relative_to(work / "master")) for f in (work / "master").rglob("*.parquet"))
    print(
        json.dumps(
            {
                "log": made,
                "ingest_s": round(time.time() - t0, 1),
                "parquet_files": len(files),
                "dates": sorted({f.split("/")[0] for f in files}),
            }
        )
    )
    spark.stop()


if __name__ == "__main__":
    main()
