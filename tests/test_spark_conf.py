"""The Spark settings every job gets from vendlab.spark (embedded and cluster alike)."""

from vendlab import orchestrate
from vendlab.config import compose, embedded
from vendlab.spark import JVM_OPTIONS, LOCAL_CHECKPOINT_CONF, java_options, local_checkpoints


def test_the_running_session_compiles_huge_generated_methods_and_keeps_the_last_duplicate_map_key(spark):
    conf = spark.sparkContext.getConf()
    assert JVM_OPTIONS in conf.get("spark.driver.extraJavaOptions")
    assert JVM_OPTIONS in conf.get("spark.executor.extraJavaOptions")
    assert spark.conf.get("spark.sql.mapKeyDedupPolicy") == "LAST_WIN"
    # the embedded session checkpoints on the local disk: the manager that forks less
    for k, v in LOCAL_CHECKPOINT_CONF.items():
        assert spark.conf.get(k) == v
    row = spark.sql("SELECT map_from_entries(map_entries(from_json('{\"a\":1,\"a\":2}', 'map<string,int>')))['a'] AS a")
    assert row.first().a == 2


def test_java_options_keep_what_a_profile_adds():
    opts = java_options({"spark.driver.extraJavaOptions": "-Dx=1"})
    assert opts["spark.driver.extraJavaOptions"] == f"{JVM_OPTIONS} -Dx=1"
    assert opts["spark.executor.extraJavaOptions"] == JVM_OPTIONS


def test_only_local_checkpoints_change_the_checkpoint_manager(tmp_path):
    assert local_checkpoints(embedded(tmp_path))
    assert not local_checkpoints(compose(tmp_path))  # HDFS: Spark's default manager


def test_cluster_submits_carry_the_jvm_options():
    for cmd in (orchestrate.standalone_submit("kappa", cores=1), orchestrate.yarn_submit("lambda-batch")):
        assert f"spark.driver.extraJavaOptions={JVM_OPTIONS}" in cmd
        assert cmd.index(f"spark.driver.extraJavaOptions={JVM_OPTIONS}") < cmd.index(orchestrate.SUBMIT)
