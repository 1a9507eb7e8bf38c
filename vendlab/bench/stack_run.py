"""What the experiments on a local stack (vendlab.bench.node_loss, scripts/perf/soak.py) and the tests on the real
services do alike: run a start script as a user runs it, and read the views to compare at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_script(stack: str, stack_dir: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    """``./STACK/start_STACK.py --local DIR ARGS`` with this Python (the project's venv), from the project's root,
    without the caller's VENDLAB_* variables (the stack's folder holds the settings), as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VENDLAB_")}
    cmd = [sys.executable, str(ROOT / stack / f"start_{stack}.py"), "--local", str(stack_dir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def run_start_script(stack: str, stack_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """:func:`start_script` for a command-line experiment: the command echoed, the end of its output shown, and a
    failure ends the experiment with the script's exit code and its error output."""
    print(f"$ {stack}/start_{stack}.py --local {stack_dir} {' '.join(args)}", flush=True)
    r = start_script(stack, stack_dir, *args)
    sys.stdout.write(r.stdout[-3000:])
    if r.returncode:
        sys.stderr.write(r.stderr[-3000:])
        raise SystemExit(f"start_{stack}.py exited {r.returncode}")
    return r


def final_views(store, stack_name: str) -> tuple[dict, dict]:
    """(the architecture's user-facing view, validation) of items per product, zeros dropped; the stack is named
    after its architecture."""
    from vendlab import architectures
    from vendlab.store import base

    view = architectures.get(stack_name).read(store, base.ITEMS_BY_PRODUCT)
    validation = store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT)
    return {k: v for k, v in view.items() if v}, {k: v for k, v in validation.items() if v}
