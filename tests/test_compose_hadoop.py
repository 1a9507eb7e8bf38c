"""The lambda stack's Hadoop settings (symptoms 2, 3, 11 of issue 13), read as the apache/hadoop image reads
lambda/hadoop.env (envtoconf.py, vendlab.compose_conf.hadoop_site_files) and with Hadoop's own defaults
for the addresses (yarn-default.xml, hdfs-default.xml). Binding, safe mode and block placement themselves
only running daemons show: the real-service tests of issue 14 start them from this same hadoop.env."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

from conftest import compose_file

from vendlab.compose_conf import hadoop_site_files, parse_env_file, read_site_xml

ROOT = Path(__file__).resolve().parents[1]
# port -> (the address setting, its default, the bind-host setting that overrides its host), per Hadoop 3.4
ADDRESSES = {
    8088: (
        "yarn-site.xml",
        "yarn.resourcemanager.webapp.address",
        "${yarn.resourcemanager.hostname}:8088",
        "yarn.resourcemanager.bind-host",
    ),
    8042: (
        "yarn-site.xml",
        "yarn.nodemanager.webapp.address",
        "${yarn.nodemanager.hostname}:8042",
        "yarn.nodemanager.bind-host",
    ),
    8020: ("hdfs-site.xml", "dfs.namenode.rpc-address", "${fs.defaultFS host}:8020", "dfs.namenode.rpc-bind-host"),
    9870: ("hdfs-site.xml", "dfs.namenode.http-address", "0.0.0.0:9870", "dfs.namenode.http-bind-host"),
    9864: ("hdfs-site.xml", "dfs.datanode.http.address", "0.0.0.0:9864", None),
}
HOST_DEFAULTS = {"yarn.resourcemanager.hostname": "0.0.0.0", "yarn.nodemanager.hostname": "0.0.0.0"}


def sites():
    return hadoop_site_files(parse_env_file((ROOT / "lambda" / "hadoop.env").read_text()))


def services():
    return compose_file("lambda")["services"]


def bind_host(port: int) -> str:
    """The host a daemon's server on `port` binds to (WebAppUtils.getWebAppBindURL and the RPC servers:
    the bind-host setting when set, else the host of the address, which resolves to the container's IP)."""
    conf = {k: v for f in sites().values() for k, v in f.items()}
    file, key, default, bind_key = ADDRESSES[port]
    if bind_key and conf.get(bind_key):
        return conf[bind_key]
    addr = conf.get(key, default)
    if "${fs.defaultFS host}" in addr:
        addr = addr.replace("${fs.defaultFS host}", re.match(r"hdfs://([^:/]+)", conf["fs.defaultFS"]).group(1))
    addr = re.sub(r"\$\{([\w.]+)\}", lambda m: conf.get(m.group(1), HOST_DEFAULTS.get(m.group(1), "")), addr)
    return addr.rsplit(":", 1)[0]


def test_envtoconf_rule():
    files = hadoop_site_files(
        {
            "CORE-SITE.XML_fs.defaultFS": "hdfs://nn:8020",
            "HADOOP_HEAPSIZE_MAX": "1g",
            "CAPACITY-SCHEDULER.XML_yarn.scheduler.capacity.root.queues": "default",
        }
    )
    assert files == {
        "core-site.xml": {"fs.defaultFS": "hdfs://nn:8020"},
        "capacity-scheduler.xml": {"yarn.scheduler.capacity.root.queues": "default"},
    }


def test_every_local_probe_reaches_a_server_bound_to_all_addresses():
    """Symptom 2: with only yarn.resourcemanager.hostname set, the RM web UI binds to the address the name
    `resourcemanager` resolves to (the container's IP), and a probe on localhost:8088 never answers: the RM
    stays unhealthy and the nodemanager never starts. Every Hadoop probe on localhost must find its server
    bound to 0.0.0.0 (or loopback)."""
    for name, s in services().items():
        test = " ".join(s["healthcheck"]["test"])
        for port in re.findall(r"/dev/tcp/localhost/(\d+)", test):
            if int(port) in ADDRESSES:
                assert bind_host(int(port)) in ("0.0.0.0", "localhost", "127.0.0.1"), (
                    f"{name}: probes localhost:{port}, but the server binds to {bind_host(int(port))!r}"
                )


def test_namenode_health_does_not_wait_for_safe_mode():
    """Symptom 3: after `down` and `up` the namenode stays in safe mode until the datanodes report their blocks
    (BlockManagerSafeMode: threshold 0.999 of the blocks), and the datanodes start only once the namenode is
    healthy. So the namenode's health must not require safe mode off; the start script waits for it before
    writing HDFS (`hdfs dfsadmin -safemode wait`, tests/test_orchestrate.py)."""
    svcs = services()
    nn_probe = " ".join(svcs["namenode"]["healthcheck"]["test"])
    assert "safemode" not in nn_probe
    for dn in ("datanode1", "datanode2"):
        assert svcs[dn]["depends_on"] == {"namenode": {"condition": "service_healthy"}}
    # the order (safe-mode wait before the first HDFS write): tests/test_orchestrate.py::test_start_lambda_steps_in_order


def test_spark_containers_write_hdfs_with_the_clusters_replication():
    """Symptom 11: the streaming jobs write HDFS from their drivers and executors; without HADOOP_CONF_DIR they
    use the client default dfs.replication=3 on 2 datanodes (every block under-replicated). Every lambda
    Spark container gets the client configuration, which is made from hadoop.env."""
    svcs = services()
    datanodes = [n for n, s in svcs.items() if s.get("command") == ["hdfs", "datanode"]]
    for name, s in svcs.items():
        if s.get("image") == "vendlab/spark:4.1.1":
            assert s["environment"].get("HADOOP_CONF_DIR") == "/opt/hadoop-conf", name
    client = read_site_xml((ROOT / "docker" / "spark" / "hadoop-conf" / "hdfs-site.xml").read_text())
    assert int(client["dfs.replication"]) == int(sites()["hdfs-site.xml"]["dfs.replication"]) <= len(datanodes)
    assert "COPY docker/spark/hadoop-conf /opt/hadoop-conf" in (ROOT / "docker" / "spark" / "Dockerfile").read_text()


def test_client_configuration_is_made_from_hadoop_env():
    made = runpy.run_path(str(ROOT / "docker" / "spark" / "make_hadoop_conf.py"))["expected"]()
    for name, text in made.items():
        have = (ROOT / "docker" / "spark" / "hadoop-conf" / name).read_text()
        assert have == text, f"docker/spark/hadoop-conf/{name} is stale: python3 docker/spark/make_hadoop_conf.py"
