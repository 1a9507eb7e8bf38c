"""Demand forecast per machine x product and the time each product will sell out.

The model: demand(machine m, product p, hour h) = level(m, p) x profile(kind of m's place, hour of day).

* ``profile`` is a daily pattern shared by all machines at the same kind of place (stations,
  offices...), estimated from every machine and product of that kind: one product at one machine
  sells a handful of items an hour, far too few to estimate 24 hourly factors per series, but the
  rhythm of a place (commuters, lunch, evenings) is common to its products and its machines.
* ``level`` is exponential smoothing (half-life ``HALF_LIFE_H`` hours) of the deseasonalised
  sales of the pair, over the hours it was in stock and in service only: an hour the product was
  sold out or the machine broken says nothing about demand (censored), so it is skipped, not
  counted as zero.
* The sell-out time is when the forecast demand, summed from now, reaches the current stock
  (``vendlab.models.stock``), interpolated within the hour; none within ``HORIZON_H`` hours = inf.

The baseline (``naive_sellout``) extrapolates the pair's sales of the last complete hour.
``statsmodels_sellout`` is the textbook alternative, kept for comparison: Holt-Winters (additive,
24-hour season) from statsmodels on each place kind's total sales, split over the kind's pairs by
their share (top-down). docs/questions.md compares the three.
"""

from __future__ import annotations

import numpy as np

from vendlab.models import stock as stock_model
from vendlab.models.hourly import HOUR_MS, Hourly
from vendlab.world.catalog import Catalog

HORIZON_H = 72
HALF_LIFE_H = 168.0
SHRINK_H = 96.0


def uncensored(d: Hourly) -> np.ndarray:
    """(M, P, H) bool: the hour's sales measure demand: the machine was in service all hour, no
    restock came, and the pair started the hour with ample stock (so it could not sell out within
    the hour: judged from the stock at the end of the hour before, never from the hour's own sales,
    which would keep the slow hours and drop the busy ones)."""
    levels = stock_model.hourly_levels(d)
    in_service = (d.readings() > 0) & ~d.out_of_service()
    no_restock = d.restocked.sum(axis=1) == 0
    end = levels - 0.5 * d.items  # about the stock at the end of each hour
    start = np.full(end.shape, np.nan)
    start[:, :, 1:] = end[:, :, :-1]
    seen = d.readings()[:, None, :] > 0
    typical = (d.items * seen).sum(axis=2) / np.maximum(seen.sum(axis=2), 1)  # (M, P) items per hour
    with np.errstate(invalid="ignore"):
        ample = np.nan_to_num(start - (3.0 * typical[:, :, None] + 3.0), nan=-1.0) >= 0
    return ample & (in_service & no_restock)[:, None, :]


def kinds_of(d: Hourly, catalog: Catalog) -> tuple[np.ndarray, list[str]]:
    by_id = {m.machine_id: m.place_kind for m in catalog.machines}
    kinds = sorted(set(by_id.values()))
    return np.array([kinds.index(by_id[m]) for m in d.machines]), kinds


def fit(d: Hourly, catalog: Catalog) -> dict:
    """Profile (kinds, 24) and level (M, P) from the data."""
    M, P, H = d.items.shape
    kind, kinds = kinds_of(d, catalog)
    unc = uncensored(d)
    hod = d.hour_of_day()
    items = np.where(unc, d.items, 0.0)
    count = unc.sum(axis=2)
    level0 = items.sum(axis=2) / np.maximum(count, 1)  # (M, P) flat mean per hour
    prof = np.full((len(kinds), 24), np.nan)
    for k in range(len(kinds)):
        mk = kind == k
        obs = items[mk].sum(axis=(0, 1))  # (H,)
        exp = (level0[mk][:, :, None] * unc[mk]).sum(axis=(0, 1))  # (H,)
        for h in range(24):
            sel = hod == h
            e = exp[sel].sum()
            if e > 0:
                prof[k, h] = obs[sel].sum() / e
    known = np.nanmean(prof, axis=1) if np.isfinite(prof).any() else np.ones(len(kinds))
    known = np.where(np.isfinite(known), known, 1.0)
    prof = np.where(np.isfinite(prof), prof, known[:, None])
    prof = prof / np.maximum(prof.mean(axis=1, keepdims=True), 1e-9)
    season = prof[kind][:, hod]  # (M, H)
    w = 0.5 ** ((H - 1 - np.arange(H)) / HALF_LIFE_H)
    ww = unc * w  # (M, P, H)
    Y = (ww * d.items / np.maximum(season[:, None, :], 1e-6)).sum(axis=2)  # deseasonalised items
    E = ww.sum(axis=2)  # hours of exposure
    # pooled: machine traffic x the product mix of its kind of place (alternating fit)
    a = np.ones(M)
    b = np.full((len(kinds), P), 1.0 / P)
    for _ in range(4):
        a = Y.sum(axis=1) / np.maximum((E * b[kind]).sum(axis=1), 1e-9)
        for k in range(len(kinds)):
            mk = kind == k
            b[k] = Y[mk].sum(axis=0) / np.maximum((E[mk] * a[mk, None]).sum(axis=0), 1e-9)
    pooled = a[:, None] * b[kind]
    level = (Y + SHRINK_H * pooled) / (E + SHRINK_H)
    level = np.where((E > 0) | (E[:, :].sum(axis=1, keepdims=True) > 0), level, np.nan)
    return {"profile": prof, "level": level, "kind": kind, "kinds": kinds}


def rates(d: Hourly, model: dict, hours_ahead: int = HORIZON_H + 1) -> np.ndarray:
    """(M, P, hours_ahead) forecast items per hour for the hours from the one holding "now" on."""
    now_h = int(d.now_ms() // HOUR_MS) - d.h0
    hod = (d.h0 + now_h + np.arange(hours_ahead)) % 24
    season = model["profile"][model["kind"]][:, hod]  # (M, A)
    return np.nan_to_num(model["level"])[:, :, None] * season[:, None, :]


def sellout_from_rates(now_ms: float, stock: np.ndarray, r: np.ndarray) -> np.ndarray:
    """First time cumulative demand reaches the stock: (M, P) epoch ms, inf if not within the rates."""
    first_frac = 1.0 - (now_ms % HOUR_MS) / HOUR_MS  # the rest of the hour holding now
    w = np.ones(r.shape[2])
    w[0] = first_frac
    dem = r * w
    cum = np.cumsum(dem, axis=2)
    M, P, A = r.shape
    out = np.full((M, P), np.inf)
    hour_start = now_ms - (now_ms % HOUR_MS)
    for m in range(M):
        for p in range(P):
            s = stock[m, p]
            if not np.isfinite(s):
                out[m, p] = np.nan
                continue
            if s <= 0:
                out[m, p] = now_ms
                continue
            k = int(np.searchsorted(cum[m, p], s))
            if k >= A:
                continue
            prev = cum[m, p, k - 1] if k else 0.0
            frac = (s - prev) / max(dem[m, p, k], 1e-12)
            if k == 0:
                out[m, p] = now_ms + frac * first_frac * HOUR_MS
            else:
                out[m, p] = hour_start + (k + frac) * HOUR_MS
    return out


def sellout(d: Hourly, catalog: Catalog, stock: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(sell-out time (M, P) epoch ms, inf = not within HORIZON_H; current stock (M, P))."""
    if stock is None:
        stock, _ = stock_model.estimate(d)
    model = fit(d, catalog)
    return sellout_from_rates(d.now_ms(), stock, rates(d, model)), stock


def naive_sellout(d: Hourly, stock: np.ndarray) -> np.ndarray:
    """Baseline: stock / sales of the pair in the last complete hour."""
    last = d.H - 2 if d.partial_last else d.H - 1
    now = d.now_ms()
    rate = d.items[:, :, last] if last >= 0 else np.zeros(stock.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        hours = np.where(rate > 0, stock / np.maximum(rate, 1e-12), np.inf)
    hours = np.where(hours <= HORIZON_H, hours, np.inf)
    out = now + hours * HOUR_MS
    return np.where(np.isfinite(stock), out, np.nan)


def statsmodels_sellout(d: Hourly, catalog: Catalog, stock: np.ndarray) -> np.ndarray:
    """Comparison: Holt-Winters (statsmodels) on each place kind's hourly sales, top-down to pairs."""
    import warnings

    from statsmodels.tsa.holtwinters import ExponentialSmoothing, SimpleExpSmoothing

    M, P, H = d.items.shape
    kind, kinds = kinds_of(d, catalog)
    unc = uncensored(d)
    now_h = int(d.now_ms() // HOUR_MS) - d.h0
    ahead = HORIZON_H + 1 + max(0, now_h - H)
    r = np.zeros((M, P, HORIZON_H + 1))
    for k in range(len(kinds)):
        mk = kind == k
        y = d.items[mk].sum(axis=(0, 1)).astype(float)
        if H < 3 or y.sum() <= 0:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if H >= 48:
                fitted = ExponentialSmoothing(
                    y, seasonal="add", seasonal_periods=24, initialization_method="estimated"
                ).fit()
            else:
                fitted = SimpleExpSmoothing(y, initialization_method="estimated").fit()
            fc = np.maximum(fitted.forecast(ahead), 0.0)[-(HORIZON_H + 1) :]
        # share of each pair in its kind's sales, over the hours the pair was in stock and in service
        tot = d.items[mk].sum(axis=(0, 1))
        num = (d.items[mk] * unc[mk]).sum(axis=2)
        den = (tot[None, None, :] * unc[mk]).sum(axis=2)
        share = np.where(den > 0, num / np.maximum(den, 1e-9), 0.0)
        r[mk] = share[:, :, None] * fc[None, None, :]
    return sellout_from_rates(d.now_ms(), stock, r)


def restock_visits(d: Hourly) -> list[list[int]]:
    """Per machine, the hour columns in which a restock visit began, as the data shows them (the
    ``restocked`` view; a visit that straddles an hour boundary is one visit, at its first hour)."""
    came = d.restocked.sum(axis=1) > 0  # (M, H)
    out = []
    for m in range(came.shape[0]):
        hs = np.flatnonzero(came[m])
        out.append([int(h) for i, h in enumerate(hs) if i == 0 or hs[i - 1] != h - 1])
    return out


def restock_schedule(d: Hourly) -> dict:
    """When each machine's next restock visit is due, from the visits the data shows.

    The interval is the median gap between a machine's consecutive visits, pooled over the fleet
    (one operator, one rhythm); a machine seen only once borrows the fleet's. Hour resolution: a
    visit seen in hour h is expected again in hour h + interval, i.e. between ``next_ms`` and
    ``next_ms`` + 1 h. ``next_ms`` is NaN where unknown (no visit seen, or no interval yet: the
    schedule needs two visits of one machine). A visit that is overdue (expected before the hour
    holding "now" and not seen) is taken as due now.
    """
    visits = restock_visits(d)
    gaps = [b - a for v in visits for a, b in zip(v, v[1:])]
    interval_h = float(np.median(gaps)) if gaps else float("nan")
    M = len(visits)
    last_ms = np.full(M, np.nan)
    next_ms = np.full(M, np.nan)
    now = d.now_ms() if not d.empty else float("nan")
    now_hour = np.floor(now / HOUR_MS) * HOUR_MS if np.isfinite(now) else float("nan")
    for m, v in enumerate(visits):
        if not v:
            continue
        last_ms[m] = float(d.hour_ms(v[-1]))
        mine = [b - a for a, b in zip(v, v[1:])]
        step = float(np.median(mine)) if mine else interval_h
        if np.isfinite(step) and step > 0:
            nxt = last_ms[m] + step * HOUR_MS
            next_ms[m] = max(nxt, now_hour)
    return {
        "interval_h": interval_h,
        "visits_seen": sum(len(v) for v in visits),
        "last_ms": last_ms,
        "next_ms": next_ms,
    }
