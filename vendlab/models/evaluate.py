"""Quality of the owner's models, graded against the generator's ground truth (manifest.json).

Sell-out forecasts are replayed: at every forecast origin (an hour boundary after a warm-up) the
model sees only the hours before it (``Hourly.until``), estimates the stock, forecasts, and its
predicted sell-out time of each machine x product is compared with the true one, for the pairs
that really sold out within ``horizon_h`` hours and before their machine's next restock visit (a
restock is scheduled by the operator, not forecast; a pair restocked before selling out has no
true sell-out time to compare with). A forecast of "not within the horizon" counts as the
horizon's end. MAE in simulated minutes, for the model, the naive baseline (last hour's rate)
and, on request, statsmodels' Holt-Winters (top-down).

Breakdown risk is trained on the first part of the history (labels from the data itself) and
tested on the rest: an alarm is a (machine, hour) whose risk is at or above the threshold chosen
on the training part (best F1 there); it is right when the machine's true breakdown (manifest)
begins within the warning lead time after that hour. Precision = right alarms / alarms; recall =
true breakdowns of the test part with at least one alarm during the lead time before them. The
constant-risk baseline alarms on every row (or none): its precision is the base rate.

Calibration (is "30 %" right 30 % of the time?) on the same test rows against the same truth: the
Brier score (mean squared difference between the risk and the 0/1 outcome; lower is better) next
to the constant risk's (the training part's base rate for every row), and a reliability table:
test rows binned by predicted risk, each bin's mean prediction against its observed frequency.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from vendlab.models import forecast, risk, stock
from vendlab.models.hourly import HOUR_MS, Hourly
from vendlab.world.catalog import Catalog


def _truth_index(manifest: dict):
    so: dict[tuple[str, str], list[int]] = defaultdict(list)
    for m, p, t in manifest.get("stockouts", []):
        so[(m, p)].append(int(t))
    visits: dict[str, list[int]] = defaultdict(list)
    for m, t in manifest.get("restock_visits", []):
        visits[m].append(int(t))
    return ({k: np.sort(v) for k, v in so.items()}, {k: np.sort(v) for k, v in visits.items()})


def evaluate_sellout(
    d: Hourly,
    catalog: Catalog,
    manifest: dict,
    horizon_h: int = 24,
    warmup_h: int = 24,
    step_h: int = 1,
    statsmodels: bool = False,
    max_origins: int | None = None,
    oracle: np.ndarray | None = None,
) -> dict:
    """``oracle``: the simulator's expected items per hour (24, M, P) (``Generator.expected_items_per_hour``):
    forecasts with the true demand rates and the estimated stock, the floor any demand model can
    reach on these pairs (demand is random: a pair that sold out was, by that fact, often busier
    than expected)."""
    so, visits = _truth_index(manifest)
    complete = d.H - 1 if d.partial_last else d.H
    origins = list(range(max(warmup_h, 1), complete, step_h))
    if max_origins and len(origins) > max_origins:
        origins = [origins[int(i)] for i in np.linspace(0, len(origins) - 1, max_origins)]
    names = ["model", "naive"] + (["statsmodels"] if statsmodels else []) + (["oracle"] if oracle is not None else [])
    errors: dict[str, list[float]] = {n: [] for n in names}
    end_ms = d.hour_ms(complete)
    for o in origins:
        dd = d.until(o)
        t0 = float(dd.now_ms())
        est, _ = stock.estimate(dd)
        preds = {"model": forecast.sellout(dd, catalog, est)[0], "naive": forecast.naive_sellout(dd, est)}
        if statsmodels:
            preds["statsmodels"] = forecast.statsmodels_sellout(dd, catalog, est)
        if oracle is not None:
            hod = (int(t0 // HOUR_MS) + np.arange(forecast.HORIZON_H + 1)) % 24
            preds["oracle"] = forecast.sellout_from_rates(t0, est, np.moveaxis(oracle[hod], 0, 2))
        for mi, m in enumerate(d.machines):
            v = visits.get(m, np.empty(0))
            next_visit = v[np.searchsorted(v, t0, side="right")] if np.any(v > t0) else np.inf
            last_visit = v[v <= t0].max() if np.any(v <= t0) else -np.inf
            for pi, p in enumerate(d.products):
                s = so.get((m, p), np.empty(0))
                if np.any((s <= t0) & (s > last_visit)):
                    continue  # sold out right now: nothing to forecast
                later = s[s > t0]
                if not len(later):
                    continue
                true = float(later[0])
                if true >= next_visit or true > t0 + horizon_h * HOUR_MS or true > end_ms:
                    continue
                for n in names:
                    pred = preds[n][mi, pi]
                    if np.isnan(pred):
                        break
                    pred = min(pred, t0 + forecast.HORIZON_H * HOUR_MS)
                    errors[n].append(abs(pred - true) / 60_000)
    out = {"origins": len(origins), "pairs": len(errors["model"]), "horizon_h": horizon_h}
    for n in names:
        e = np.array(errors[n]) if errors[n] else np.array([np.nan])
        out[n] = {
            "mae_min": _r(np.mean(e)),
            "median_abs_min": _r(np.median(e)),
            "pairs": len(errors[n]),
            "within_60_min": _r(float(np.mean(e <= 60)) if errors[n] else None, 3),
        }
    return out


def evaluate_stock(d: Hourly, manifest: dict) -> dict:
    """The stock estimate at the end of the data against the true stock there (manifest.stock)."""
    est, _ = stock.estimate(d)
    truth = manifest.get("stock") or {}
    cap = manifest.get("capacity") or {}
    err, rel = [], []
    for mi, m in enumerate(d.machines):
        for pi, p in enumerate(d.products):
            if m in truth and p in truth[m] and np.isfinite(est[mi, pi]):
                e = abs(est[mi, pi] - truth[m][p])
                err.append(e)
                rel.append(e / max(cap.get(m, {}).get(p, 1), 1))
    return {
        "pairs": len(err),
        "mae_units": _r(np.mean(err)) if err else None,
        "mae_share_of_capacity": _r(np.mean(rel), 4) if rel else None,
    }


def evaluate_risk(d: Hourly, manifest: dict, lead_h: int = risk.LEAD_H, train_share: float = 0.5) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    complete = d.H - 1 if d.partial_last else d.H
    split = int(complete * train_share)
    model = risk.RiskModel(lead_h).fit(d, until_h=split)
    f = risk.features(d)
    score = model.score(f)
    ok = risk.rows(d)
    fails: dict[str, np.ndarray] = defaultdict(lambda: np.empty(0))
    for b in manifest.get("breakdowns", []):
        fails[b["machine_id"]] = np.append(fails[b["machine_id"]], b["failed_ms"])
    M, H = score.shape
    end_h = d.hour_ms(np.arange(H) + 1).astype(float)  # end of each hour
    lead = lead_h * HOUR_MS
    truth = np.zeros((M, H), bool)
    for mi, m in enumerate(d.machines):
        fm = fails.get(m, np.empty(0))
        if len(fm):
            truth[mi] = ((fm[None, :] > end_h[:, None]) & (fm[None, :] <= end_h[:, None] + lead)).any(axis=1)
    # threshold: best F1 on the training rows, with the labels the model was trained on
    y_tr, known_tr = risk.labels(d.until(split), lead_h)
    tr = ok[:, :split] & known_tr
    thr = _best_threshold(score[:, :split][tr], y_tr[tr])
    test = ok.copy()
    test[:, :split] = False
    test[:, max(complete - lead_h, split) :] = False  # the lead window must lie inside the data
    y, s = truth[test], score[test]
    out = {
        "lead_h": lead_h,
        "model": model.kind,
        "train_hours": split,
        "test_hours": max(0, complete - lead_h - split),
        "breakdowns_in_training": model.breakdowns_seen,
        "rows": int(test.sum()),
        "positives": int(y.sum()),
        "threshold": _r(thr, 3),
    }
    if not len(y) or y.all() or not y.any():
        return out | {"note": "not enough history: the test part needs breakdowns and quiet hours"}
    alarm = s >= thr
    tp = int((alarm & y).sum())
    # recall over breakdowns: each true breakdown of the test part, warned at least once before it
    caught = total = 0
    test_lo, test_hi = d.hour_ms(split) + lead, d.hour_ms(complete)
    alarms = test & (score >= thr)
    for mi, m in enumerate(d.machines):
        for t in fails.get(m, np.empty(0)):
            if not test_lo <= t <= test_hi:
                continue
            total += 1
            window = (end_h < t) & (end_h >= t - lead)
            caught += bool((alarms[mi] & window).any())
    prevalence = float(y.mean())
    out |= {
        "precision": _r(tp / max(int(alarm.sum()), 1), 3),
        "recall_rows": _r(tp / int(y.sum()), 3),
        "breakdowns": total,
        "recall": _r(caught / total, 3) if total else None,
        "alarms": int(alarm.sum()),
        "average_precision": _r(average_precision_score(y, s), 3),
        "roc_auc": _r(roc_auc_score(y, s), 3),
        "baseline_constant": {
            "precision": _r(prevalence, 3),
            "recall": 1.0,
            "average_precision": _r(prevalence, 3),
            "roc_auc": 0.5,
        },
        "coefficients": model.coefficients(),
        "calibration": calibration(s, y, float(y_tr[tr].mean()) if tr.any() else prevalence),
        "calibrated": model.calibrated,
    }
    return out


RELIABILITY_BINS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def calibration(p: np.ndarray, y: np.ndarray, base_rate: float) -> dict:
    """Brier score of the predictions ``p`` against outcomes ``y``, the constant ``base_rate``'s, and
    a reliability table over RELIABILITY_BINS (bins without rows are left out)."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    edges = np.array(RELIABILITY_BINS)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    table = []
    for b in range(len(edges) - 1):
        sel = which == b
        if sel.any():
            table.append(
                {
                    "from": float(edges[b]),
                    "to": float(edges[b + 1]),
                    "rows": int(sel.sum()),
                    "mean_risk": _r(p[sel].mean(), 3),
                    "observed": _r(y[sel].mean(), 3),
                }
            )
    return {
        "brier": _r(np.mean((p - y) ** 2), 4),
        "brier_constant": _r(np.mean((base_rate - y) ** 2), 4),
        "constant_risk": _r(base_rate, 3),
        "mean_risk": _r(p.mean(), 3),
        "observed": _r(y.mean(), 3),
        "reliability": table,
    }


def _best_threshold(s: np.ndarray, y: np.ndarray) -> float:
    if not len(s) or not y.any():
        return 0.5
    best, thr = -1.0, 0.5
    for q in np.unique(np.quantile(s, np.linspace(0.5, 0.999, 120))):
        a = s >= q
        tp = (a & y).sum()
        if not a.any():
            continue
        p, r = tp / a.sum(), tp / y.sum()
        f1 = 2 * p * r / max(p + r, 1e-12)
        if f1 > best:
            best, thr = f1, float(q)
    return thr


def _r(x, digits: int = 1):
    if x is None:
        return None
    x = float(x)
    return None if not np.isfinite(x) else round(x, digits)
