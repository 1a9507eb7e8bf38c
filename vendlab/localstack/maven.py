"""The local stack's jars: one pom per component (maven/<component>/pom.xml), resolved by ``mvn`` into
Maven's local repository (~/.m2/repository). The first resolution downloads, with Maven's own progress
on the terminal; later ones read the local repository (seconds). Each component gets its own class
path: Kafka, Cassandra and Hadoop bring different versions of the same libraries.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from vendlab.spark import JAVA_HINT, JavaMissing, check_java

POMS = Path(__file__).resolve().parent / "maven"
COMPONENTS = ("kafka", "cassandra", "hadoop", "spark-kafka")
MAVEN_HINT = (
    "Maven is needed to fetch the local stack's jars. Install it with: "
    "sudo apt-get install -y maven  (or run `make test`, whose bootstrap does it for you)"
)


def cache_dir() -> Path:
    """Where the resolved class paths are remembered (the jars stay in Maven's local repository)."""
    return Path(os.environ.get("VENDLAB_MAVEN_CACHE", Path.home() / ".cache" / "vendlab" / "localstack"))


class ToolMissing(JavaMissing):
    """Java or Maven is missing; the message names the command that installs it."""


def check_tools() -> tuple[str, str]:
    """(java, mvn) executables, or ToolMissing with the install command."""
    try:
        java = check_java()
    except JavaMissing as e:
        raise ToolMissing(str(e) or JAVA_HINT) from e
    mvn = shutil.which("mvn")
    if not mvn:
        raise ToolMissing(MAVEN_HINT)
    return java, mvn


def pom(component: str) -> Path:
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}: allowed are {', '.join(COMPONENTS)}")
    return POMS / component / "pom.xml"


def pinned_version(component: str) -> str:
    """The version the component's pom pins (its single <version.X> property)."""
    m = re.search(r"<version\.(kafka|cassandra|hadoop|spark)>([^<]+)</", pom(component).read_text())
    if not m:
        raise ValueError(f"{pom(component)} pins no version property")
    return m.group(2)


def classpath(component: str, cache_dir: Path, quiet: bool = False) -> list[str]:
    """The component's jars (absolute paths in Maven's local repository), resolving them when the
    pom changed since the cached answer or a jar went missing."""
    _, mvn = check_tools()
    p = pom(component)
    digest = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / f"classpath-{component}-{digest}.txt"
    if out.exists():
        jars = [j for j in out.read_text().strip().split(":") if j]
        if jars and all(Path(j).exists() for j in jars):
            return jars
    if not quiet:
        print(
            f"vendlab: resolving the {component} jars with Maven ({p}); the first time downloads them "
            f"into Maven's local repository",
            file=sys.stderr,
            flush=True,
        )
    cmd = [
        mvn,
        "-B",
        "-f",
        str(p),
        "dependency:build-classpath",
        f"-Dmdep.outputFile={out}",
        "-Dmdep.includeScope=runtime",
    ]
    returncode, output = _run_with_progress(cmd, component, quiet)
    if returncode != 0:
        tail = "\n  ".join(output[-8:])
        raise RuntimeError(
            f"mvn could not resolve the {component} jars (exit {returncode}):\n  {tail}\n"
            f"  run it yourself to see everything: {' '.join(cmd[:-2])}"
        )
    return [j for j in out.read_text().strip().split(":") if j]


PROGRESS_EVERY_S = 5.0


def _run_with_progress(cmd: list[str], component: str, quiet: bool) -> tuple[int, list[str]]:
    """Runs mvn, reading its output as it comes: unless quiet, a line every PROGRESS_EVERY_S seconds with the
    artifacts downloaded so far (a first download of the jars takes minutes), an ERROR line at once, and a
    summary at the end. Returns (exit code, output lines)."""
    output: list[str] = []
    downloads, kb, started, shown = 0, 0.0, time.monotonic(), time.monotonic()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            output.append(line)
            if "Downloaded from" in line:
                downloads += 1
                m = _SIZE.search(line)
                if m:
                    kb += float(m.group(1)) * (1024 if m.group(2) == "MB" else 1 if m.group(2) == "kB" else 1 / 1024)
            if quiet:
                continue
            if "ERROR" in line:
                print("  " + line.split("] ", 1)[-1][:160], file=sys.stderr, flush=True)
            if downloads and time.monotonic() - shown >= PROGRESS_EVERY_S:
                shown = time.monotonic()
                print(
                    f"  {component}: {downloads} artifacts downloaded ({kb / 1024:.1f} MB) in "
                    f"{shown - started:.0f} s ...",
                    file=sys.stderr,
                    flush=True,
                )
        returncode = proc.wait()
    if not quiet and downloads:
        print(
            f"  {component}: {downloads} artifacts downloaded ({kb / 1024:.1f} MB) in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    return returncode, output


# Maven's transfer line: "Downloaded from central: https://.../x.jar (1.2 MB at 3.4 MB/s)"
_SIZE = re.compile(r"\((\d+(?:\.\d+)?) (B|kB|MB) at ")


def resolve_all(cache_dir: Path, components=COMPONENTS, quiet: bool = False) -> dict[str, list[str]]:
    return {c: classpath(c, cache_dir, quiet=quiet) for c in components}


def jar_version(jars: list[str], artifact: str) -> str | None:
    """The version of ``artifact`` in a class path (from its jar's file name)."""
    for j in jars:
        name = Path(j).name
        if name.startswith(artifact + "-") and name.endswith(".jar"):
            return name[len(artifact) + 1 : -4]
    return None


if __name__ == "__main__":  # scripts/bootstrap.sh: resolve every component once, showing the download
    import argparse

    ap = argparse.ArgumentParser(description="resolve the local stack's jars with Maven")
    ap.add_argument("--cache", type=Path, default=cache_dir())
    a = ap.parse_args()
    try:
        cps = resolve_all(a.cache)
    except (ToolMissing, RuntimeError) as e:
        print(f"vendlab: {e}", file=sys.stderr)
        sys.exit(2)
    print(
        "vendlab: local stack jars ready: " + ", ".join(f"{c} ({len(j)} jars)" for c, j in cps.items()), file=sys.stderr
    )
