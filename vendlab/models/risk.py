"""Breakdown risk per machine: a model trained on the fleet's own telemetry history.

Rows are (machine, complete hour h) with the machine in service during h. Features, from the
telemetry views up to the end of h:

* ``temp_dev``    mean temperature of h minus the machine's median hourly temperature so far
* ``temp_trend``  mean temperature of h minus that of h - 3
* ``temp_std``    spread of the readings within h
* ``faults_1h``, ``faults_3h``, ``faults_12h``  share of readings carrying a minor fault code

Label: the machine goes out of service (a reading with error_code 9) within the next
``LEAD_H`` hours, i.e. its breakdown begins in hours h+1 .. h+LEAD_H. Labels come from the data
itself (what an operator sees), never from the simulator: the generator's manifest only grades
the model (``vendlab.models.evaluate``).

Model: logistic regression on standardised features (scikit-learn), classes *not* weighted, so that
its output is a probability: maximum likelihood makes a logistic regression's predictions average to
the observed rate (calibration in the large), and ``vendlab answer --evaluate`` measures how well they
are calibrated against the simulator's truth (Brier score and a reliability table). Weighting the
classes (as this model first did) inflates every score towards 0.5 and above: the ranking stays, the
"97 %" does not mean 97 %. The precursors the data shows (a machine warms up and throws more faults as it degrades; harmless warm
spells warm it without many faults) are monotone, so a linear score is enough and stays readable;
docs/questions.md has the measured precision and recall. With fewer than ``MIN_BREAKDOWNS``
breakdowns in the history there is nothing to learn from: the score is then a fixed heuristic
(standardised temperature deviation + fault rate) and says so; it is **not** a probability
(``RiskModel.calibrated`` is False) and is shown as a rank only.

Refreshed as data arrives: every answer retrains on the history as it stands (seconds at most).
"""

from __future__ import annotations

import numpy as np

from vendlab.models.hourly import Hourly

LEAD_H = 6
MIN_BREAKDOWNS = 3
FEATURES = ("temp_dev", "temp_trend", "temp_std", "faults_1h", "faults_3h", "faults_12h")


def features(d: Hourly) -> np.ndarray:
    """(M, H, F) features; NaN where the machine had no reading."""
    temp = d.mean_temp()
    oos = d.out_of_service()
    M, H = temp.shape
    base = np.full((M, H), np.nan)
    for m in range(M):
        vals: list[float] = []
        for h in range(H):
            if np.isfinite(temp[m, h]) and not oos[m, h]:
                vals.append(temp[m, h])
            if vals:
                base[m, h] = float(np.median(vals[-72:]))
    trend = np.full((M, H), np.nan)
    if H > 3:
        trend[:, 3:] = temp[:, 3:] - temp[:, :-3]
    f = np.stack([temp - base, trend, d.temp_std(), d.fault_rate(1), d.fault_rate(3), d.fault_rate(12)], axis=2)
    return f


def onsets(d: Hourly) -> np.ndarray:
    """(M, H) bool: a breakdown begins in this hour (out of service now, not in the hour before)."""
    oos = d.out_of_service()
    prev = np.concatenate([np.zeros((oos.shape[0], 1), bool), oos[:, :-1]], axis=1)
    return oos & ~prev


def labels(d: Hourly, lead_h: int = LEAD_H) -> tuple[np.ndarray, np.ndarray]:
    """(y (M, H) bool, known (M, H) bool: the whole lead window lies inside the data)."""
    on = onsets(d).astype(int)
    M, H = on.shape
    c = np.concatenate([np.zeros((M, 1), int), np.cumsum(on, axis=1)], axis=1)  # c[:, h] = onsets before h
    y = np.zeros((M, H), bool)
    known = np.zeros((M, H), bool)
    complete = H - 1 if d.partial_last else H  # hours < complete are complete
    for h in range(H):
        hi = min(h + 1 + lead_h, H)
        y[:, h] = (c[:, hi] - c[:, h + 1]) > 0
        known[:, h] = h + lead_h < complete or y[:, h]
    return y, known


def rows(d: Hourly) -> np.ndarray:
    """(M, H) bool: rows a model may score: in service, with readings, features defined."""
    f = features(d)
    return (d.readings() > 0) & ~d.out_of_service() & np.isfinite(f[:, :, :2]).all(axis=2)


class RiskModel:
    def __init__(self, lead_h: int = LEAD_H):
        self.lead_h = lead_h
        self.kind = "untrained"
        self.breakdowns_seen = 0
        self.pipe = None
        self.fill = np.zeros(len(FEATURES))

    def fit(self, d: Hourly, until_h: int | None = None) -> RiskModel:
        """Train on the rows of hours < until_h (all) whose label window is known."""
        f = features(d)
        y, known = labels(d, self.lead_h)
        ok = rows(d) & known
        if until_h is not None:
            ok[:, until_h:] = False
            # a label may look past until_h: only what was known by then counts
            y2, known2 = labels(d.until(until_h), self.lead_h)
            y = np.zeros_like(y)
            y[:, :until_h] = y2
            ok[:, :until_h] &= known2
        h_lim = until_h if until_h is not None else d.H
        self.breakdowns_seen = int(onsets(d)[:, :h_lim].sum())
        X, t = f[ok], y[ok]
        self.fill = np.nan_to_num(np.nanmedian(X, axis=0)) if len(X) else np.zeros(len(FEATURES))
        if self.breakdowns_seen < MIN_BREAKDOWNS or t.sum() < MIN_BREAKDOWNS or t.all():
            self.kind = "heuristic"
            return self
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X = np.where(np.isfinite(X), X, self.fill)
        self.pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        self.pipe.fit(X, t)
        self.kind = "logistic regression"
        return self

    @property
    def calibrated(self) -> bool:
        """True when ``score`` is a probability (the trained model), False for the heuristic's rank score."""
        return self.pipe is not None

    def score(self, f: np.ndarray) -> np.ndarray:
        """Risk in [0, 1] for feature rows (..., F): the probability of a breakdown within ``lead_h``
        hours for the trained model, a rank score for the heuristic (see ``calibrated``)."""
        shape = f.shape[:-1]
        X = f.reshape(-1, f.shape[-1])
        X = np.where(np.isfinite(X), X, self.fill)
        if self.pipe is not None:
            return self.pipe.predict_proba(X)[:, 1].reshape(shape)
        # heuristic: a warm machine throwing faults; about 0.5 at +2.5 C and 20 % faults
        z = 1.2 * X[:, 0] + 12.0 * X[:, 4] - 5.5
        return (1.0 / (1.0 + np.exp(-z))).reshape(shape)

    def coefficients(self) -> dict[str, float] | None:
        if self.pipe is None:
            return None
        lr = self.pipe[-1]
        return {n: round(float(c), 3) for n, c in zip(FEATURES, lr.coef_[0])}


def current_risk(d: Hourly, model: RiskModel | None = None) -> tuple[np.ndarray, np.ndarray, RiskModel]:
    """(risk (M,) NaN if unknown, out of service now (M,) bool, the model) at the end of the data."""
    model = model or RiskModel().fit(d)
    M, H = d.readings().shape
    risk = np.full(M, np.nan)
    broken = np.zeros(M, bool)
    if H == 0:
        return risk, broken, model
    f = features(d)
    n = d.readings()
    oos = d.out_of_service()
    for m in range(M):
        hs = np.flatnonzero(n[m] > 0)
        if not len(hs):
            continue
        h = int(hs[-1])
        # out of service in its latest hour: broken now if it broke in that hour (repairs take
        # hours) or stayed out of service all hour; else it was just repaired (no score yet)
        if oos[m, h]:
            all_hour = d.tel["out_of_service"][m, h] >= n[m, h]
            broken[m] = bool(all_hour or h == 0 or not oos[m, h - 1])
            continue
        risk[m] = float(model.score(f[m, h][None, :])[0])
    return risk, broken, model
