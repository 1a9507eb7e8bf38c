"""Current stock per machine x product, derived from the hourly views.

stock now = stock at the anchor + restocks since - sales since, where the anchor is the machine's
latest hour with telemetry readings and no restock (a restock in the middle of an hour would mix
readings from before and after it):

* stock at the anchor = mean reported stock of the hour's readings, which is the stock at their
  mean time t (stock falls about linearly within an hour; readings come evenly);
* sales of the anchor hour after t = its sales x (hour end - t) / (hour end - hour start) (the
  hour end is "now" when the anchor is the hour still filling);
* later hours count whole (restocks are exact events; sales are exact sums).

Errors come from lost or corrupted events (dead letters) and from the within-hour interpolation;
``vendlab answer --evaluate`` and tests/test_models.py measure them against the generator's truth.
"""

from __future__ import annotations

import numpy as np

from vendlab.models.hourly import HOUR_MS, Hourly


def estimate(d: Hourly) -> tuple[np.ndarray, np.ndarray]:
    """(stock (M, P) float, NaN where no reading yet; anchor hour per machine, -1 if none)."""
    M, P, H = d.items.shape
    stock = np.full((M, P), np.nan)
    anchor = np.full(M, -1)
    if H == 0:
        return stock, anchor
    now = d.now_ms()
    n = d.readings()
    restock_hour = d.restocked.sum(axis=1) > 0  # (M, H)
    ok = (n > 0) & ~restock_hour
    flow = d.restocked - d.items  # (M, P, H)
    # flows after each hour: suffix sums (exclusive)
    after = np.concatenate([np.cumsum(flow[:, :, ::-1], axis=2)[:, :, ::-1][:, :, 1:], np.zeros((M, P, 1))], axis=2)
    for m in range(M):
        hs = np.flatnonzero(ok[m])
        if not len(hs):
            continue
        a = int(hs[-1])
        anchor[m] = a
        start = float(d.hour_ms(a))
        end = min(start + HOUR_MS, now) if a == H - 1 else start + HOUR_MS
        t_mean = start + d.tel["offset_ms"][m, a] / n[m, a]
        frac = np.clip((end - t_mean) / max(end - start, 1.0), 0.0, 1.0)
        at_anchor = d.stock_sum[m, :, a] / n[m, a]
        stock[m] = at_anchor - d.items[m, :, a] * frac + after[m, :, a]
    return np.maximum(stock, 0.0), anchor


def hourly_levels(d: Hourly) -> np.ndarray:
    """(M, P, H) mean reported stock per hour (NaN without readings): in stock or not, per hour."""
    n = d.readings()[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, d.stock_sum / np.maximum(n, 1), np.nan)
