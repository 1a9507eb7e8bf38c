"""Complexity of each stack, counted from the repository itself: services in its Docker
Compose file, lines of code of the modules each architecture runs, jobs, moving parts."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

# Modules each architecture's pipeline runs (shared ones count for both).
SHARED = [
    "vendlab/schema.py",
    "vendlab/jobs/parse.py",
    "vendlab/jobs/sources.py",
    "vendlab/jobs/views.py",
    "vendlab/jobs/streaming.py",
    "vendlab/store/base.py",
    "vendlab/architectures/spec.py",  # what an architecture declares, and the generic pipeline
]
MODULES = {
    "kappa": SHARED + ["vendlab/architectures/kappa.py"],
    # lambda_.py holds its jobs, the serving merge and the batch loop
    "lambda": SHARED + ["vendlab/architectures/lambda_.py", "vendlab/jobs/ingest.py", "vendlab/jobs/batch.py"],
}
JOBS = {
    "kappa": ["stream view job (kappa)"],
    "lambda": ["ingest job (log -> master dataset)", "speed job (bucketed view)", "batch job (scheduled)"],
}
# What a user's read goes through besides the jobs.
STATE = {
    "kappa": ["log (Kafka)", "checkpoints", "view store (Cassandra)"],
    "lambda": [
        "log (Kafka)",
        "master dataset (HDFS)",
        "checkpoints",
        "speed view + batch views with cutoff (Cassandra)",
        "serving merge",
    ],
}


def code_lines(path: Path) -> int:
    """Lines that are neither blank nor comments nor docstring-only lines (a plain count)."""
    n = 0
    in_doc = False
    for line in path.read_text().splitlines():
        s = line.strip()
        if in_doc:
            if s.endswith('"""'):
                in_doc = False
            continue
        if not s or s.startswith("#"):
            continue
        if s.startswith('"""'):
            if not (len(s) > 3 and s.endswith('"""')):
                in_doc = True
            continue
        n += 1
    return n


def services(compose: Path) -> list[str]:
    if not compose.exists():
        return []
    doc = yaml.safe_load(compose.read_text()) or {}
    return sorted((doc.get("services") or {}).keys())


def complexity(root: Path = ROOT) -> dict:
    out = {}
    for arch in ("kappa", "lambda"):
        svc = services(root / arch / "docker-compose.yml")
        loc = {m: code_lines(root / m) for m in MODULES[arch] if (root / m).exists()}
        out[arch] = {
            "services": svc,
            "n_services": len(svc),
            "loc": sum(loc.values()),
            "loc_by_module": loc,
            "jobs": JOBS[arch],
            "n_jobs": len(JOBS[arch]),
            "state": STATE[arch],
            "moving_parts": len(svc) + len(JOBS[arch]) + len(STATE[arch]),
        }
    return out
