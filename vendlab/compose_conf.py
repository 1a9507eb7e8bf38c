"""The compose stacks' configuration as the images read it. Standard library only.

One place for the images' own rules, so that the start scripts, the tests and the local stack that runs the
same services as local processes (vendlab.localstack) all read lambda/ and kappa/ the same way:

- ``kafka_properties(env)``: the apache/kafka image's rule (KafkaDockerWrapper.getServerConfigsFromEnv):
  every ``KAFKA_*`` variable but a few JVM/launcher ones becomes a server property: drop ``KAFKA_``,
  lower-case, ``_`` -> ``.``, then ``...`` -> ``-`` and ``..`` -> ``_``.
- ``hadoop_site_files(text)``: the apache/hadoop image's envtoconf.py: a variable ``NAME.EXT_key`` (split on
  the first ``_`` or ``.``) with a known extension writes ``key`` into the file ``name.ext``;
  ``site_xml(props)`` renders one site file as Hadoop reads it.
- ``mem_limits(compose_file)``: each service's ``mem_limit`` in MiB, read from the compose file's text
  (the start scripts have no YAML parser; tests/test_compose_memory.py checks it against PyYAML).
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.sax.saxutils import escape

# kafka.docker.KafkaDockerWrapper.ExcludeServerPropsEnv (apache/kafka core/src/main/scala/kafka/docker/)
KAFKA_EXCLUDED_ENV = frozenset(
    {
        "KAFKA_VERSION",
        "KAFKA_HEAP_OPTS",
        "KAFKA_LOG4J_OPTS",
        "KAFKA_OPTS",
        "KAFKA_JMX_OPTS",
        "KAFKA_JVM_PERFORMANCE_OPTS",
        "KAFKA_GC_LOG_OPTS",
        "KAFKA_LOG4J_ROOT_LOGLEVEL",
        "KAFKA_LOG4J_LOGGERS",
        "KAFKA_TOOLS_LOG4J_LOGLEVEL",
        "KAFKA_JMX_HOSTNAME",
    }
)
# envtoconf.py's known_formats (apache/hadoop, branch docker-hadoop-runner, scripts/envtoconf.py)
HADOOP_FORMATS = ("xml", "properties", "yaml", "yml", "env", "sh", "cfg", "conf")


def kafka_properties(env: dict[str, str]) -> dict[str, str]:
    out = {}
    for key, value in env.items():
        if key.startswith("KAFKA_") and key not in KAFKA_EXCLUDED_ENV:
            prop = key.replace("KAFKA_", "").lower().replace("_", ".").replace("...", "-").replace("..", "_")
            out[prop] = str(value)
    return out


def parse_env_file(text: str) -> dict[str, str]:
    """A compose ``env_file``: KEY=VALUE lines, # comments and blank lines ignored; a value in matching
    single or double quotes loses them (as Compose reads it)."""
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"not KEY=VALUE: {line!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def hadoop_site_files(env: dict[str, str]) -> dict[str, dict[str, str]]:
    """{'core-site.xml': {key: value}, ...} as envtoconf.py writes them (only the format-named variables;
    envtoconf also appends later variables whose name starts with a file's name: none of ours do)."""
    files: dict[str, dict[str, str]] = {}
    for key, value in env.items():
        parts = re.split(r"[_.]", key)
        if len(parts) < 2:
            continue
        name, ext = parts[0].lower(), parts[1].lower()
        if ext not in HADOOP_FORMATS:
            continue
        conf_key = key[len(name) + len(ext) + 2 :].strip()
        files.setdefault(f"{name}.{ext}", {})[conf_key] = value
    return files


def site_xml(props: dict[str, str], comment: str = "") -> str:
    lines = ['<?xml version="1.0"?>']
    if comment:
        lines.append(f"<!-- {comment} -->")
    lines.append("<configuration>")
    for k, v in props.items():
        lines.append(f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>")
    lines.append("</configuration>")
    return "\n".join(lines) + "\n"


def read_site_xml(text: str) -> dict[str, str]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(text)
    return {p.findtext("name"): p.findtext("value") for p in root.iter("property")}


def mib(text: str) -> int:
    """'768m' / '1g' / '1536M' -> MiB."""
    m = re.fullmatch(r"(\d+)([mMgG])", str(text).strip())
    if not m:
        raise ValueError(f"memory {text!r}: write it as <number>m or <number>g")
    return int(m.group(1)) * (1024 if m.group(2).lower() == "g" else 1)


def mem_limits(compose_file: Path | str) -> dict[str, int]:
    """{service: mem_limit in MiB} from a compose file written the way ours are (two-space indentation,
    ``mem_limit`` on its own line in each service, no anchors for it)."""
    limits: dict[str, int] = {}
    service = None
    in_services = False
    for line in Path(compose_file).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^\S", line):
            in_services = line.startswith("services:")
            service = None
            continue
        if not in_services:
            continue
        m = re.match(r"^  ([\w.-]+):\s*$", line)
        if m:
            service = m.group(1)
            continue
        m = re.match(r"^    mem_limit:\s*(\S+)\s*$", line)
        if m and service:
            limits[service] = mib(m.group(1))
    return limits
