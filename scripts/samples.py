#!/usr/bin/env python3
"""Regenerate the sample outputs in README.md and docs/*.md by running the documented commands.

A sample is a fenced code block right after a marker line that names the commands it shows:

    <!-- sample: SETUP && ... && COMMAND -->
    ```
    $ COMMAND
    what COMMAND printed
    ```

or, for output with numbers that depend on the machine and the moment (events generated in a
timed run, latency, throughput):

    <!-- sample: COMMAND | varies: what varies -->

The commands run as written (seeds and flags included) with bash, in one scratch folder per run of
this script (relative paths such as ``data/week`` land there), with ``vendlab`` and ``python`` of
this checkout first on the PATH. A setup command shared by several samples runs once. The block
becomes ``$ COMMAND`` and what it printed (stdout, or stderr when stdout is empty: error messages).
Every command of a marker must also be shown in the document's text (tests/test_doc_samples.py checks
it), so what a reader copies is what made the sample.

    python scripts/samples.py                 # rewrite every sample (runs Spark for the timed ones: minutes)
    python scripts/samples.py --exact-only    # only the samples without "varies" (seconds)
    python scripts/samples.py --check         # exit 1 and show the difference where a sample is stale

tests/test_doc_samples.py re-runs the exact samples and fails when one no longer matches; for the
``varies`` ones it checks the parts that do not vary (layout, exactness, the injected shares).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(
    r"^<!-- sample: (?P<cmds>.+?)(?: \| varies: (?P<varies>.+?))? -->\n"
    r"(?P<fence>```[^\n]*)\n(?P<body>.*?)^```$",
    re.S | re.M,
)
TIMEOUT_S = 1200


@dataclass
class Sample:
    path: Path
    start: int  # offsets of the code block's body in the file
    end: int
    commands: list[str]
    varies: str | None
    body: str

    @property
    def command(self) -> str:
        return self.commands[-1]

    @property
    def name(self) -> str:
        return f"{self.path.name}: {self.command}"


def documents(root: Path = ROOT) -> list[Path]:
    return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


def find(root: Path = ROOT) -> list[Sample]:
    out = []
    for path in documents(root):
        text = path.read_text()
        for m in MARKER.finditer(text):
            cmds = [c.strip() for c in m.group("cmds").split(" && ")]
            out.append(Sample(path, m.start("body"), m.end("body"), cmds, m.group("varies"), m.group("body")))
    return out


class Runner:
    """Runs commands in one scratch folder, with this checkout's ``vendlab`` and ``python``."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.bin = self.workdir / ".bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        # wrappers, not symlinks: a venv's python knows it is one only when called by its own path
        for name, line in (
            ("vendlab", f'exec "{sys.executable}" -m vendlab.cli "$@"'),
            ("python", f'exec "{sys.executable}" "$@"'),
        ):
            (self.bin / name).write_text(f"#!/bin/sh\n{line}\n")
            (self.bin / name).chmod(0o755)
        self.env = {
            **os.environ,
            "PATH": f"{self.bin}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "PYTHONWARNINGS": "ignore",
        }
        self.done: set[str] = set()

    def run(self, command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=TIMEOUT_S,
        )

    def output(self, sample: Sample) -> str:
        """The block's new body: ``$ COMMAND`` and what it printed."""
        for setup in sample.commands[:-1]:
            if setup in self.done:
                continue
            p = self.run(setup)
            if p.returncode != 0:
                raise RuntimeError(f"{sample.name}: setup `{setup}` failed ({p.returncode}):\n{p.stderr[-3000:]}")
            self.done.add(setup)
        p = self.run(sample.command)
        text = p.stdout if p.stdout.strip() else p.stderr
        return f"$ {sample.command}\n" + text.rstrip("\n") + "\n"


def rewrite(samples: list[Sample], runner: Runner, check: bool = False, root: Path = ROOT) -> list[str]:
    """Replace each sample's body with fresh output (or, with check, only report the stale ones).
    Each file is parsed again just before it is written, so edits made while the commands ran stay."""
    stale = []
    fresh: dict[Path, dict[tuple, str]] = {}
    for s in samples:
        print(f"samples: {s.name}" + (" (varies)" if s.varies else ""), file=sys.stderr, flush=True)
        new = runner.output(s)
        if new != s.body:
            stale.append(s.name)
            if check:
                sys.stdout.writelines(
                    difflib.unified_diff(
                        s.body.splitlines(True), new.splitlines(True), f"{s.name} (doc)", f"{s.name} (now)"
                    )
                )
        fresh.setdefault(s.path, {})[tuple(s.commands)] = new
    if not check:
        for path, outputs in fresh.items():
            text = path.read_text()
            now = [x for x in find(root) if x.path == path and tuple(x.commands) in outputs]
            for x in sorted(now, key=lambda x: -x.start):  # from the end: offsets stay valid
                text = text[: x.start] + outputs[tuple(x.commands)] + text[x.end :]
            path.write_text(text)
    return stale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Regenerate the sample outputs of README.md and docs/ by running the documented commands."
    )
    ap.add_argument("--exact-only", action="store_true", help="skip the samples marked 'varies' (timed runs)")
    ap.add_argument("--check", action="store_true", help="do not write: show stale samples, exit 1 if any")
    ap.add_argument("--match", help="only the samples whose command contains this text")
    ap.add_argument("--workdir", type=Path, help="scratch folder (default: a new temporary one)")
    args = ap.parse_args(argv)
    samples = [s for s in find() if not (args.exact_only and s.varies) and (not args.match or args.match in s.command)]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vendlab-samples-"))
    stale = rewrite(samples, Runner(workdir), check=args.check)
    verb = "stale" if args.check else "rewritten"
    print(
        f"samples: {len(samples)} run in {workdir}, {len(stale)} {verb}" + (": " + "; ".join(stale) if stale else ""),
        file=sys.stderr,
    )
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
