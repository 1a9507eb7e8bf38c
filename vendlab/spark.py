"""The SparkSession, configured from a profile (local mode embedded, a master URL on the cluster)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from vendlab.config import Profile

JAVA_HINT = (
    "Java 17 or newer is needed to run Spark. Install it with: "
    "sudo apt-get install -y openjdk-17-jre-headless  (or run `make demo`, which does it for you)"
)


class JavaMissing(RuntimeError):
    pass


def check_java() -> str:
    """The java executable Spark will use; raises JavaMissing with the install command if absent."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise JavaMissing(JAVA_HINT)
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    try:
        major = int(out.split('"')[1].split(".")[0])
    except (IndexError, ValueError):
        major = 0
    if major < 17:
        raise JavaMissing(f"found Java {major or 'of unknown version'} at {java}. {JAVA_HINT}")
    return java


# HotSpot compiles no method over 8000 bytes of bytecode, and Spark's generated code for the
# parse step (one wide projection with a long CASE) is such a method: without this option it
# runs in the JVM's interpreter, at about twice the CPU per line (docs/history/results-2026-11.md, performance history; the
# option Spark's own docs name for spark.sql.codegen.hugeMethodLimit).
JVM_OPTIONS = "-XX:-DontCompileHugeMethods"
JAVA_OPTION_KEYS = ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")


# Checkpoints on the local file system (embedded mode): Spark's default checkpoint file manager
# goes through Hadoop's FileContext, whose local implementation, without Hadoop's native library
# (pip's pyspark has none), forks `chmod` and `readlink` for every file it writes and renames:
# over a hundred processes per micro-batch. The FileSystem-based manager (Spark's own, rename-based,
# atomic on a local disk) needs a quarter of them and halves the micro-batch overhead outside the sink
# (docs/history/results-2026-11.md, performance history). HDFS checkpoints (the cluster) keep Spark's default.
LOCAL_CHECKPOINT_CONF = {
    "spark.sql.streaming.checkpointFileManagerClass": "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager",
}


# The scheduler pools of the streaming queries and the batch layer (weights, minimum shares),
# in local mode, where one JVM runs them all.
POOLS_FILE = Path(__file__).with_name("fairscheduler.xml")


def local_checkpoints(profile: Profile) -> bool:
    d = profile.checkpoint_dir
    return bool(d) and ("://" not in d or d.startswith("file:"))


def java_options(conf: dict) -> dict:
    """The extraJavaOptions settings: JVM_OPTIONS, then what ``conf`` adds."""
    return {k: " ".join(filter(None, [JVM_OPTIONS, conf.get(k, "")])) for k in JAVA_OPTION_KEYS}


def submit_confs() -> list[str]:
    """spark-submit arguments for JVM_OPTIONS (a driver's options must be set before it starts)."""
    return [a for k, v in java_options({}).items() for a in ("--conf", f"{k}={v}")]


def get_spark(profile: Profile, app: str = "vendlab", ui: bool = False):
    check_java()
    from pyspark.sql import SparkSession

    b = (
        SparkSession.builder.appName(app)
        .master(profile.spark_master)
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "true" if ui else "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.scheduler.mode", "FAIR")
        .config("spark.sql.streaming.noDataMicroBatches.enabled", "false")
        .config("spark.sql.adaptive.enabled", "false")
        # The parse step is one wide projection with a long CASE (the dead-letter reason);
        # constraint propagation over it costs seconds per micro-batch and buys nothing here.
        .config("spark.sql.constraintPropagation.enabled", "false")
        # a stock reading naming a product twice keeps its last value (jobs/parse.py)
        .config("spark.sql.mapKeyDedupPolicy", "LAST_WIN")
    )
    local = LOCAL_CHECKPOINT_CONF if local_checkpoints(profile) else {}
    if profile.spark_master.startswith("local"):  # one JVM runs every query (a cluster app runs one job)
        local = {**local, "spark.scheduler.allocation.file": str(POOLS_FILE)}
    for k, v in {**local, **profile.spark_conf, **java_options(profile.spark_conf)}.items():
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
