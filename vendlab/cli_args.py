"""The argument types and help texts shared by the ``vendlab`` commands (vendlab.cli and the
command groups in their own modules: cluster, bench, ...): a bad value is an argparse error that
says what is wrong and what is allowed (exit 2, no traceback)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def number(kind, lo=None, lo_open=False, hi=None, hi_open=False, what="value"):
    """An argparse type: ``kind`` (int or float), finite, within the bounds (open or closed)."""

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number: {what} must be a finite number")
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise argparse.ArgumentTypeError(f"{text} is too small: {what} must be {'>' if lo_open else '>='} {lo}")
        if hi is not None and (v >= hi if hi_open else v > hi):
            raise argparse.ArgumentTypeError(f"{text} is too large: {what} must be {'<' if hi_open else '<='} {hi}")
        return v

    return parse


positive = number(float, lo=0, lo_open=True, what="it")
fraction = number(float, lo=0, hi=1, hi_open=True, what="a fraction in [0, 1)")
seed_type = number(int, lo=0, hi=2**32 - 1, what="a seed")
# The documented ranges of the numeric flags (--help shows them; docs/reliability.md).
MAX_RATE = 10_000_000
MAX_TIME_SCALE = 86_400  # a simulated day per wall second
MAX_DURATION = 86_400
rate_type = number(float, lo=0, lo_open=True, hi=MAX_RATE, what="the rate (events/s)")
time_scale_type = number(float, lo=0, lo_open=True, hi=MAX_TIME_SCALE, what="the time scale")
duration_type = number(float, lo=0, lo_open=True, hi=MAX_DURATION, what="the duration (s)")
batch_interval_type = number(float, lo=0.1, hi=3600, what="the batch interval (s)")
events_type = number(int, lo=1, hi=1_000_000_000, what="the number of events")
segment_lines_type = number(int, lo=1, hi=1_000_000, what="lines per segment")


def data_dir_type(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: give the data dir's folder, e.g. --data-dir data/run1")
    return Path(text)


def check_time_per_event(parser: argparse.ArgumentParser, args) -> None:
    """--time-scale / --rate is the simulated time per event: bounded (vendlab.world.generator)."""
    from vendlab.world.generator import MAX_SIM_S_PER_EVENT, MIN_SIM_S_PER_EVENT

    rate, scale = getattr(args, "rate", None), getattr(args, "time_scale", None)
    if rate is None or scale is None:
        return
    per_event = scale / rate
    if not MIN_SIM_S_PER_EVENT <= per_event <= MAX_SIM_S_PER_EVENT:
        parser.error(
            f"--time-scale / --rate is {per_event:.3g} simulated seconds per event; it must be in "
            f"[{MIN_SIM_S_PER_EVENT:g}, {MAX_SIM_S_PER_EVENT:g}] (coarser, each event spans hours of the "
            f"fleet's life and memory grows with it; finer, the fleet has no time to sell): e.g. "
            f"--rate {max(1, int(scale / MAX_SIM_S_PER_EVENT))} or more, "
            f"--rate {int(scale / MIN_SIM_S_PER_EVENT):,} or less at --time-scale {scale:g}"
        )


RATE_HELP = (
    f"events per second, (0, {MAX_RATE:,}], with --time-scale / --rate in [1e-05, 60] simulated seconds per event"
)
SCALE_HELP = (
    f"simulated seconds per wall second, (0, {MAX_TIME_SCALE:,}] (default 60: a minute of machine life per second)"
)
SEED_HELP = "seed of the fleet and the events, 0..4294967295 (default 1)"
