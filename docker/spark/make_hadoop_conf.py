#!/usr/bin/env python3
"""Writes docker/spark/hadoop-conf/*.xml, the Hadoop client configuration of the lambda stack's Spark
containers (HADOOP_CONF_DIR=/opt/hadoop-conf), from lambda/hadoop.env, by the apache/hadoop image's own rule.

    python3 docker/spark/make_hadoop_conf.py

So drivers and executors write HDFS with the cluster's dfs.replication and find the namenode and the
resourcemanager exactly as the Hadoop containers are configured (one source: hadoop.env).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from vendlab.compose_conf import hadoop_site_files, parse_env_file, site_xml  # noqa: E402

# client-only settings: the datanodes register under their container hostnames
CLIENT_EXTRA = {"hdfs-site.xml": {"dfs.client.use.datanode.hostname": "true"}}
FILES = ("core-site.xml", "hdfs-site.xml", "yarn-site.xml")


def expected() -> dict[str, str]:
    sites = hadoop_site_files(parse_env_file((ROOT / "lambda" / "hadoop.env").read_text()))
    return {
        name: site_xml(
            {**sites.get(name, {}), **CLIENT_EXTRA.get(name, {})},
            "made from lambda/hadoop.env by docker/spark/make_hadoop_conf.py; do not edit",
        )
        for name in FILES
    }


if __name__ == "__main__":
    for name, text in expected().items():
        (ROOT / "docker" / "spark" / "hadoop-conf" / name).write_text(text)
        print(f"wrote docker/spark/hadoop-conf/{name}")
