"""The two compose stacks and the Spark image, checked without a Docker engine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SHARED_SERVICES, compose_file

ROOT = Path(__file__).resolve().parents[1]
STACKS = ("lambda", "kappa")
SEED_PORTS = {  # the seed's URLs, plus Cassandra's CQL port and Kafka's host listener
    "lambda": {9021, 9870, 8088, 8080, 3000, 9042, 9092},
    "kappa": {9021, 8080, 3000, 9042, 9092},
}
SERVICES = {
    "lambda": {
        *SHARED_SERVICES,
        "namenode",
        "datanode1",
        "datanode2",
        "resourcemanager",
        "nodemanager",
        "lambda-ingest",
        "lambda-speed",
        "lambda-batch",
    },
    "kappa": {*SHARED_SERVICES, "kappa-job"},
}
JOBS = {
    "lambda": {"validation", "generator", "lambda-ingest", "lambda-speed", "lambda-batch"},
    "kappa": {"validation", "generator", "kappa-job"},
}


def services(stack: str) -> dict:
    return compose_file(stack)["services"]


def mem_mb(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([mg])", str(text).lower())
    assert m, text
    return float(m.group(1)) * (1024 if m.group(2) == "g" else 1)


@pytest.mark.parametrize("stack", STACKS)
def test_docker_compose_config_validates(stack):
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip(
            "docker-compose (Debian package docker-compose) is not installed: scripts/bootstrap.sh --test installs it"
        )
    env = {**os.environ, "GRAFANA_ADMIN_PASSWORD": "test-only"}
    r = subprocess.run([tool, "config", "-q"], cwd=ROOT / stack, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # without the .env the start script writes, compose refuses and says what to do
    env.pop("GRAFANA_ADMIN_PASSWORD")
    r = subprocess.run([tool, "config", "-q"], cwd=ROOT / stack, env=env, capture_output=True, text=True, timeout=120)
    if not (ROOT / stack / ".env").exists():
        assert r.returncode != 0 and f"start_{stack}.py" in r.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_services_network_and_volumes(stack):
    doc = compose_file(stack)
    assert set(doc["services"]) == SERVICES[stack]
    assert list(doc["networks"]) == [f"{stack}-network"]
    for name, svc in doc["services"].items():
        assert svc["networks"] == [f"{stack}-network"] or list(svc["networks"]) == [f"{stack}-network"], name
    named = set(doc["volumes"])
    assert {"kafka-data", "cassandra-data", "grafana-data"} <= named
    for svc in doc["services"].values():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            assert src.startswith("..") or src in named, v


@pytest.mark.parametrize("stack", STACKS)
def test_pinned_images_no_latest(stack):
    for name, svc in services(stack).items():
        image = svc["image"]
        assert ":" in image.split("/")[-1], f"{name}: {image} has no tag"
        tag = image.rsplit(":", 1)[1]
        assert tag != "latest" and re.match(r"v?\d", tag), f"{name}: {image}"
    dockerfile = (ROOT / "docker" / "spark" / "Dockerfile").read_text()
    for ref in re.findall(r"^ARG \w+_IMAGE=(\S+)$", dockerfile, re.M):
        assert not ref.endswith(":latest") and re.search(r":\d", ref), ref


@pytest.mark.parametrize("stack", STACKS)
def test_every_service_has_a_healthcheck_and_waits_on_health(stack):
    svcs = services(stack)
    for name, svc in svcs.items():
        hc = svc.get("healthcheck")
        assert hc and hc.get("test") and not hc.get("disable"), f"{name} has no health check"
        assert "sleep" not in str(hc["test"]), name
        assert "sleep" not in str(svc.get("command", "")) and "sleep" not in str(svc.get("entrypoint", "")), name
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must name conditions"
        for dep, cond in deps.items():
            assert dep in svcs and cond == {"condition": "service_healthy"}, (name, dep)


@pytest.mark.parametrize("stack", STACKS)
def test_ports_on_localhost_and_seed_ports_present(stack):
    published = set()
    for name, svc in services(stack).items():
        for p in svc.get("ports", []):
            host_ip, host_port, _ = str(p).split(":")
            assert host_ip == "127.0.0.1", f"{name}: {p} is not bound to 127.0.0.1"
            published.add(int(host_port))
    assert SEED_PORTS[stack] <= published


@pytest.mark.parametrize("stack", STACKS)
def test_jobs_are_services_of_the_jobs_profile(stack):
    """`docker compose up -d` alone starts the infrastructure; the jobs have the profile "jobs", a restart
    policy, their own memory limit and their process as PID 1 (vendlab.orchestrate exec)."""
    from vendlab.orchestrate import STACKS as ORCH

    svcs = services(stack)
    jobs = {n for n, s in svcs.items() if "jobs" in s.get("profiles", [])}
    assert jobs == JOBS[stack] == set(ORCH[stack].jobs)
    assert set(ORCH[stack].services) == set(svcs) - jobs
    for j in jobs:
        s = svcs[j]
        assert s["command"] == ["python", "-m", "vendlab.orchestrate", "exec", j]
        assert s["restart"] == "on-failure" and s["stop_signal"] == "SIGINT" and s["hostname"] == j
        assert s["image"] == "vendlab/spark:4.1.1"
        assert s["environment"]["VENDLAB_RATE"] == "${VENDLAB_RATE:-2000}"


def test_cassandra_heap_and_kafka_listeners():
    for stack in STACKS:
        svcs = services(stack)
        env = svcs["cassandra1"]["environment"]
        assert env["MAX_HEAP_SIZE"] and env["HEAP_NEWSIZE"]
        assert mem_mb(env["MAX_HEAP_SIZE"].lower()) < mem_mb(svcs["cassandra1"]["mem_limit"])
        k = svcs["kafka"]["environment"]
        assert "PLAINTEXT://kafka:29092" in k["KAFKA_ADVERTISED_LISTENERS"]
        assert "PLAINTEXT_HOST://localhost:9092" in k["KAFKA_ADVERTISED_LISTENERS"]
        assert "broker" in svcs["kafka"]["networks"][f"{stack}-network"]["aliases"]
        assert k["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
        assert svcs["kafka"]["image"].startswith("apache/kafka:")
        assert svcs["kafka-ui"]["image"].startswith("ghcr.io/kafbat/kafka-ui:")
        assert "GF_SECURITY_ADMIN_PASSWORD" in svcs["grafana"]["environment"]
        assert "admin" not in svcs["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"].split(":")[0]


def test_spark_image_is_shared_and_built_from_the_repo():
    for stack in STACKS:
        for name in ("spark-master", "spark-worker-1", "spark-worker-2"):
            b = services(stack)[name]["build"]
            assert b["context"] == ".." and b["dockerfile"] == "docker/spark/Dockerfile" and b["target"] == "spark"
    nm = services("lambda")["nodemanager"]["build"]
    assert nm["dockerfile"] == "docker/spark/Dockerfile" and nm["target"] == "nodemanager"


def test_kafka_package_version_equals_pinned_pyspark():
    dockerfile = (ROOT / "docker" / "spark" / "Dockerfile").read_text()
    pkg = re.search(r"org\.apache\.spark:spark-sql-kafka-0-10_(\d+\.\d+):(\d+\.\d+\.\d+)", dockerfile)
    assert pkg, "the Dockerfile must bake in org.apache.spark:spark-sql-kafka-0-10_<scala>:<version>"
    pyspark = re.search(r"^pyspark==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert pkg.group(2) == pyspark
    base = re.search(
        r"^ARG SPARK_IMAGE=apache/spark:(\d+\.\d+\.\d+)-scala(\d+\.\d+)-java17-python3-ubuntu$", dockerfile, re.M
    )
    assert base, "base image: the official apache/spark <version>-scala<x>-java17-python3-ubuntu"
    assert base.group(1) == pyspark and base.group(2) == pkg.group(1)


def test_spark_workers_cores_fit_the_jobs():
    """Standalone: the streaming jobs' --total-executor-cores must fit the workers, or one starves."""
    from vendlab.orchestrate import STACKS as ORCH
    from vendlab.orchestrate import StackSettings

    for stack in STACKS:
        svcs = services(stack)
        cores = sum(int(svcs[w]["environment"]["SPARK_WORKER_CORES"]) for w in ("spark-worker-1", "spark-worker-2"))
        wanted = 0
        for p in ORCH[stack].processes(StackSettings()):
            if "spark://spark-master:7077" in p.command:
                wanted += int(p.command[p.command.index("--total-executor-cores") + 1])
        assert 0 < wanted <= cores, stack


@pytest.mark.parametrize("stack", STACKS)
def test_grafana_is_healthy_only_once_its_plugin_is_loaded(stack):
    """Symptom 12: Grafana 12 installs the Cassandra plugin at start; /api/health answers before that, and the
    panels say "plugin not found". The plugin is installed before the server starts (preinstall_sync) and the
    probe asks Grafana for the plugin itself (404 until it is loaded). Offline behaviour: docs/compose.md.
    Whether the plugin really loads only a running Grafana shows."""
    g = services(stack)["grafana"]
    plugin = g["environment"]["GF_PLUGINS_PREINSTALL_SYNC"]
    assert "GF_PLUGINS_PREINSTALL" not in g["environment"]
    probe = " ".join(g["healthcheck"]["test"])
    assert f"/api/plugins/{plugin.split('@')[0]}/settings" in probe
    assert "$$GF_SECURITY_ADMIN_PASSWORD" in probe  # compose's escape: the container's variable, not the host's
    docs = (ROOT / "docs" / "compose.md").read_text()
    assert "offline" in docs.lower() and "grafana-data" in docs


def test_readme_cluster_section_is_one_command_per_stack():
    """Symptom 10: `docker compose up -d && python start_lambda.py` stopped on the missing .env, and stock
    Ubuntu has no `python`. The cluster section is one executable command per stack."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Cluster mode") :]
    section = section[: section.index("\n## ", 3)]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    commands = [ln.split("#")[0].strip() for ln in block.splitlines() if ln.split("#")[0].strip()]
    assert commands == ["./lambda/start_lambda.py", "./kappa/start_kappa.py"], commands
    for text in (readme, (ROOT / "docs" / "compose.md").read_text()):
        # the host's command (stock Ubuntu has python3 only); `python` inside the image is the venv's
        assert not re.search(r"(^|[\s`(])python \S*start_\w+\.py", text, re.M), "run ./STACK/start_STACK.py"


def dockerfile_stages() -> dict[str, dict]:
    """docker/spark/Dockerfile's stages: {name: {"from": image, "platform": str|None, "copies_from": [stage]}}."""
    stages, current = {}, None
    for line in (ROOT / "docker" / "spark" / "Dockerfile").read_text().splitlines():
        m = re.match(r"^FROM\s+(?:--platform=(\S+)\s+)?(\S+)\s+AS\s+(\S+)", line)
        if m:
            current = stages.setdefault(m.group(3), {"from": m.group(2), "platform": m.group(1), "copies_from": []})
            continue
        m = re.match(r"^COPY\s+--from=(\S+)", line)
        if m and current is not None:
            current["copies_from"].append(m.group(1))
    return stages


def test_nodemanager_binaries_match_the_hadoop_images_platform():
    """apache/hadoop:3.4.1 exists for linux/amd64 only (built FROM apache/hadoop-runner, which has no arm64 build:
    apache/hadoop PR #8023; the 3.4.1 image: PR #7135, "Compiled on platform linux-x86_64"). On an arm64 host
    (Apple silicon) Docker runs it emulated; before, the nodemanager stage copied Java 17 and Python from the
    native (arm64) spark stage into that amd64 image, so every YARN container of the batch layer failed to exec
    /opt/java17/bin/java (no aarch64 loader in an amd64 file system). Every stage the nodemanager copies from,
    and the nodemanager itself, must be pinned to the hadoop image's platform, and compose must say it."""
    stages = dockerfile_stages()
    nm = stages["nodemanager"]
    assert nm["from"] == "${HADOOP_IMAGE}" and nm["platform"] == "linux/amd64"
    assert nm["copies_from"], "the nodemanager gets Java 17 from another stage"
    for src in nm["copies_from"]:
        assert stages[src]["platform"] == nm["platform"], f"COPY --from={src}: stage not pinned to {nm['platform']}"
    for name, svc in services("lambda").items():
        if svc.get("image", "").startswith("apache/hadoop") or svc.get("build", {}).get("target") == "nodemanager":
            assert svc.get("platform") == "linux/amd64", f"lambda/{name}: platform not stated"


def test_yarn_containers_get_java17_and_no_python_paths_that_do_not_exist():
    """The AM and the executor run with JAVA_HOME=/opt/java17 (the Dockerfile copies it there); the nodemanager
    image has no Python (DataFrame-only jobs start no Python worker), so the job must not point YARN at one."""
    from vendlab.orchestrate import STACKS as ORCH
    from vendlab.orchestrate import StackSettings

    batch = next(p for p in ORCH["lambda"].processes(StackSettings()) if p.name == "lambda-batch").command
    conf = dict(batch[i + 1].split("=", 1) for i, a in enumerate(batch) if a == "--conf")
    dockerfile = (ROOT / "docker" / "spark" / "Dockerfile").read_text()
    java_home = re.search(r"^COPY --from=\S+ /opt/java/openjdk (\S+)$", dockerfile, re.M).group(1)
    assert conf["spark.yarn.appMasterEnv.JAVA_HOME"] == conf["spark.executorEnv.JAVA_HOME"] == java_home
    assert not any("PYSPARK_PYTHON" in k for k in conf)


# What each image's own Dockerfile puts there, for the health probes (busybox applets count only where the
# image is Alpine-only). Sources: apache/kafka docker/jvm/Dockerfile (alpine; apk add ... bash, kafka in
# /opt/kafka), kafbat/kafka-ui v1.5.0 api/Dockerfile (azul zulu alpine: busybox wget), the apache/hadoop
# runner image (bash: starter.sh is a bash script), docker-library/cassandra 5.0/Dockerfile (debian; python3 for
# cqlsh), grafana/grafana Dockerfile (alpine: "apk add ... bash curl ..."; ubuntu: "apt-get install ... curl":
# curl in both, wget only as busybox in the alpine one), docker/spark/Dockerfile (apache/spark ubuntu base
# with procps; we add curl).
IMAGE_TOOLS = {
    "apache/kafka": {"sh", "bash", "/opt/kafka/bin/kafka-topics.sh"},
    "ghcr.io/kafbat/kafka-ui": {"sh", "wget"},
    "apache/hadoop": {"sh", "bash"},
    "vendlab/hadoop-nodemanager": {"sh", "bash"},
    "cassandra": {"sh", "bash", "cqlsh"},
    "grafana/grafana": {"sh", "bash", "curl"},
    "vendlab/spark": {"sh", "bash", "curl", "kill"},
}


def probe_tools(test: list[str]) -> list[str]:
    """The programs a healthcheck runs: CMD's first element; for CMD-SHELL each command's first word after
    leading VAR=value assignments, and `bash` for `bash -c`."""
    if test[0] == "CMD":
        return [test[1]]
    tools = []
    for part in re.split(r"\|\||&&|;|\|", test[1]):
        words = [w for w in re.sub(r"\w+='[^']*'|\w+=\S+", "", part).split() if w]
        if words:
            tools.append(words[0])
    return tools


@pytest.mark.parametrize("stack", STACKS)
def test_every_probe_runs_a_program_its_image_has(stack):
    """Before: grafana's probe used wget with the password in the URL: Grafana's Dockerfile installs curl, not
    wget (busybox's wget exists only in the Alpine variant, and whether it sends URL credentials is a build
    option); now curl -f -u, which fails on the plugin endpoint's 404."""
    for name, svc in services(stack).items():
        image = svc["image"].rsplit(":", 1)[0]
        for tool in probe_tools(svc["healthcheck"]["test"]):
            assert tool in IMAGE_TOOLS[image], f"{stack}/{name}: the probe runs {tool!r}, not in {image}"


# Grafana 12.x pkg/setting/setting_plugins.go: defaultPreinstallPlugins, installed in the background at start
GRAFANA_DEFAULT_PREINSTALL = {
    "grafana-lokiexplore-app",
    "grafana-pyroscope-app",
    "grafana-exploretraces-app",
    "grafana-metricsdrilldown-app",
}


def grafana_preinstall(env: dict) -> tuple[set, set]:
    """(async, sync) plugin ids as readPluginSettings computes them: the defaults plus `preinstall` run in the
    background, `preinstall_sync` before the server starts, `disable_plugins` removed from both, a sync id
    removed from the async list; entries are ID[@VERSION[@URL]]."""
    split = lambda v: {x.strip().split("@")[0] for x in str(v or "").split(",") if x.strip()}  # noqa: E731
    disabled = split(env.get("GF_PLUGINS_DISABLE_PLUGINS"))
    sync = split(env.get("GF_PLUGINS_PREINSTALL_SYNC")) - disabled
    background = (GRAFANA_DEFAULT_PREINSTALL | split(env.get("GF_PLUGINS_PREINSTALL"))) - disabled - sync
    return background, sync


@pytest.mark.parametrize("stack", STACKS)
def test_grafana_installs_only_the_cassandra_plugin(stack):
    """Before: besides the Cassandra plugin Grafana downloaded four drilldown apps in the background at each
    first start (logging failures offline) into a 256 MiB container. disable_plugins leaves them out."""
    background, sync = grafana_preinstall(services(stack)["grafana"]["environment"])
    assert sync == {"hadesarchitect-cassandra-datasource"}
    assert background == set()
