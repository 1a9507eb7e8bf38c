"""The driver rides out Spark's known Kafka-source bug SPARK-55271 (vendlab/jobs/spark_workarounds.py) and nothing
else: a query that dies on it is started again in the same driver, a bounded number of times; any other failure
ends the job as before. The trace below is the one a kappa job restarted after a stop inside a micro-batch
printed on the local stack (Spark 4.1.1)."""

from __future__ import annotations

import pytest

from vendlab.jobs.spark_workarounds import await_query, is_kafka_metrics_npe

NPE_TRACE = """org.apache.spark.sql.streaming.StreamingQueryException: Cannot invoke "scala.collection.IterableOps.map(scala.Function1)" because the return value of "scala.Option.get()" is null
Caused by: java.lang.NullPointerException: Cannot invoke "scala.collection.IterableOps.map(scala.Function1)" because the return value of "scala.Option.get()" is null
	at org.apache.spark.sql.kafka010.KafkaMicroBatchStream$.metrics(KafkaMicroBatchStream.scala:520)
	at org.apache.spark.sql.kafka010.KafkaMicroBatchStream.metrics(KafkaMicroBatchStream.scala:363)
	at org.apache.spark.sql.execution.streaming.runtime.ProgressContext.finishTrigger(ProgressReporter.scala:312)
"""


class Captured(Exception):
    """pyspark's CapturedException keeps the JVM trace in _stackTrace; its str shows it only when configured."""

    def __init__(self, desc: str, trace: str):
        super().__init__(desc)
        self._stackTrace = trace


class FakeQuery:
    def __init__(self, outcome, name="kappa"):
        self.outcome, self.name = outcome, name

    def awaitTermination(self):
        if self.outcome is not None:
            raise self.outcome


def starter(*outcomes):
    started = []

    def start():
        q = FakeQuery(outcomes[len(started)])
        started.append(q)
        return q

    return start, started


def npe():
    return Captured('[STREAM_FAILED] Query [id = a] terminated with exception: Cannot invoke "scala...', NPE_TRACE)


def test_the_bug_is_told_by_its_frame_not_by_any_npe():
    assert is_kafka_metrics_npe(npe())
    other_npe = Captured("boom", "java.lang.NullPointerException\n\tat org.apache.spark.sql.foo.Bar.baz(Bar.scala:1)")
    assert not is_kafka_metrics_npe(other_npe)
    assert not is_kafka_metrics_npe(RuntimeException("Cassandra unavailable"))
    assert is_kafka_metrics_npe(RuntimeException(NPE_TRACE))  # the trace in str (jvmStacktrace enabled)


def test_a_query_dying_on_the_bug_is_started_again_in_the_driver_and_says_so():
    start, started = starter(npe(), None)
    said = []
    q = await_query(start, said.append)
    assert len(started) == 2 and q is started[1]
    assert len(said) == 1 and "SPARK-55271" in said[0] and "kappa" in said[0]


def test_any_other_failure_ends_the_job_unchanged():
    boom = RuntimeException("the sink failed")
    start, started = starter(boom)
    with pytest.raises(RuntimeException) as e:
        await_query(start, print)
    assert e.value is boom and len(started) == 1


def test_the_retries_are_bounded():
    start, started = starter(npe(), npe(), npe())
    with pytest.raises(Captured):
        await_query(start, lambda _m: None, retries=2)
    assert len(started) == 3


class RuntimeException(Exception):
    pass
