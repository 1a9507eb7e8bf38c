"""Known bugs of the pinned Spark that a job rides out in its own driver, each with where it was read.

**SPARK-55271 / SPARK-57438** (Spark 4.1.0 to 4.1.2; fixed in 4.1.3, read in the jars: 4.1.3's
``KafkaMicroBatchStream.metrics`` wraps ``latestPartitionOffsets`` with ``Option.apply``, 4.1.1's and 4.1.2's with
``Some``). A query on Spark's Kafka source that starts by re-running the batch its offset log planned but its
commit log does not have (the previous run was stopped or killed inside a micro-batch) runs that batch without
calling ``latestOffset``, so the source's ``latestPartitionOffsets`` is still null; the progress report after the
batch (``ProgressContext.finishTrigger`` -> ``KafkaMicroBatchStream.metrics``) then throws
``NullPointerException: ... because the return value of "scala.Option.get()" is null`` and the query dies. The batch
itself completed: ``runBatch`` ends with ``markMicroBatchEnd`` (the commit) before ``finishTrigger``
(MicroBatchExecution.executeOneBatch, read in spark-sql 4.1.1's bytecode). Left alone, every restart of a kappa or
lambda job after a stop inside a batch crashed once more ~40 s later and its supervisor (or compose's
``restart: on-failure``) had to start a new driver. Here the same driver starts the query again at once: it reads
its checkpoint as any restart does (exact: the sinks are idempotent per batch id), and its next batch is planned
by ``latestOffset`` so the report has its offsets. Only this failure is retried, a bounded number of times;
anything else ends the job as before. Drop this when pyspark is pinned at 4.1.3 or later.
"""

from __future__ import annotations

from collections.abc import Callable

RETRIES = 3  # the bug can only hit the first batch of a query's run: one retry suffices, three leaves room


def jvm_trace(exc: BaseException) -> str:
    """The message and the JVM stack trace a pyspark exception carries (its ``str`` holds the trace only when
    ``spark.sql.pyspark.jvmStacktrace.enabled``; the captured exception keeps it in ``_stackTrace``)."""
    return f"{exc}\n{getattr(exc, '_stackTrace', '') or ''}"


def is_kafka_metrics_npe(exc: BaseException) -> bool:
    """Whether a query failed on SPARK-55271 (see the module's docstring), told by its frame and its message."""
    trace = jvm_trace(exc)
    return "NullPointerException" in trace and (
        "KafkaMicroBatchStream$.metrics(" in trace or "KafkaMicroBatchStream.metrics(" in trace
    )


def await_query(start: Callable[[], object], say: Callable[[str], None], retries: int = RETRIES):
    """Start a streaming query and wait for it to end; if it dies on SPARK-55271, start it again in this driver
    (at most ``retries`` times). Any other failure is raised as it came. Returns the last query."""
    query = start()
    left = retries
    while True:
        try:
            query.awaitTermination()
            return query
        except Exception as e:  # noqa: BLE001 - anything but the known bug is re-raised unchanged
            if left <= 0 or not is_kafka_metrics_npe(e):
                raise
            left -= 1
            say(
                f"query {getattr(query, 'name', '') or ''} stopped on Spark's known Kafka-source bug SPARK-55271 "
                "(the progress report after the batch that resumed the checkpoint, committed before it); "
                "starting it again in this driver"
            )
            query = start()
