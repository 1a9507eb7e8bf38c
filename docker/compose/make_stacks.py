#!/usr/bin/env python3
"""Writes kappa/docker-compose.yml and lambda/docker-compose.yml from docker/compose/, and their scaled-out
overlays kappa/docker-compose.ha.yml and lambda/docker-compose.ha.yml (from <stack>.ha.in.yml: three Kafka
brokers, three Cassandra nodes; started by `start_<stack>.py --nodes 3`): the services both stacks
run (Kafka, Kafka UI, the Spark master and workers, Cassandra, Grafana, the generator and the validation
consumer, and the x-spark / x-job templates) are written once, in shared.in.yml; each stack's own part (its
header, its Spark settings, HDFS and YARN for lambda, its jobs, networks and volumes) in <stack>.in.yml.

    python3 docker/compose/make_stacks.py            write both files
    python3 docker/compose/make_stacks.py --check    exit 1 if a written file is not what the sources make

The sources are compose text, not YAML to merge: the written files keep every comment, read the same as
before, and stay plain compose files for `docker compose`, the start scripts (which read mem_limit from the
text) and the local stack (vendlab.localstack). docs/compose.md says why not compose's `include:`/`extends`.
Directives, each on its own line of a .in.yml file (a line "#@ ..." is a note left out of the output):
    #@include NAME         the fragment NAME of shared.in.yml (its lines from "#@fragment NAME" to the next,
                           less trailing blank lines)
    #@set NAME VALUE       the value of {{NAME}} in the fragments ({{stack}} is the stack's name); a line of a
                           fragment that holds only a placeholder whose value is empty is left out
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STACKS = ("kappa", "lambda")
# written file in <stack>/ -> its source in docker/compose/
FILES = {"docker-compose.yml": "{stack}.in.yml", "docker-compose.ha.yml": "{stack}.ha.in.yml"}
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def fragments() -> dict[str, str]:
    out: dict[str, str] = {}
    name = None
    for line in (HERE / "shared.in.yml").read_text().splitlines(keepends=True):
        if line.startswith("#@fragment "):
            name = line.split()[1]
            out[name] = ""
        elif name is not None:
            out[name] += line
    return {name: text.rstrip("\n") + "\n" for name, text in out.items()}


def render(stack: str, source: str = "{stack}.in.yml") -> str:
    shared = fragments()
    values = {"stack": stack}
    source = source.format(stack=stack)
    out = [
        f"# Made by docker/compose/make_stacks.py from docker/compose/{source} and shared.in.yml: edit "
        "those,\n# then run `python3 docker/compose/make_stacks.py` (tests/test_compose_shared.py checks it).\n"
    ]
    for line in (HERE / source).read_text().splitlines(keepends=True):
        if line.startswith("#@ "):
            continue  # a note for the reader of the source
        if line.startswith("#@set "):
            _, name, *value = line.split(maxsplit=2)
            values[name] = value[0].strip() if value else ""
        elif line.startswith("#@include "):
            name = line.split()[1]
            if name not in shared:
                raise SystemExit(f"{source} includes {name!r}; shared.in.yml has {', '.join(shared)}")
            out.append(shared[name])
        else:
            out.append(line)
    lines = []
    for line in "".join(out).splitlines(keepends=True):
        for name in PLACEHOLDER.findall(line):
            if name not in values:
                raise SystemExit(f"{{{{{name}}}}} has no value for {stack}: add '#@set {name} ...' to {source}")
        if PLACEHOLDER.fullmatch(line.strip()) and not values[line.strip()[2:-2]]:
            continue
        lines.append(PLACEHOLDER.sub(lambda m: values[m.group(1)], line))
    return "".join(lines)


def expected() -> dict[Path, str]:
    return {ROOT / stack / name: render(stack, source) for stack in STACKS for name, source in FILES.items()}


def main(argv: list[str]) -> int:
    stale = [path for path, text in expected().items() if not path.exists() or path.read_text() != text]
    if argv[1:] == ["--check"]:
        for path in stale:
            print(
                f"{path.relative_to(ROOT)} is not what docker/compose/ makes: python3 docker/compose/make_stacks.py",
                file=sys.stderr,
            )
        return 1 if stale else 0
    if argv[1:]:
        print("usage: python3 docker/compose/make_stacks.py [--check]", file=sys.stderr)
        return 2
    for path, text in expected().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
