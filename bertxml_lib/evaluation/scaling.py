"""Notebook 08 — test AUC against the number of training patients: nested subsets, fitted curves, crossings.

The pure parts of the scaling study (no training here; `stages.run_scaling` trains):

- `nested_subsets`: training patients ordered once by a seeded hash of their id; the subset of size `n` is
  the first `n` of that order, so every smaller subset lies inside every larger one, and the label set, the
  dev split and the test split stay those of the cohort at every size.
- `fit_curve`: `auc(n) = a - b * n**(-c)` (scipy `curve_fit`, asymptote `a <= 1`, `0 < c <= 3`), falling
  back to `auc(n) = a + b * ln(n)` when the power law cannot be fitted (fewer than 4 sizes, no convergence,
  an unidentifiable exponent such as a flat series).
- `find_crossing`: where two fitted curves cross inside the measured range of `n`, or None.
- `auc_with_intervals`: test micro/macro AUC with 95% patient-bootstrap intervals; the resamples depend on the
  test patients and the seed only, so every point of the study is scored on the same resamples.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, brentq, curve_fit

from bertxml_lib.evaluation import metrics

POWER, LOG_LINEAR = "power", "log-linear"
MAX_EXPONENT = 3.0


def patient_order(patient_ids: Sequence[str], seed: int) -> list[str]:
    """Distinct patient ids sorted by sha256 of `(seed, "scaling", id)`: independent of input order."""
    unique = sorted({str(p) for p in patient_ids})
    return sorted(unique, key=lambda p: hashlib.sha256(f"{seed}:scaling:{p}".encode()).hexdigest())


def subset_sizes(n_patients: int, fractions: Sequence[float]) -> list[int]:
    """Patients per size: `round(fraction * n_patients)`, at least 1, ascending, duplicates dropped."""
    fractions = [float(f) for f in fractions]
    if n_patients < 1:
        raise ValueError(f"need at least one training patient, got {n_patients}")
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise ValueError(f"scaling.train_fractions must be fractions in (0, 1], got {fractions}")
    return sorted({max(1, int(round(f * n_patients))) for f in fractions})


def nested_subsets(patient_ids: Sequence[str], sizes: Sequence[int], seed: int) -> dict[int, list[str]]:
    """`{n: first n patients of patient_order}`: each subset contains every smaller one."""
    order = patient_order(patient_ids, seed)
    bad = [n for n in sizes if not 1 <= int(n) <= len(order)]
    if bad:
        raise ValueError(f"subset sizes {bad} outside [1, {len(order)}] training patients")
    return {int(n): order[:int(n)] for n in sorted(sizes)}


@dataclass(frozen=True)
class CurveFit:
    """One model's fitted curve of one metric; `c` is NaN for the log-linear form."""
    form: str
    a: float
    b: float
    c: float
    rmse: float
    n_points: int

    def __call__(self, n) -> np.ndarray:
        n = np.asarray(n, dtype=np.float64)
        if self.form == POWER:
            return self.a - self.b * n ** (-self.c)
        return self.a + self.b * np.log(n)

    def as_dict(self) -> dict:
        return asdict(self)


def _power(n, a, b, c):
    return a - b * n ** (-c)


def fit_curve(n: Sequence[float], auc: Sequence[float]) -> CurveFit:
    """Fit `a - b n^-c` to the points (NaNs dropped); the log-linear line when that fails (see module doc)."""
    n = np.asarray(n, dtype=np.float64)
    auc = np.asarray(auc, dtype=np.float64)
    keep = np.isfinite(n) & np.isfinite(auc)
    n, auc = n[keep], auc[keep]
    if len(n) < 2 or len(np.unique(n)) < 2 or (n <= 0).any():
        raise ValueError(f"fitting a curve needs >= 2 distinct positive sizes with finite AUCs, got n={n.tolist()}")
    fit = _fit_power(n, auc) if len(np.unique(n)) >= 4 else None
    if fit is None:
        b, a = np.polyfit(np.log(n), auc, 1)
        fit = CurveFit(LOG_LINEAR, float(a), float(b), float("nan"), 0.0, len(n))
    rmse = float(np.sqrt(np.mean((fit(n) - auc) ** 2)))
    return CurveFit(fit.form, fit.a, fit.b, fit.c, rmse, len(n))


def _fit_power(n: np.ndarray, auc: np.ndarray) -> CurveFit | None:
    """The power law, or None when scipy does not converge or cannot estimate its parameters."""
    a0 = min(1.0, float(auc.max()) + 0.01)
    c0 = 0.5
    b0 = max(a0 - float(auc[np.argmin(n)]), 1e-3) * float(n.min()) ** c0
    with warnings.catch_warnings():
        warnings.simplefilter("error", OptimizeWarning)  # an inestimable covariance means an unidentified curve
        try:
            (a, b, c), cov = curve_fit(_power, n, auc, p0=(a0, b0, c0),
                                       bounds=([0.0, -np.inf, 1e-6], [1.0, np.inf, MAX_EXPONENT]), maxfev=20000)
        except (RuntimeError, ValueError, OptimizeWarning):
            return None
    if not np.all(np.isfinite(cov)) or not np.all(np.isfinite((a, b, c))):
        return None
    if abs(b) * float(n.min()) ** (-c) < 1e-9:  # a flat curve: the exponent means nothing
        return None
    return CurveFit(POWER, float(a), float(b), float(c), 0.0, len(n))


def find_crossing(first: CurveFit, second: CurveFit, low: float, high: float, grid: int = 400) -> float | None:
    """The smallest `n` in `[low, high]` where `first(n) - second(n)` changes sign, or None.

    The difference is scanned on a log-spaced grid and each sign change refined with `brentq`; curves that
    touch without crossing (same sign on both sides) do not count."""
    if not 0 < low < high:
        raise ValueError(f"need 0 < low < high, got {low}, {high}")
    ns = np.geomspace(low, high, grid)
    diff = first(ns) - second(ns)
    sign = np.sign(diff)
    for i in range(len(ns) - 1):
        if sign[i] == 0 and 0 < i and sign[i - 1] * sign[i + 1] < 0:
            return float(ns[i])
        if sign[i] * sign[i + 1] < 0:
            return float(brentq(lambda x: float(first(x) - second(x)), ns[i], ns[i + 1]))
    return None


def crossing_statement(first_name: str, second_name: str, first: CurveFit, second: CurveFit, low: float,
                       high: float, metric: str) -> tuple[float | None, str]:
    """`(crossing n or None, one sentence)` for two fitted curves over the measured range `[low, high]`."""
    n = find_crossing(first, second, low, high)
    span = f"{low:g}-{high:g} training patients"
    if n is None:
        mid = float(np.sqrt(low * high))
        above, below = (first_name, second_name) if first(mid) >= second(mid) else (second_name, first_name)
        return None, f"{metric}: the fitted curves do not cross within {span}; {above} stays above {below}."
    after = n * 1.01 if n * 1.01 <= high else high
    leader = first_name if first(after) > second(after) else second_name
    other = second_name if leader == first_name else first_name
    return n, (f"{metric}: the fitted curves cross at about {n:.0f} training patients (measured range {span}); "
               f"{leader} is above {other} beyond it.")


AUC_METRICS = ("micro_auc", "macro_auc")
CROSSING = ("xml", "logreg")  # BERT-XML against logistic regression (paper Table 2's headline comparison)
NAMES = {"xml": "BERT-XML", "logreg": "LogReg", "cls": "BERT [CLS]", "prior": "label prior", "oracle": "oracle"}


def auc_with_intervals(y_test, probs, patient_ids, n_bootstrap: int, seed: int,
                       min_test_positives: int = 1) -> dict[str, float]:
    """`micro_auc, micro_auc_ci_low, micro_auc_ci_high, macro_auc, ...` on the test notes (NaN intervals when
    `n_bootstrap` is 0); macro AUC over codes with at least `min_test_positives` test positives, as Table 2."""
    mask = metrics.codes_with_positives(y_test, min_test_positives)
    out = {"micro_auc": metrics.micro_auc(y_test, probs),
           "macro_auc": metrics.macro_auc(np.asarray(y_test)[:, mask], np.asarray(probs)[:, mask])[0]
           if mask.any() else float("nan")}
    ci = {}
    if n_bootstrap > 0:
        samples = metrics.bootstrap_metrics(y_test, probs, None, list(patient_ids), n_bootstrap, seed,
                                            macro_codes=mask)
        ci = metrics.confidence_intervals({m: samples[m] for m in AUC_METRICS})
    return {k: v for m in AUC_METRICS
            for k, v in ((m, out[m]), (f"{m}_ci_low", ci.get(f"{m}_ci_low", np.nan)),
                         (f"{m}_ci_high", ci.get(f"{m}_ci_high", np.nan)))}


def fit_all(table: pd.DataFrame) -> tuple[dict[tuple[str, str], CurveFit], pd.DataFrame]:
    """Fit every model's curve of each AUC metric over `n_train_patients` (rows of `tables/scaling.csv`), and
    the BERT-XML / LogReg crossing per metric: `(fits, crossings)`, crossings with columns `metric,
    crossing_train_patients` (NaN: none in range) and `statement`."""
    fits = {}
    for (model, rows) in table.groupby("model", sort=False):
        for metric in AUC_METRICS:
            ok = rows[np.isfinite(rows[metric].to_numpy(dtype=float))]
            if ok["n_train_patients"].nunique() >= 2:
                fits[(model, metric)] = fit_curve(ok["n_train_patients"], ok[metric])
    low, high = float(table["n_train_patients"].min()), float(table["n_train_patients"].max())
    crossings = []
    for metric in AUC_METRICS:
        first, second = (fits.get((m, metric)) for m in CROSSING)
        if first is None or second is None or not low < high:
            statement = f"{metric}: not computed (needs {' and '.join(NAMES[m] for m in CROSSING)} at >= 2 sizes)"
            crossings.append({"metric": metric, "crossing_train_patients": np.nan, "statement": statement})
            continue
        n, statement = crossing_statement(NAMES[CROSSING[0]], NAMES[CROSSING[1]], first, second, low, high, metric)
        crossings.append({"metric": metric, "crossing_train_patients": np.nan if n is None else n,
                          "statement": statement})
    return fits, pd.DataFrame(crossings)


def fits_table(fits: dict[tuple[str, str], CurveFit]) -> pd.DataFrame:
    """`tables/scaling_fit.csv`: model, metric, form, a, b, c, rmse, n_points."""
    return pd.DataFrame([{"model": model, "metric": metric} | fit.as_dict() for (model, metric), fit in fits.items()],
                        columns=["model", "metric", "form", "a", "b", "c", "rmse", "n_points"])
