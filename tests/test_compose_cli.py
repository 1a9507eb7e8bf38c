"""The cluster commands of the CLI (vendlab/cluster.py): flags, and `produce` into Kafka (mock cluster)."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from vendlab import cli
from vendlab.kafka_log import consumer_config, producer_config, topic_partitions
from vendlab.world.generator import Manifest


def test_commands_registered():
    from vendlab import cluster

    assert set(cluster.COMMANDS) == {"produce", "validate", "job"}
    args = cli.build_parser().parse_args(["job", "lambda-speed", "--profile", "compose", "--seed", "4"])
    assert (args.command, args.name, args.profile, args.seed) == ("job", "lambda-speed", "compose", 4)


@pytest.mark.parametrize(
    "argv",
    [
        ["produce", "--profile", "cloud", "--rate", "10"],
        ["validate", "--profile", "cloud"],
        ["job", "kappa", "--profile", "cloud"],
    ],
)
def test_wrong_profile_exits_2_naming_the_allowed_values(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "'embedded'" in err and "'compose'" in err


def test_wrong_job_name_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["job", "lambda-serving", "--profile", "compose"])
    assert e.value.code == 2 and "lambda-batch" in capsys.readouterr().err


@pytest.mark.slow
def test_produce_compose_profile_into_kafka(tmp_path, monkeypatch):
    owner = Producer(producer_config("unused:9092", **{"test.mock.num.brokers": 1, "log_level": 3}))
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in owner.list_topics(timeout=10).brokers.values())
    owner.produce("cli-topic", b"warm-up")  # the mock cluster creates topics on first produce
    owner.flush(10)
    monkeypatch.setenv("VENDLAB_KAFKA", bootstrap)
    monkeypatch.setenv("VENDLAB_TOPIC", "cli-topic")
    code = cli.main(
        [
            "produce",
            "--profile",
            "compose",
            "--data-dir",
            str(tmp_path),
            "--rate",
            "5000",
            "--duration",
            "0.3",
            "--seed",
            "2",
            "--dup-rate",
            "0.01",
        ]
    )
    assert code == 0
    m = Manifest.load(tmp_path / "manifest.json")
    assert m.complete and m.events > 0
    c = Consumer(consumer_config(bootstrap, **{"group.id": "cli-check"}))
    parts = topic_partitions(c, "cli-topic")
    total = sum(c.get_watermark_offsets(TopicPartition("cli-topic", p), timeout=10)[1] for p in parts)
    c.close()
    assert total == 1 + m.events + (m.markers - 1) + len(parts)
    assert (tmp_path / "catalog.json").exists()
    del owner


def test_the_cluster_batch_job_says_what_each_run_did(capsys):
    """A batch run on the cluster leaves a line in its log (it printed nothing per run: a two-minute run on
    a loaded laptop looked like a hang)."""
    from vendlab import cluster
    from vendlab.store.base import BatchViewInfo

    cluster._say_batch_run(
        BatchViewInfo(version=3, cutoff_bucket=29460124, published_ms=0, events=79384, seconds=68.94)
    )
    err = capsys.readouterr().err
    assert "batch run: version 3, cutoff bucket 29460124, 79,384 master-dataset rows, 68.9 s" in err
