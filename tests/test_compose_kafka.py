"""Symptom 1 of issue 13: Kafka must keep every record of the topic, whatever its (simulated) timestamp.

The broker's configuration is read from the compose files with the apache/kafka image's own env rule
(vendlab.compose_conf.kafka_properties, from KafkaDockerWrapper), and the retention decision is UnifiedLog's
(deleteRetentionMsBreachedSegments: a segment goes when now - its largest timestamp > retention.ms, the
active segment included, up to the high-water mark). The deletion itself only a running broker shows: the
real-service tests of issue 14 run one with a short retention check interval."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import compose_file

from vendlab.compose_conf import kafka_properties
from vendlab.kafka_log import TOPIC_CONFIG, topic_create_args
from vendlab.world.generator import DEFAULT_START

ROOT = Path(__file__).resolve().parents[1]
LONG_MAX = 2**63 - 1
KAFKA4_DEFAULTS = {  # ServerLogConfigs / LogConfig of Kafka 4.x (docs/compose.md, "verified against")
    "retention.ms": 7 * 24 * 3600 * 1000,
    "message.timestamp.before.max.ms": LONG_MAX,
    "message.timestamp.after.max.ms": 3600 * 1000,
}
TIME_SCALE = 60.0


def broker(stack):
    env = compose_file(stack)["services"]["kafka"]["environment"]
    return kafka_properties(env)


def effective(stack) -> dict[str, int]:
    """The topic's effective settings: topic config over broker config over Kafka 4 defaults."""
    props = broker(stack)
    out = dict(KAFKA4_DEFAULTS)
    if "log.retention.ms" in props:
        out["retention.ms"] = int(props["log.retention.ms"])
    elif "log.retention.hours" in props:
        out["retention.ms"] = int(props["log.retention.hours"]) * 3600 * 1000
    for k in ("message.timestamp.before.max.ms", "message.timestamp.after.max.ms"):
        if f"log.{k}" in props:
            out[k] = int(props[f"log.{k}"])
    for k in out:
        if k in TOPIC_CONFIG:
            out[k] = int(TOPIC_CONFIG[k])
    return out


def segment_deleted(now_ms: int, largest_ts_ms: int, retention_ms: int) -> bool:
    """UnifiedLog.deleteRetentionMsBreachedSegments' predicate (retention.ms < 0: no time retention)."""
    return retention_ms >= 0 and now_ms - largest_ts_ms > retention_ms


def simulated_ms(run_start: datetime, wall: datetime) -> int:
    t0 = datetime.fromisoformat(DEFAULT_START.replace("Z", "+00:00"))
    return int((t0 + (wall - run_start) * TIME_SCALE).timestamp() * 1000)


def test_image_rule_turns_env_into_properties():
    props = kafka_properties(
        {
            "KAFKA_LOG_RETENTION_MS": "-1",
            "KAFKA_HEAP_OPTS": "-Xmx1g",
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "A:B",
            "KAFKA_SOME__ODD___KEY": "x",
        }
    )
    assert props == {"log.retention.ms": "-1", "listener.security.protocol.map": "A:B", "some_odd-key": "x"}


@pytest.mark.parametrize("stack", ["lambda", "kappa"])
def test_broker_keeps_every_record_and_accepts_every_timestamp(stack):
    props = broker(stack)
    assert props["log.retention.ms"] == "-1" and props["log.retention.bytes"] == "-1"
    assert props["log.message.timestamp.before.max.ms"] == str(LONG_MAX)
    assert props["log.message.timestamp.after.max.ms"] == str(LONG_MAX)
    assert "log.cleanup.policy" not in props or props["log.cleanup.policy"] == "delete"


def test_topic_is_created_without_retention():
    args = topic_create_args()
    confs = dict(a.split("=", 1) for a in args if "=" in a)
    assert confs["retention.ms"] == "-1" and confs["retention.bytes"] == "-1"
    assert confs["cleanup.policy"] == "delete"  # "compact" would drop events of the same key
    assert confs["message.timestamp.before.max.ms"] == confs["message.timestamp.after.max.ms"] == str(LONG_MAX)


@pytest.mark.parametrize("stack", ["lambda", "kappa"])
@pytest.mark.parametrize("started", ["2026-01-05", "2026-11-29", "2027-06-01"])
def test_no_record_of_a_run_is_deleted_or_rejected(stack, started):
    """Records are stamped with simulated time: from 2026-01-05 at 60x. A run started on `started` writes
    records months behind the wall clock at first and, after (wall - 2026-01-05) / 59 of running, ahead of it.
    Over 30 days of running none may be rejected (before/after.max.ms) or deleted by time retention; on
    today's files the first retention check (5 min) deletes everything up to the high-water mark."""
    conf = effective(stack)
    run_start = datetime.fromisoformat(started).replace(tzinfo=UTC)
    for minutes in (0, 5, 60, 24 * 60, 7 * 24 * 60, 30 * 24 * 60):
        wall = run_start + timedelta(minutes=minutes)
        now_ms = int(wall.timestamp() * 1000)
        ts = simulated_ms(run_start, wall)
        assert now_ms - ts <= conf["message.timestamp.before.max.ms"], "rejected as too old"
        assert ts - now_ms <= conf["message.timestamp.after.max.ms"], f"rejected as {ts - now_ms} ms ahead"
        first_record = simulated_ms(run_start, run_start)
        assert not segment_deleted(now_ms, first_record, conf["retention.ms"]), (
            f"{stack}: after {minutes} min the first segment (largest timestamp {started} -> 2026-01-05) is deleted"
        )


def test_docs_say_the_clock_starts_behind():
    text = (ROOT / "docs" / "compose.md").read_text()
    assert "behind the wall clock" in text and "runs *ahead* of" not in text


@pytest.mark.parametrize("stack", ["lambda", "kappa"])
def test_the_probe_reaches_a_listener_bound_to_all_addresses(stack):
    """The class of symptom 2 for Kafka: the health probe connects to localhost:9092 inside the container, so
    that listener must bind to all addresses (empty host or 0.0.0.0), not to the container's hostname."""
    svc = compose_file(stack)["services"]["kafka"]
    port = re.search(r"--bootstrap-server localhost:(\d+)", " ".join(svc["healthcheck"]["test"])).group(1)
    listeners = {
        m.group(3): m.group(2)
        for m in (
            re.match(r"(\w+)://([^:]*):(\d+)", ln)
            for ln in kafka_properties(svc["environment"])["listeners"].split(",")
        )
    }
    assert listeners[port] in ("", "0.0.0.0"), f"{stack}: listener on {port} binds to {listeners[port]!r}"
