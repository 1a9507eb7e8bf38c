"""The local stack reads the compose files' configuration and turns it into the services' files with the
images' own rules (no services started here; one test runs the broker image's KafkaDockerWrapper)."""

from __future__ import annotations

import re
from pathlib import Path

import pyspark
import pytest

from vendlab.cli import main
from vendlab.compose_conf import hadoop_site_files
from vendlab.localstack import composefile as cf
from vendlab.localstack import maven
from vendlab.localstack.stack import LocalStack, relocate


def test_poms_pin_the_compose_images_versions_and_pysparks():
    kappa, lam = cf.load("kappa"), cf.load("lambda")
    assert maven.pinned_version("kafka") == kappa.image_tag("kafka") == lam.image_tag("kafka")
    assert maven.pinned_version("cassandra") == kappa.image_tag("cassandra1") == lam.image_tag("cassandra1")
    assert maven.pinned_version("hadoop") == lam.image_tag("namenode")
    assert maven.pinned_version("spark-kafka") == pyspark.__version__


def test_every_hadoop_env_line_lands_in_its_site_file_by_the_images_rule():
    env = cf.load("lambda").environment("namenode")
    lines = [k for k in env if re.match(r"^[A-Z-]+\.(XML|PROPERTIES|YAML|YML|ENV|SH|CFG|CONF)_", k)]
    files = hadoop_site_files(env)
    assert sum(len(p) for p in files.values()) == len(lines) > 0
    for key in lines:
        name, ext = re.split(r"[_.]", key)[:2]
        prop = key[len(name) + len(ext) + 2 :]
        assert files[f"{name.lower()}.{ext.lower()}"][prop] == env[key]
    # variables that are not site-file lines (heap, ENSURE_NAMENODE_DIR) are not properties
    assert all("HEAPSIZE" not in k for p in files.values() for k in p)


def test_env_file_values_lose_their_quotes_as_compose_reads_them():
    from vendlab.compose_conf import parse_env_file

    env = parse_env_file('CORE-SITE.XML_fs.defaultFS="hdfs://nn:8020"\nA=\'x y\'\nB="unpaired\n# c\n')
    assert env == {"CORE-SITE.XML_fs.defaultFS": "hdfs://nn:8020", "A": "x y", "B": '"unpaired'}


def test_kafka_addresses_relocated_names_and_protocols_kept(tmp_path):
    env = cf.kafka_env(cf.load("kappa").environment("kafka"))
    names = cf.kafka_listeners(env)
    ports = {n: 40000 + i for i, n in enumerate(names)}
    local = cf.relocate_kafka(env, ports, tmp_path)
    assert cf.kafka_listeners(local) == ports
    assert set(re.findall(r"(\w+)://", local["KAFKA_LISTENERS"])) == set(names)
    for var in cf.KAFKA_ADDRESS_VARS:
        assert all(h == "127.0.0.1" for h in re.findall(r"(?:@|://)([^:,]*):", local[var])), local[var]
    changed = {k for k in env if env[k] != local.get(k)}
    assert changed <= set(cf.KAFKA_ADDRESS_VARS) | {"KAFKA_LOG_DIRS"}


def test_kafka_image_defaults_fill_only_unset_variables():
    env = cf.kafka_env({"KAFKA_NODE_ID": "7", "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://h:1"})
    assert env["KAFKA_NODE_ID"] == "7" and env["CLUSTER_ID"] == cf.KAFKA_IMAGE_DEFAULTS["CLUSTER_ID"]
    assert env["KAFKA_LISTENERS"] == cf.KAFKA_IMAGE_DEFAULTS["KAFKA_LISTENERS"]


def test_relocate_maps_compose_hosts_only():
    m = {
        "kafka:29092": "127.0.0.1:1",
        "cassandra1": "127.0.0.1:2",
        "spark-master:7077": "127.0.0.1:3",
        "namenode:8020": "127.0.0.1:4",
    }
    assert relocate("kafka:29092", m) == "127.0.0.1:1"
    assert relocate("cassandra1", m) == "127.0.0.1:2"
    assert relocate("spark://spark-master:7077", m) == "spark://127.0.0.1:3"
    assert relocate("hdfs://namenode:8020/vendlab/master", m) == "hdfs://127.0.0.1:4/vendlab/master"
    assert relocate("file:///checkpoints", m) == "file:///checkpoints"
    assert relocate("cassandra10", m) == "cassandra10"


def test_cassandra_heap_from_the_compose_file():
    env = cf.load("kappa").environment("cassandra1")
    assert cf.cassandra_heap(env) == [f"-Xms{env['MAX_HEAP_SIZE']}", f"-Xmx{env['MAX_HEAP_SIZE']}"]


@pytest.mark.services  # runs the Kafka jar's own wrapper (the local stack's jars, scripts/bootstrap.sh --test)
def test_broker_properties_are_the_compose_settings_by_the_images_own_wrapper(tmp_path):
    """KafkaDockerWrapper (in the kafka_2.13 jar the broker runs) writes server.properties from the
    compose file's KAFKA_* variables: every setting is there with the compose value, only addresses
    and the log folder differ. A wrong setting in compose is wrong here too."""
    stack = LocalStack(tmp_path, "kappa")
    stack.load()
    svc = stack.kafka()
    svc.prepare()
    text = (tmp_path / "conf" / "kafka" / "final" / "server.properties").read_text()
    props = dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln)
    env = cf.kafka_env(cf.load("kappa").environment("kafka"))
    for key, value in env.items():
        if not key.startswith("KAFKA_") or key in ("KAFKA_HEAP_OPTS",):
            continue
        prop = key[len("KAFKA_") :].lower().replace("_", ".").replace("...", "-").replace("..", "_")
        if key in cf.KAFKA_ADDRESS_VARS or key == "KAFKA_LOG_DIRS":
            assert prop in props
            continue
        assert props.get(prop) == value, (key, prop)
    # and the storage was formatted with the compose file's CLUSTER_ID
    meta = (tmp_path / "data" / "kafka" / "log" / "meta.properties").read_text()
    assert f"cluster.id={env['CLUSTER_ID']}" in meta


def test_missing_maven_names_the_install_command(monkeypatch, tmp_path, capsys):
    import shutil

    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "mvn" else real(name, *a, **k))
    with pytest.raises(maven.ToolMissing, match="apt-get install -y maven"):
        maven.check_tools()
    assert main(["stack", "up", "--stack", "kappa", "--dir", str(tmp_path)]) == 2
    assert "apt-get install -y maven" in capsys.readouterr().err


def test_status_of_a_folder_without_a_stack_exits_2(tmp_path, capsys):
    assert main(["stack", "status", "--dir", str(tmp_path), "--json"]) == 2
    assert "vendlab stack up" in capsys.readouterr().err
    assert main(["views", "--profile", "compose", "--stack-dir", str(tmp_path), "--json"]) == 2


def test_local_runner_starts_nothing_twice_and_stops_by_pid(tmp_path):
    import json
    import signal
    import sys

    from vendlab.localstack.jobs import LocalRunner

    (tmp_path / "stack.json").write_text(
        json.dumps({"stack": "kappa", "services": {}, "ports": {}, "client_env": {"VENDLAB_TOPIC": "t"}})
    )
    runner = LocalRunner(LocalStack(tmp_path), tag="x-")
    argv = [sys.executable, "-c", "import time, sys; time.sleep(120)", "vendlab-test"]
    assert runner.launch("sleeper", argv)
    pid = runner.pid("sleeper")
    assert pid, "launch wrote no pid file"
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b"(gone)"
    assert runner.running("sleeper"), (
        f"the sleeper (pid {pid}, cmdline {cmdline!r}) is not running; "
        f"its log: {runner.log('sleeper').read_text()[-2000:]!r}"
    )
    assert not runner.launch("sleeper", argv), "a running process was started twice"
    assert runner.env()["VENDLAB_TOPIC"] == "t"
    assert runner.signal("sleeper", signal.SIGINT, wait=10)
    assert not runner.running("sleeper") and runner.pid("sleeper") is None
    assert runner.log("sleeper").exists()


def test_down_purge_removes_the_stacks_files_and_keeps_other_files(tmp_path, capsys):
    import json

    (tmp_path / "stack.json").write_text(
        json.dumps(
            {
                "stack": "kappa",
                "ports": {},
                "services": {
                    "kafka": {
                        "compose": "kafka",
                        "pid": None,
                        "address": "127.0.0.1:1",
                        "ports": {},
                        "version": "x",
                        "log": str(tmp_path / "logs" / "kafka.log"),
                        "argv": [],
                        "extra": {},
                    }
                },
            }
        )
    )
    for sub in ("data/kafka", "conf/kafka", "logs"):
        (tmp_path / sub).mkdir(parents=True)
    (tmp_path / "mine.txt").write_text("kept")
    assert main(["stack", "status", "--dir", str(tmp_path), "--json"]) == 1  # nothing runs: not healthy
    status = json.loads(capsys.readouterr().out)
    assert status["services"]["kafka"] == {
        "address": "127.0.0.1:1",
        "pid": None,
        "version": "x",
        "running": False,
        "healthy": False,
        "log": str(tmp_path / "logs" / "kafka.log"),
    }
    assert main(["stack", "down", "--dir", str(tmp_path), "--purge"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def _start_script(stack: str, *args: str):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, str(root / stack / f"start_{stack}.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )


def test_start_script_local_without_a_stack_names_the_command(tmp_path):
    r = _start_script("lambda", "--local", str(tmp_path / "none"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"vendlab stack up --stack lambda --dir {tmp_path / 'none'}" in r.stderr
    for flag in ("--status", "--stop"):
        r = _start_script("lambda", "--local", str(tmp_path / "none"), flag)
        assert r.returncode == 2 and "vendlab stack up --stack lambda" in r.stderr, r.stderr


def test_start_script_local_on_a_stopped_or_other_stack_says_which_and_how(tmp_path):
    import json

    rec = {
        "compose": "kafka",
        "pid": None,
        "address": "127.0.0.1:1",
        "ports": {},
        "version": "4.1.1",
        "log": str(tmp_path / "logs" / "kafka.log"),
        "argv": [],
        "extra": {},
    }
    (tmp_path / "stack.json").write_text(json.dumps({"stack": "kappa", "services": {"kafka": rec}, "ports": {}}))
    r = _start_script("kappa", "--local", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "kafka (stopped)" in r.stderr and f"vendlab stack up --stack kappa --dir {tmp_path}" in r.stderr
    r = _start_script("lambda", "--local", str(tmp_path))
    assert r.returncode == 2 and "holds a kappa stack, not lambda" in r.stderr, r.stderr
    r = _start_script("kappa", "--local", str(tmp_path), "--status")
    assert (
        r.returncode == 0 and re.search(r"kafka\s+stopped", r.stdout) and re.search(r"kappa-job\s+stopped", r.stdout)
    ), r.stdout


def test_maven_progress_comes_while_mvn_runs_not_after(monkeypatch, capsys):
    """A first download of the jars takes minutes: the progress lines come as Maven's transfers do."""
    import sys

    script = (
        "import sys, time\n"
        "for i in range(3):\n"
        "    print(f'[INFO] Downloaded from central: https://x/a{i}.jar (2.0 MB at 1 MB/s)', flush=True)\n"
        "    time.sleep(0.3)\n"
        "print('[ERROR] Failed to read artifact descriptor', flush=True)\n"
        "sys.exit(1)\n"
    )
    monkeypatch.setattr(maven, "PROGRESS_EVERY_S", 0.0)
    code, out = maven._run_with_progress([sys.executable, "-c", script], "kafka", quiet=False)
    err = capsys.readouterr().err
    assert code == 1 and len(out) == 4
    assert "kafka: 1 artifacts downloaded (2.0 MB)" in err and "kafka: 3 artifacts downloaded (6.0 MB)" in err
    assert "Failed to read artifact descriptor" in err
    code, _ = maven._run_with_progress([sys.executable, "-c", script], "kafka", quiet=True)
    assert code == 1 and capsys.readouterr().err == ""


def test_up_only_names_an_unknown_service_and_what_there_is(tmp_path):
    from vendlab.localstack.stack import StackError

    with pytest.raises(StackError, match="no service cassandra9 in the kappa stack; it has kafka, cassandra1"):
        LocalStack(tmp_path, "kappa").up(only=["cassandra9"])
