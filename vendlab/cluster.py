"""Cluster commands of the ``vendlab`` CLI (loaded by vendlab.cli when present).

    vendlab produce  --profile compose --rate R [--duration S] [--seed N] [--bad-rate F] [--dup-rate F]
    vendlab validate --profile compose [--seed N]
    vendlab job NAME --profile compose [--seed N] [--batch-interval S]
        NAME: kappa | lambda-speed | lambda-ingest | lambda-batch

With ``--profile compose`` the log is Kafka, the store Cassandra and the master dataset HDFS
(addresses from the VENDLAB_* variables, see vendlab.config); the start scripts run these
commands inside the Spark containers. ``--profile embedded`` runs the same commands on a data
dir (segment files and SQLite), handy to try them without Docker.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from vendlab.cli_args import fraction, positive, seed_type
from vendlab.config import BATCH_INTERVAL_S, PROFILES

COMMANDS = ("produce", "validate", "job")


def job_names() -> tuple[str, ...]:
    """`vendlab job NAME`: every job of every architecture (vendlab.architectures), view jobs first."""
    from vendlab import architectures
    from vendlab.architectures.spec import KINDS

    jobs = sorted(architectures.all_jobs(), key=lambda aj: KINDS.index(aj[1].kind))
    return tuple(j.command for _, j in jobs)


DEFAULT_DATA_DIR = Path("data/cluster")


def _profile_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="compose",
        help="compose (Kafka, Cassandra, HDFS of the Docker stacks) or embedded (files, SQLite)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"local folder for the manifest and catalog (embedded: also log and views; default {DEFAULT_DATA_DIR})",
    )
    p.add_argument("--seed", type=seed_type, default=1, help="seed of the fleet and the events (default 1)")


def add_commands(sub) -> None:
    p = sub.add_parser(
        "produce",
        help="generator -> log (Kafka with --profile compose), at a rate, with markers; "
        "started again on the same log it continues the stream",
    )
    _profile_flags(p)
    p.add_argument("--rate", type=positive, required=True, help="events per second")
    p.add_argument("--duration", type=positive, default=None, help="seconds to run (default: until Ctrl-C)")
    p.add_argument("--bad-rate", type=fraction, default=0.0, help="fraction of malformed lines to inject")
    p.add_argument("--dup-rate", type=fraction, default=0.0, help="fraction of events delivered twice")
    p.add_argument("--time-scale", type=positive, default=60.0, help="simulated seconds per wall second")

    v = sub.add_parser("validate", help="the validation consumer (plain Kafka consumer, no Spark) -> store")
    _profile_flags(v)

    j = sub.add_parser("job", help="run one streaming/batch job of an architecture (on the cluster: via spark-submit)")
    jobs = job_names()
    j.add_argument("name", choices=jobs, help=", ".join(jobs))
    _profile_flags(j)
    j.add_argument(
        "--batch-interval",
        type=positive,
        default=BATCH_INTERVAL_S,
        help=f"lambda-batch: seconds between batch runs (default {BATCH_INTERVAL_S:g})",
    )


def _profile(args):
    from vendlab.config import make_profile

    return make_profile(args.profile, args.data_dir)


# What each command reads and writes on the cluster (vendlab.services checks them before starting).
NEEDS = {
    "produce": ("kafka",),
    "validate": ("kafka", "cassandra"),
    "view": ("kafka", "cassandra", "spark", "hdfs"),  # job kinds (vendlab.architectures.spec)
    "ingest": ("kafka", "spark", "hdfs"),
    "batch": ("cassandra", "spark", "hdfs"),
}


def _job(name: str):
    """(architecture, job) of a `vendlab job` name (the parser allows only the registry's)."""
    from vendlab import architectures

    return next((a, j) for a, j in architectures.all_jobs() if j.command == name)


def _needs(args) -> tuple[str, tuple[str, ...]]:
    """(the command as typed, the services it needs)."""
    if args.command != "job":
        return f"vendlab {args.command}", NEEDS[args.command]
    return f"vendlab job {args.name}", NEEDS[_job(args.name)[1].kind]


def run(args) -> int:
    from vendlab.services import ServiceUnavailable, require

    command, needs = _needs(args)
    try:
        require(_profile(args), needs, command)
    except ServiceUnavailable as e:
        _say(str(e))
        return 2
    if args.command == "produce":
        return cmd_produce(args)
    if args.command == "validate":
        return cmd_validate(args)
    if args.command == "job":
        return cmd_job(args)
    return 2


def _say(msg: str) -> None:
    print(f"vendlab: {msg}", file=sys.stderr, flush=True)


def cmd_produce(args) -> int:
    """Feed the generator into the log. Started again on the same log it continues the stream
    (new event ids, simulated time after the last event, the manifest's counts going on):
    see kafka_log.continue_in_topic and runner.continue_generator."""
    from vendlab.world.catalog import make_catalog

    profile = _profile(args)
    profile.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = make_catalog(args.seed)
    catalog.save(profile.catalog_path)
    duration = args.duration if args.duration is not None else float("inf")
    settings = dict(rate=args.rate, time_scale=args.time_scale, bad_rate=args.bad_rate, dup_rate=args.dup_rate)
    if profile.log == "kafka":
        from confluent_kafka import Consumer, Producer

        from vendlab.kafka_log import KafkaLogError, consumer_config, make_feeder, producer_config, topic_partitions

        producer = Producer(producer_config(profile.kafka_bootstrap))
        if not topic_partitions(producer, profile.topic):
            _say(
                f"topic {profile.topic!r} not found on {profile.kafka_bootstrap}: create it first "
                f"(./lambda/start_lambda.py or ./kappa/start_kappa.py do)"
            )
            return 2
        reader = Consumer(consumer_config(profile.kafka_bootstrap, **{"group.id": "vendlab-producer"}))
        try:
            feeder = make_feeder(
                producer,
                profile.topic,
                catalog,
                args.seed,
                args.rate,
                duration,
                profile.manifest_path,
                reader=reader,
                say=_say,
                **{k: settings[k] for k in ("time_scale", "bad_rate", "dup_rate")},
            )
        except (ValueError, KafkaLogError) as e:
            _say(str(e))
            return 2
        finally:
            reader.close()
        where = f"Kafka topic {profile.topic} on {profile.kafka_bootstrap}"
    else:
        from vendlab.eventlog import SegmentWriter
        from vendlab.runner import LogFeeder, continue_generator, recover_manifest
        from vendlab.world.generator import Generator, set_aside

        m = recover_manifest(profile)
        if m is not None:
            try:
                gen = continue_generator(catalog, m, dict(settings, seed=args.seed))
            except ValueError as e:
                _say(str(e))
                return 2
            _say(f"continuing the stream of {profile.log_dir} after its {m.events:,} events")
        else:
            if profile.manifest_path.exists():
                _say(
                    f"the log in {profile.log_dir} is new: the manifest there belongs to an earlier log, kept as "
                    f"{set_aside(profile.manifest_path).name}"
                )
            gen = Generator(catalog, args.seed, **settings)
        feeder = LogFeeder(gen, SegmentWriter(profile.log_dir), args.rate, duration, profile.manifest_path)
        where = f"segment files in {profile.log_dir}"
    _say(
        f"producing {args.rate:,.0f} events/s to {where}"
        + (f" for {args.duration:g} s" if args.duration else " until Ctrl-C")
    )
    first_events = feeder.gen.manifest.events
    feeder.start()
    # SIGINT (Ctrl-C, the compose jobs' stop_signal, the local start scripts' --stop) and SIGTERM (docker stop,
    # kill) only ask the feeder to stop: it writes its end marker, flushes and saves the manifest. No
    # KeyboardInterrupt here: on Python 3.11 one raised inside Thread.join marks the still running feeder as
    # finished (threading's bpo-45274 handling), so the process exited with the end marker unwritten (seen by
    # tests/test_localstack_kappa.py: the jobs never drained).
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: feeder.stop_event.set())
    try:
        while feeder.is_alive():
            feeder.join(1.0)
    except KeyboardInterrupt:  # not in the main thread (no handler): stop the same way
        feeder.stop_event.set()
        while feeder.is_alive():
            feeder.join(1.0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if feeder.error:
        _say(f"producer failed: {feeder.error}")
        return 1
    m = feeder.gen.manifest
    _say(
        f"done: {m.events - first_events:,} events this run, {m.events:,} in all ({m.malformed:,} malformed, "
        f"{m.duplicates:,} duplicates), {m.markers} markers; manifest in {profile.manifest_path}"
    )
    return 0


def cmd_validate(args) -> int:
    from vendlab.config import open_store
    from vendlab.world.catalog import make_catalog

    profile = _profile(args)
    catalog = make_catalog(args.seed)
    store = open_store(profile)
    stop = threading.Event()
    if profile.log == "kafka":
        from confluent_kafka import Consumer

        from vendlab.kafka_log import KafkaLogError, KafkaValidator, consumer_config

        consumer = Consumer(consumer_config(profile.kafka_bootstrap))
        validator = KafkaValidator(consumer, profile.topic, catalog, store, window_ms=profile.validation_window_ms)
        _say(f"validation consumer on topic {profile.topic} ({profile.kafka_bootstrap}) -> {profile.store}")
        try:
            validator.run(stop)
        except KafkaLogError as e:
            _say(f"validation stopped: {e}")
            return 1
        finally:
            consumer.close()
            store.close()
        return 0
    from vendlab.oracle import Validator

    _say(f"validation consumer on {profile.log_dir} -> {profile.sqlite_path}")
    try:
        Validator(profile.log_dir, catalog, store, window_ms=profile.validation_window_ms).run(stop)
    finally:
        store.close()
    return 0


def _say_batch_run(info) -> None:
    """A line in the batch job's log for each run: what the batch layer did, and how long it took."""
    _say(
        f"{time.strftime('%H:%M:%S')} batch run: version {info.version}, cutoff bucket {info.cutoff_bucket}, "
        f"{info.events:,} master-dataset rows, {info.seconds:.1f} s"
    )


def cmd_job(args) -> int:
    from vendlab import architectures
    from vendlab.architectures.spec import start_query
    from vendlab.config import open_store
    from vendlab.spark import get_spark
    from vendlab.world.catalog import make_catalog

    profile = _profile(args)
    catalog = make_catalog(args.seed)
    spark = get_spark(profile, app=f"vendlab-{args.name}")
    arch, job = _job(args.name)
    try:
        if job.kind == architectures.BATCH:
            from vendlab.architectures.lambda_ import run_batch_loop

            store = open_store(profile)
            try:
                _say(f"{arch.name} batch layer: a batch run every {args.batch_interval:g} s")
                run_batch_loop(spark, profile, catalog, store, args.batch_interval, on_run=_say_batch_run)
            finally:
                store.close()
            return 0
        from vendlab.jobs.spark_workarounds import await_query

        def start():
            query = start_query(job, spark, profile, catalog)
            _say(f"{args.name}: streaming query {query.name or ''} started on {profile.spark_master}")
            return query

        await_query(start, _say)
        return 0
    finally:
        spark.stop()
