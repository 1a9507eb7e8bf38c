"""The safety of an embedded data dir (docs/reliability.md, "Your data dir").

- **One writer at a time**: ``hold(data_dir, what)`` takes an exclusive ``flock`` on
  ``DIR/.vendlab.lock`` before anything else is written and keeps it for the whole command
  (``run``, ``demo``, ``generate``, ``replay``). A second writer is refused at once with the
  pid and command of the holder. The kernel drops a ``flock`` when its process dies, however
  it dies, so a lock left by a killed run is never held: the next writer takes it over and says
  whose it was. Readers (``views``, ``answer``, ``dashboard``) never take it.
- **Relocatable**: Spark writes absolute paths into its checkpoints (the file source's list of
  log segments it has read) and into the master dataset's commit log (``_spark_metadata``).
  ``DIR/.vendlab-location`` records where they were written; a writer that finds the data dir
  somewhere else (moved or copied) rewrites those paths before any query starts.
- **Checkpoints and store bound together**: every streaming query's checkpoint has an id (its
  ``metadata`` file); the view store records, per job, the id of the query whose micro-batches it
  applied, and the master dataset records the id of the ingest query that wrote it. A mismatch
  (checkpoint lost, store lost or from another run, master dataset lost) is refused with the
  command that rebuilds the views from the log, ``vendlab replay --data-dir DIR --replace``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

LOCK_NAME = ".vendlab.lock"
LOCATION_NAME = ".vendlab-location"
MASTER_ID_NAME = "_vendlab_ingest_id"  # in master/: Spark's readers skip names starting with "_"


class DataDirError(Exception):
    """A data dir problem the user can fix; the message says how. The CLI exits 2."""


def rebuild_command(data_dir: Path) -> str:
    return f"vendlab replay --data-dir {data_dir} --replace"


# -- the lock ------------------------------------------------------------------------------
_held: dict[Path, list] = {}  # data dir -> [fd, depth]: reentrant within one process


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode(errors="replace").strip()
        return json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}


def _describe(h: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h["started"])) if h.get("started") else "?"
    return f"pid {h.get('pid', '?')} ({h.get('command', '?')}, since {since})"


def acquire(data_dir: Path, what: str) -> None:
    """Take the data dir's write lock (reentrant); DataDirError if another process holds it."""
    d = Path(data_dir).resolve()
    if d in _held:
        _held[d][1] += 1
        return
    try:
        fd = os.open(d / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise DataDirError(
            f"cannot create the lock file in data dir {d} ({e.strerror}); choose a writable --data-dir"
        ) from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        pid = holder.get("pid", "?")
        raise DataDirError(
            f"data dir {d} is in use by another vendlab process: {_describe(holder)}. Two writers would "
            f"corrupt it, so this one did not start. Wait for it to finish, or stop it (kill {pid}) and "
            f"continue its run with `vendlab run --arch ... --data-dir {d} --resume`; or use another "
            f"--data-dir. Reading works meanwhile (vendlab views / answer / dashboard)."
        ) from None
    stale = _read_holder(fd)
    if stale.get("pid") and stale.get("pid") != os.getpid():
        print(
            f"vendlab: data dir {d}: taking over the lock left by {_describe(stale)}, which is no longer "
            f"running (killed or crashed)",
            file=sys.stderr,
            flush=True,
        )
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps({"pid": os.getpid(), "command": what, "started": time.time()}).encode())
    os.fsync(fd)
    _held[d] = [fd, 1]


def release(data_dir: Path) -> None:
    d = Path(data_dir).resolve()
    entry = _held.get(d)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] > 0:
        return
    del _held[d]
    fd = entry[0]
    try:
        os.ftruncate(fd, 0)  # an empty lock file: nobody held it last
    except OSError:
        pass
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextlib.contextmanager
def hold(data_dir: Path, what: str):
    acquire(data_dir, what)
    try:
        yield
    finally:
        release(data_dir)


def is_held_here(data_dir: Path) -> bool:
    return Path(data_dir).resolve() in _held


# -- relocation ----------------------------------------------------------------------------
def _uri_forms(d: Path) -> list[str]:
    """How Hadoop may have written the data dir's path: as a file URI (encoded) or plain."""
    return list(dict.fromkeys([d.as_uri(), "file:" + str(d), "file://" + str(d)]))


def path_files(d: Path) -> list[Path]:
    """The text files in which Spark keeps absolute paths: file sources' logs in every checkpoint
    and the master dataset's commit log."""
    out = []
    for root in list((d / "checkpoints").glob("*/sources")) + [d / "master" / "_spark_metadata"]:
        if root.is_dir():
            out += [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return out


def relocate(data_dir: Path, log=None) -> int:
    """If the data dir was written somewhere else (moved or copied), rewrite the paths Spark
    recorded; then record where it is now. Returns the number of files rewritten."""
    d = Path(data_dir).resolve()
    loc = d / LOCATION_NAME
    old = loc.read_text().strip() if loc.exists() else None
    rewritten = 0
    if old and Path(old) != d:
        forms = [(o, n) for o, n in zip(_uri_forms(Path(old)), _uri_forms(d))]
        for f in path_files(d):
            text = f.read_text()
            new = text
            for o, n in forms:
                # a path is the prefix followed by "/": never rewrite /a/bc when moving /a/b
                new = new.replace(o + "/", n + "/")
            if new != text:
                tmp = f.with_name("." + f.name + ".relocating")
                tmp.write_text(new)
                tmp.replace(f)
                crc = f.with_name("." + f.name + ".crc")  # Hadoop's checksum of the old content
                crc.unlink(missing_ok=True)
                rewritten += 1
        (log or _stderr)(
            f"vendlab: data dir moved from {old} to {d}: rewrote the paths in {rewritten} "
            f"checkpoint and master-dataset files"
        )
    if old is None or Path(old) != d:
        tmp = d / (LOCATION_NAME + ".tmp")
        tmp.write_text(str(d) + "\n")
        tmp.replace(loc)
    return rewritten


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- checkpoints and store, bound together ---------------------------------------------------
def checkpoint_id(ckpt: Path) -> str | None:
    """The id of the streaming query a checkpoint belongs to (Spark's ``metadata`` file)."""
    meta = Path(ckpt) / "metadata"
    if not meta.exists():
        return None
    try:
        return json.loads(meta.read_text().splitlines()[0])["id"]
    except (ValueError, KeyError, IndexError, OSError):
        raise DataDirError(
            f"the checkpoint {ckpt} is damaged (unreadable metadata); "
            f"rebuild the views from the log: `{rebuild_command(Path(ckpt).parents[1])}`"
        ) from None


def checkpoint_has_batches(ckpt: Path) -> bool:
    offsets = Path(ckpt) / "offsets"
    return offsets.is_dir() and any(not p.name.startswith(".") for p in offsets.iterdir())


def new_checkpoint(ckpt: Path, query_id: str) -> None:
    """Create a checkpoint folder whose ``metadata`` names ``query_id``: Spark adopts the id of an
    existing metadata file, so the store can be bound to the query before it first runs."""
    ckpt = Path(ckpt)
    ckpt.mkdir(parents=True, exist_ok=True)
    tmp = ckpt / ".metadata.vendlab-tmp"
    tmp.write_text(json.dumps({"id": query_id}) + "\n")
    tmp.replace(ckpt / "metadata")


def bind_stream(data_dir: Path, ckpt: Path, job: str, store, what: str) -> None:
    """Make sure the checkpoint of ``job`` and the store's record of its applied batches belong to
    the same query; a fresh job gets a checkpoint id bound in the store first."""
    d = Path(data_dir)
    cid = checkpoint_id(ckpt)
    bound = store.binding(job)
    applied = store.last_batch_id(job)
    if cid is not None and cid == bound:
        return
    fix = f"Rebuild the views from the log: `{rebuild_command(d)}`"
    if cid is None:
        if applied >= 0:
            raise DataDirError(
                f"{what}: its checkpoint ({ckpt}) is missing, but the view store holds {applied + 1} "
                f"micro-batches it applied. A new checkpoint would restart at micro-batch 0, which the store "
                f"would skip as already applied (data silently missing), so nothing was started. {fix}"
            )
        qid = bound or str(uuid.uuid4())
        store.bind(job, qid)  # the store first: a crash before the checkpoint exists is a fresh start again
        new_checkpoint(ckpt, qid)
        return
    if not checkpoint_has_batches(ckpt) and applied < 0:
        store.bind(job, cid)  # started, never ran a batch: nothing can disagree
        return
    if bound is None and applied >= 0:
        store.bind(job, cid)  # a store written before stores recorded their queries
        return
    if bound is None:
        raise DataDirError(
            f"{what}: its checkpoint ({ckpt}) has processed part of the log, but the view store "
            f"({d / 'views.sqlite'}) holds nothing of it (deleted, replaced, or new): resuming would leave "
            f"that part out of the views, so nothing was started. {fix}"
        )
    raise DataDirError(
        f"{what}: the view store belongs to another query (store {bound}, checkpoint {cid}: one of them "
        f"comes from another run or copy), so nothing was started. {fix}"
    )


def processed_checkpoints(data_dir: Path) -> list[str]:
    """The queries whose checkpoints in the data dir have processed part of the log."""
    root = Path(data_dir) / "checkpoints"
    return sorted(p.name for p in root.iterdir() if checkpoint_has_batches(p)) if root.is_dir() else []


def check_store_present(data_dir: Path) -> None:
    """views.sqlite is gone but checkpoints have processed the log: say so (before a new, empty
    store is created)."""
    d = Path(data_dir)
    done = processed_checkpoints(d)
    if done:
        raise DataDirError(
            f"the view store {d / 'views.sqlite'} is missing, but the checkpoints of {', '.join(done)} have processed "
            f"part of the log: resuming would leave that part out of the views, so nothing was started. "
            f"Rebuild the views from the log: `{rebuild_command(d)}`"
        )


def bind_master(data_dir: Path, ckpt: Path, master: Path) -> None:
    """Lambda's master dataset and its ingest checkpoint: both or neither, from the same query."""
    d = Path(data_dir)
    cid = checkpoint_id(ckpt)
    has_master = (master / "_spark_metadata").is_dir()
    mid_file = master / MASTER_ID_NAME
    mid = mid_file.read_text().strip() if mid_file.exists() else None
    fix = f"Rebuild from the log: `{rebuild_command(d)}`"
    if cid is None:
        if has_master:
            raise DataDirError(
                f"lambda's ingest checkpoint ({ckpt}) is missing but the master dataset ({master}) holds what "
                f"it wrote: a new ingest query would skip the log's first part, so nothing was started. {fix}"
            )
        qid = str(uuid.uuid4())
        master.mkdir(parents=True, exist_ok=True)
        mid_file.write_text(qid + "\n")
        new_checkpoint(ckpt, qid)
        return
    if checkpoint_has_batches(ckpt) and not has_master:
        raise DataDirError(
            f"lambda's master dataset ({master}) is missing or incomplete (no _spark_metadata), but the ingest "
            f"checkpoint ({ckpt}) says the log was written there: the batch layer would lose that part of "
            f"history, so nothing was started. {fix}"
        )
    if mid is not None and mid != cid:
        raise DataDirError(
            f"lambda's master dataset ({master}) was written by another ingest query than its checkpoint's "
            f"({mid} vs {cid}: one comes from another run or copy), so nothing was started. {fix}"
        )
    if mid is None:
        master.mkdir(parents=True, exist_ok=True)
        mid_file.write_text(cid + "\n")


def remove_tree(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
