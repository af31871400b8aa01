"""Notebooks 04-06 — the metric set of paper 4.4: AUC, F1, P@k, R@k, mAP and patient-bootstrap CIs.

Definitions (test split, `y_true, y_prob (n_notes, n_codes)`):
- `micro_auc` pools every (note, code) pair into one ranking; `macro_auc` averages per-code AUCs over
  codes whose labels hold both classes (undefined otherwise) and reports how many codes were skipped.
- `micro_f1` / `macro_f1` / `macro_f1_present` use decisions `y_prob >= threshold`, the threshold tuned
  on dev (`thresholds`). `macro_f1` averages over ALL codes (a code with no positive and no predicted
  positive counts 0, sklearn's `zero_division=0`); `macro_f1_present` only over codes with a positive.
- `p_at_k`: share of a note's k highest-scored codes that are true, averaged over all notes (a note
  without labels scores 0; k may exceed n_codes, the denominator stays k). `r_at_k`: share of a note's
  true codes among its k highest, averaged over notes with at least one label (undefined otherwise).
  Ties in the top k go to the lower column index (label-set order: more frequent codes first).
- `map`: sklearn `average_precision_score` of each code, averaged over codes with a positive.
- `macro_codes` (optional boolean `(n_codes,)`): the codes `macro_auc` averages over, e.g. those with at
  least N test positives (`codes_with_positives`): a code with one or two test positives has an AUC that
  is mostly noise.

Point estimates use scikit-learn. Bootstrap CIs resample patients with replacement (notes of one
patient move together) and recompute every metric on each resample; a resample is a vector of
integer note weights, and `weighted_metrics` evaluates all resamples at once with sparse products over
the sorted runs of equal score that hold a positive (tested equal to sklearn with `sample_weight` and on
duplicated notes).

Comparisons of two rows are paired: both rows are scored on the same resamples (same patient ids and
seed give the same note weights), the difference a - b is taken per resample, and its percentile
interval decides the verdict (`verdict`): `holds` when the interval lies above 0, `contradicted` when
below, `inconclusive` when it spans 0. Never from point estimates alone.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

PRECISION_KS = (5, 8, 15)
RECALL_KS = (10,)
METRICS = ("micro_auc", "macro_auc", "micro_f1", "macro_f1", "macro_f1_present",
           *(f"p_at_{k}" for k in PRECISION_KS), *(f"r_at_{k}" for k in RECALL_KS), "map")
# Bootstrap work is split into blocks of resamples so no temporary exceeds ~this many float64 entries.
_BLOCK_ENTRIES = 4_000_000


def _check(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_prob.shape:
        raise ValueError(f"y_true and y_prob must both be (n_notes, n_codes); got {y_true.shape} and {y_prob.shape}")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("y_true must hold only 0/1 labels")
    if not np.isfinite(y_prob).all():
        raise ValueError(f"y_prob holds {int((~np.isfinite(y_prob)).sum())} non-finite scores (NaN or inf)")
    return y_true.astype(np.int8), y_prob


def micro_auc(y_true, y_prob) -> float:
    """ROC AUC over all (note, code) pairs flattened together: `y_true, y_prob (n_notes, n_codes)`."""
    y_true, y_prob = _check(y_true, y_prob)
    flat = y_true.ravel()
    if flat.size == 0 or flat.min() == flat.max():
        raise ValueError("micro AUC needs both positive and negative labels in y_true")
    return float(roc_auc_score(flat, y_prob.ravel()))


def evaluable_codes(y_true) -> np.ndarray:
    """Boolean `(n_codes,)`: codes with at least one positive and one negative note."""
    y_true = np.asarray(y_true)
    positives = y_true.sum(axis=0)
    return (positives > 0) & (positives < y_true.shape[0])


def per_code_auc(y_true, y_prob) -> np.ndarray:
    """ROC AUC of every code `(n_codes,)`; NaN where the code has no positive or no negative note."""
    y_true, y_prob = _check(y_true, y_prob)
    aucs = np.full(y_true.shape[1], np.nan)
    valid = evaluable_codes(y_true)
    if valid.any():
        # average=None gives one AUC per column; atleast_1d because one column comes back as a scalar.
        aucs[valid] = np.atleast_1d(roc_auc_score(y_true[:, valid], y_prob[:, valid], average=None))
    return aucs


def macro_auc(y_true, y_prob) -> tuple[float, int]:
    """Mean per-code AUC over evaluable codes, and the number of codes skipped (no positive or no negative).

    Returns `(nan, n_codes)` when no code is evaluable.
    """
    aucs = per_code_auc(y_true, y_prob)
    skipped = int(np.isnan(aucs).sum())
    if skipped == len(aucs):
        return float("nan"), skipped
    return float(np.nanmean(aucs)), skipped


def decide(y_prob, threshold) -> np.ndarray:
    """Binary decisions `y_prob >= threshold`; `threshold` is a scalar or one value per code `(n_codes,)`."""
    y_prob = np.asarray(y_prob, dtype=np.float64)
    threshold = np.asarray(threshold, dtype=np.float64)
    if threshold.ndim > 1 or (threshold.ndim == 1 and threshold.shape[0] != y_prob.shape[1]):
        raise ValueError(f"threshold must be a scalar or ({y_prob.shape[1]},) per code, got shape {threshold.shape}")
    return y_prob >= threshold


def per_code_f1(y_true, y_prob, threshold) -> np.ndarray:
    """F1 of every code `(n_codes,)` at `threshold`; 0 where a code has no positive and none predicted."""
    y_true, y_prob = _check(y_true, y_prob)
    return np.atleast_1d(f1_score(y_true, decide(y_prob, threshold).astype(np.int8), average=None, zero_division=0))


def f1_scores(y_true, y_prob, threshold) -> dict[str, float]:
    """`micro_f1`, `macro_f1` (all codes) and `macro_f1_present` (codes with a positive) at `threshold`."""
    y_true, y_prob = _check(y_true, y_prob)
    pred = decide(y_prob, threshold).astype(np.int8)
    per_code = np.atleast_1d(f1_score(y_true, pred, average=None, zero_division=0))
    present = y_true.sum(axis=0) > 0
    return {"micro_f1": float(f1_score(y_true, pred, average="micro", zero_division=0)),
            "macro_f1": float(per_code.mean()),
            "macro_f1_present": float(per_code[present].mean()) if present.any() else float("nan")}


def top_k_hits(y_true, y_prob, k: int) -> np.ndarray:
    """True codes among each note's `k` highest-scored codes `(n_notes,)` (ties: lower column first)."""
    y_true, y_prob = _check(y_true, y_prob)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    top = np.argsort(-y_prob, axis=1, kind="stable")[:, :k]  # (n_notes, min(k, n_codes))
    return np.take_along_axis(y_true, top, axis=1).sum(axis=1)


def precision_at_k(y_true, y_prob, k: int) -> float:
    """Mean over all notes of (true codes among the top k) / k."""
    return float(np.mean(top_k_hits(y_true, y_prob, k) / k))


def recall_at_k(y_true, y_prob, k: int) -> float:
    """Mean over notes with a label of (true codes among the top k) / (true codes); NaN if no note has one."""
    hits = top_k_hits(y_true, y_prob, k)
    n_true = np.asarray(y_true).sum(axis=1)
    has = n_true > 0
    return float(np.mean(hits[has] / n_true[has])) if has.any() else float("nan")


def mean_average_precision(y_true, y_prob) -> float:
    """sklearn average precision of each code, averaged over codes with at least one positive."""
    y_true, y_prob = _check(y_true, y_prob)
    present = np.flatnonzero(y_true.sum(axis=0) > 0)
    if not len(present):
        return float("nan")
    return float(np.mean([average_precision_score(y_true[:, j], y_prob[:, j]) for j in present]))


def codes_with_positives(y_true, min_positives: int) -> np.ndarray:
    """Boolean `(n_codes,)`: codes with at least `min_positives` positive notes (and a negative one)."""
    if int(min_positives) < 1:
        raise ValueError(f"min_positives must be >= 1, got {min_positives}")
    y_true = np.asarray(y_true)
    return evaluable_codes(y_true) & (y_true.sum(axis=0) >= int(min_positives))


def _macro_mask(macro_codes, n_codes: int) -> np.ndarray:
    if macro_codes is None:
        return np.ones(n_codes, dtype=bool)
    mask = np.asarray(macro_codes, dtype=bool)
    if mask.shape != (n_codes,):
        raise ValueError(f"macro_codes must be a boolean ({n_codes},) mask, got shape {mask.shape}")
    return mask


def score_all(y_true, y_prob, threshold, macro_codes=None) -> dict[str, float]:
    """Every metric of `METRICS` (scikit-learn reference path); F1 needs a dev-tuned `threshold`;
    `macro_auc` averages over `macro_codes` (default: every evaluable code)."""
    y_true, y_prob = _check(y_true, y_prob)
    flat = y_true.ravel()
    mask = _macro_mask(macro_codes, y_true.shape[1])
    out = {"micro_auc": micro_auc(y_true, y_prob) if 0 < flat.sum() < flat.size else float("nan"),
           "macro_auc": macro_auc(y_true[:, mask], y_prob[:, mask])[0] if mask.any() else float("nan")}
    out |= f1_scores(y_true, y_prob, threshold) if threshold is not None else dict.fromkeys(
        ("micro_f1", "macro_f1", "macro_f1_present"), float("nan"))
    out |= {f"p_at_{k}": precision_at_k(y_true, y_prob, k) for k in PRECISION_KS}
    out |= {f"r_at_{k}": recall_at_k(y_true, y_prob, k) for k in RECALL_KS}
    out["map"] = mean_average_precision(y_true, y_prob)
    return {m: out[m] for m in METRICS}


# ---------------------------------------------------------------------------------------------
# Weighted, vectorised path: every metric for a block of note-weight vectors at once (the bootstrap)
# ---------------------------------------------------------------------------------------------

class _TieGroups:
    """(note, code) pairs sorted by code then ascending score, cut into runs of equal (code, score), and the
    runs that matter to AUC and AP kept as checkpoints: every run holding a positive pair, and each code's
    last run. A negative pair counts at the first checkpoint at or after its run, so a running sum over
    checkpoints gives, at each positive run, the negative weight at or below it; a sum over runs without a
    positive is never needed (they carry no positive for AUC and no threshold for AP).

    For note weights `W (B, n_notes)`, `counts(W)` gives per checkpoint the weighted positives, negatives up
    to it and negatives tied with its positives. Running sums are taken across codes (one `cumsum`) and each
    code's share is recovered from the sums at its boundaries: weights are integers, so every count and sum
    of counts is an exact float64 integer (or half-integer) and the subtraction loses nothing.
    """

    def __init__(self, y_true: np.ndarray, y_prob: np.ndarray, per_code: bool):
        n, n_codes = y_true.shape
        notes = np.repeat(np.arange(n), n_codes)
        code = np.tile(np.arange(n_codes), n) if per_code else np.zeros(n * n_codes, dtype=np.int64)
        score = y_prob.ravel()
        order = np.lexsort((score, code))
        score, code, notes, label = score[order], code[order], notes[order], y_true.ravel()[order].astype(bool)
        new = np.r_[True, (score[1:] != score[:-1]) | (code[1:] != code[:-1])]
        run = np.cumsum(new) - 1
        run_code = code[new]
        has_pos = np.zeros(len(run_code), dtype=bool)
        has_pos[run[label]] = True
        last = np.r_[run_code[1:] != run_code[:-1], True]
        checkpoints = np.flatnonzero(has_pos | last)
        at = np.searchsorted(checkpoints, run)  # each pair's checkpoint: the first at or after its run
        n_cp = len(checkpoints)

        def matrix(mask: np.ndarray) -> sparse.csc_matrix:
            return sparse.csc_matrix((np.ones(int(mask.sum())), (notes[mask], at[mask])), shape=(n, n_cp))

        self.pos, self.neg, self.tie = matrix(label), matrix(~label), matrix(~label & has_pos[run])
        cp_code = run_code[checkpoints]
        self.starts = np.flatnonzero(np.r_[True, cp_code[1:] != cp_code[:-1]])
        self.ends = np.r_[self.starts[1:], n_cp] - 1
        self.codes = cp_code[self.starts]  # the code of each start (codes are all present here)
        self.sizes = np.diff(np.r_[self.starts, n_cp])

    def counts(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weighted positives, negatives up to and negatives tied at each checkpoint, each `(B, n_cp)`."""
        wt = weights.T
        return (self.pos.T @ wt).T, (self.neg.T @ wt).T, (self.tie.T @ wt).T

    def before(self, running: np.ndarray) -> np.ndarray:
        """A running sum `(B, n_cp)` just before each code's first checkpoint: `(B, n_codes)`."""
        out = np.zeros((running.shape[0], len(self.starts)))
        out[:, 1:] = running[:, self.starts[1:] - 1]
        return out

    def per_code(self, x: np.ndarray) -> np.ndarray:
        return np.add.reduceat(x, self.starts, axis=1)  # (B, n_codes)


def _safe_divide(a: np.ndarray, b: np.ndarray, empty: float) -> np.ndarray:
    return np.divide(a, b, out=np.full(np.broadcast(a, b).shape, empty), where=b > 0)


def _weighted_auc(groups: _TieGroups, pos: np.ndarray, tie: np.ndarray, running_neg: np.ndarray) -> np.ndarray:
    """AUC per code `(B, n_codes)`: each positive wins the negative weight below it in its code and half of
    its ties, i.e. `sum_k pos_k (running_neg_k - tie_k / 2)` less the code's positives times the negatives
    of the codes before it."""
    n_pos, before = groups.per_code(pos), groups.before(running_neg)
    wins = groups.per_code(pos * (running_neg - 0.5 * tie)) - n_pos * before
    n_neg = running_neg[:, groups.ends] - before
    return _safe_divide(wins, n_pos * n_neg, np.nan)


def _weighted_ap(groups: _TieGroups, pos: np.ndarray, tie: np.ndarray, running_neg: np.ndarray) -> np.ndarray:
    """Average precision per code `(B, n_codes)` (sklearn's: over thresholds from high to low, recall gain x
    precision). At a positive run of code c, the pairs scored at least as high are those from it to the
    code's last run: the running sums at the code's end less those before the run."""
    running_pos = np.cumsum(pos, axis=1)
    running_all = running_pos + running_neg
    end_pos = np.repeat(running_pos[:, groups.ends], groups.sizes, axis=1)
    end_all = np.repeat(running_all[:, groups.ends], groups.sizes, axis=1)
    precision = _safe_divide(end_pos - running_pos + pos, end_all - running_all + pos + tie, 0.0)
    return _safe_divide(groups.per_code(pos * precision), groups.per_code(pos), np.nan)


def _micro_auc(groups: _TieGroups, weights: np.ndarray) -> np.ndarray:
    """Micro AUC `(B,)`: one AUC over every (note, code) pair (`groups` built with `per_code=False`)."""
    pos, neg, tie = groups.counts(weights)
    return _weighted_auc(groups, pos, tie, np.cumsum(neg, axis=1))[:, 0]


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    defined = ~np.isnan(x)
    return _safe_divide(np.where(defined, x, 0.0).sum(axis=1), defined.sum(axis=1).astype(np.float64), np.nan)


def _weighted_confusion(weights: np.ndarray, y: np.ndarray, pred: np.ndarray):
    """Weighted true positives, false positives and false negatives per code, each `(B, n_codes)`."""
    return weights @ (y * pred), weights @ ((1 - y) * pred), weights @ (y * ~pred)


def _micro_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    tp, fp, fn = tp.sum(1), fp.sum(1), fn.sum(1)
    return _safe_divide(2 * tp, 2 * tp + fp + fn, 0.0)


class WeightedScorer:
    """Every metric of `METRICS` for blocks of note weights `(B, n_notes)` (integer weights = duplicated
    notes); the sorting and top-k work is done once here, `score(weights)` is then a few products."""

    def __init__(self, y_true, y_prob, threshold, macro_codes=None):
        y_true, y_prob = _check(y_true, y_prob)
        self.y = y_true.astype(np.float64)  # (n_notes, n_codes)
        self.macro = _macro_mask(macro_codes, y_true.shape[1])
        self.micro = _TieGroups(y_true, y_prob, per_code=False)
        self.by_code = _TieGroups(y_true, y_prob, per_code=True)
        self.pred = None if threshold is None else decide(y_prob, threshold)
        n_true = self.y.sum(axis=1)
        self.has_label = n_true > 0
        self.precision = {k: top_k_hits(y_true, y_prob, k) / k for k in PRECISION_KS}  # per note
        self.recall = {k: _safe_divide(top_k_hits(y_true, y_prob, k).astype(np.float64), n_true, 0.0)
                       for k in RECALL_KS}

    def _per_code(self, groups: _TieGroups, values: np.ndarray) -> np.ndarray:
        out = np.full((values.shape[0], self.y.shape[1]), np.nan)
        out[:, groups.codes] = values
        return out

    def score(self, weights, per_code: bool = False) -> dict[str, np.ndarray]:
        """`{metric: (B,)}`; codes and notes enter each average only where that resample defines them.
        `per_code` adds `"per_code_auc": (B, n_codes)` (NaN where a resample leaves a code one class)."""
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        if weights.shape[1] != self.y.shape[0]:
            raise ValueError(f"weights must be (B, n_notes={self.y.shape[0]}), got {weights.shape}")
        y, b = self.y, len(weights)
        pos, neg, tie = self.by_code.counts(weights)
        running_neg = np.cumsum(neg, axis=1)
        code_auc = self._per_code(self.by_code, _weighted_auc(self.by_code, pos, tie, running_neg))  # (B, n_codes)
        out = {"micro_auc": _micro_auc(self.micro, weights),
               "macro_auc": _nanmean_rows(code_auc[:, self.macro]) if self.macro.any() else np.full(b, np.nan)}
        if self.pred is None:
            out |= dict.fromkeys(("micro_f1", "macro_f1", "macro_f1_present"), np.full(b, np.nan))
        else:
            tp, fp, fn = _weighted_confusion(weights, y, self.pred)
            out["micro_f1"] = _micro_f1(tp, fp, fn)
            f1 = _safe_divide(2 * tp, 2 * tp + fp + fn, 0.0)  # (B, n_codes)
            out["macro_f1"] = f1.mean(axis=1)
            out["macro_f1_present"] = _nanmean_rows(np.where(tp + fn > 0, f1, np.nan))
        for k, per_note in self.precision.items():
            out[f"p_at_{k}"] = _safe_divide(weights @ per_note, weights.sum(axis=1), np.nan)
        labelled = weights[:, self.has_label]
        for k, per_note in self.recall.items():
            out[f"r_at_{k}"] = _safe_divide(labelled @ per_note[self.has_label], labelled.sum(axis=1), np.nan)
        out["map"] = _nanmean_rows(self._per_code(self.by_code, _weighted_ap(self.by_code, pos, tie, running_neg)))
        return {m: out[m] for m in METRICS} | ({"per_code_auc": code_auc} if per_code else {})


def weighted_metrics(y_true, y_prob, threshold, weights) -> dict[str, np.ndarray]:
    """`{metric: (B,)}` under note weights `(B, n_notes)`; all weights 1 equals `score_all`."""
    return WeightedScorer(y_true, y_prob, threshold).score(weights)


def patient_resample_weights(patient_ids, n_resamples: int, seed: int) -> np.ndarray:
    """Note weights `(n_resamples, n_notes)`: patients drawn with replacement, each note weighted by
    how often its patient was drawn. Depends on the set of patient ids and `seed`, not on note order."""
    patients, note_patient = np.unique(np.asarray(patient_ids).astype(str), return_inverse=True)
    if n_resamples < 1 or not len(patients):
        raise ValueError(f"need n_resamples >= 1 and at least one patient; got {n_resamples}, {len(patients)}")
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(patients), np.full(len(patients), 1.0 / len(patients)), size=n_resamples)
    return draws[:, note_patient].astype(np.float64)


def bootstrap_metrics(y_true, y_prob, threshold, patient_ids, n_resamples: int = 200,
                      seed: int = 0, macro_codes=None, per_code: bool = False) -> dict[str, np.ndarray]:
    """`{metric: (n_resamples,)}` over patient-level bootstrap resamples of the notes (see module docstring);
    `per_code` adds `"per_code_auc": (n_resamples, n_codes)`. The same `patient_ids` and `seed` give every
    row the same resamples, which is what makes `paired_difference` paired."""
    y_true, y_prob = _check(y_true, y_prob)
    if len(patient_ids) != y_true.shape[0]:
        raise ValueError(f"got {len(patient_ids)} patient ids for {y_true.shape[0]} notes")
    weights = patient_resample_weights(patient_ids, n_resamples, seed)
    scorer = WeightedScorer(y_true, y_prob, threshold, macro_codes)
    n_blocks = -(-n_resamples * y_true.size // _BLOCK_ENTRIES)  # ceil: bound the (B, pairs) temporaries
    parts = [scorer.score(block, per_code) for block in np.array_split(weights, max(n_blocks, 1))]
    return {m: np.concatenate([p[m] for p in parts]) for m in parts[0]}


def bootstrap_micro(y_true, y_prob, threshold, patient_ids, n_resamples: int = 200,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """`{"micro_auc", "micro_f1": (n_resamples,)}`: the two micro metrics of `bootstrap_metrics` on the same
    resamples, without the per-code sorting the other metrics need (subgroup tables score many small sets)."""
    y_true, y_prob = _check(y_true, y_prob)
    if len(patient_ids) != y_true.shape[0]:
        raise ValueError(f"got {len(patient_ids)} patient ids for {y_true.shape[0]} notes")
    weights = patient_resample_weights(patient_ids, n_resamples, seed)
    micro = _TieGroups(y_true, y_prob, per_code=False)
    y = y_true.astype(np.float64)
    pred = None if threshold is None else decide(y_prob, threshold)
    out = {"micro_auc": [], "micro_f1": []}
    n_blocks = -(-n_resamples * y_true.size // _BLOCK_ENTRIES)
    for block in np.array_split(weights, max(n_blocks, 1)):
        out["micro_auc"].append(_micro_auc(micro, block))
        if pred is None:
            out["micro_f1"].append(np.full(len(block), np.nan))
        else:
            out["micro_f1"].append(_micro_f1(*_weighted_confusion(block, y, pred)))
    return {m: np.concatenate(v) for m, v in out.items()}


def confidence_intervals(samples: dict[str, np.ndarray], level: float = 0.95) -> dict[str, float]:
    """Percentile intervals `{<metric>_ci_low, <metric>_ci_high}`; NaN where no resample defines the metric."""
    tail = (1 - level) / 2 * 100
    out = {}
    for metric, values in samples.items():
        if np.ndim(values) != 1:
            continue  # per-code resamples (`per_code=True`) have no single interval
        values = np.asarray(values, dtype=np.float64)
        values = values[~np.isnan(values)]
        low, high = np.percentile(values, [tail, 100 - tail]) if len(values) else (np.nan, np.nan)
        out[f"{metric}_ci_low"], out[f"{metric}_ci_high"] = float(low), float(high)
    return out


VERDICTS = ("holds", "contradicted", "inconclusive")


def verdict(ci_low: float, ci_high: float) -> str:
    """`holds` if the interval of a difference (claimed better - claimed worse) lies above 0,
    `contradicted` if below 0, `inconclusive` if it touches or spans 0 (or is undefined)."""
    if np.isnan(ci_low) or np.isnan(ci_high):
        return "inconclusive"
    return "holds" if ci_low > 0 else "contradicted" if ci_high < 0 else "inconclusive"


def paired_difference(samples_a, samples_b, point_a: float, point_b: float, level: float = 0.95) -> dict:
    """Paired bootstrap difference a - b: `samples_a, samples_b (B,)` are one metric of two rows on the SAME
    resamples. Returns `{difference (point_a - point_b), ci_low, ci_high (percentile interval of the
    per-resample differences), verdict, n_resamples (resamples where both are defined)}`."""
    a, b = np.asarray(samples_a, dtype=np.float64), np.asarray(samples_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be two (B,) arrays of one resample set, got {a.shape} and {b.shape}")
    diff = a - b
    diff = diff[~np.isnan(diff)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diff, [tail, 100 - tail]) if len(diff) else (np.nan, np.nan)
    return {"difference": float(point_a) - float(point_b), "ci_low": float(low), "ci_high": float(high),
            "verdict": verdict(float(low), float(high)), "n_resamples": int(len(diff))}


def paired_bootstrap(y_true, probs_a, probs_b, patient_ids, n_resamples: int = 200, seed: int = 0,
                     metric: str = "micro_auc", macro_codes=None, level: float = 0.95) -> dict:
    """`paired_difference` of `metric` between two score matrices on one test set, resampling patients."""
    if metric not in METRICS or metric.endswith(("f1", "f1_present")):
        raise ValueError(f"metric must be a threshold-free metric of METRICS, got {metric!r}")
    if metric == "micro_auc":  # the same resamples without the per-code work
        a = bootstrap_micro(y_true, probs_a, None, patient_ids, n_resamples, seed)
        b = bootstrap_micro(y_true, probs_b, None, patient_ids, n_resamples, seed)
    else:
        a = bootstrap_metrics(y_true, probs_a, None, patient_ids, n_resamples, seed, macro_codes)
        b = bootstrap_metrics(y_true, probs_b, None, patient_ids, n_resamples, seed, macro_codes)
    point_a = score_all(y_true, probs_a, None, macro_codes)[metric]
    point_b = score_all(y_true, probs_b, None, macro_codes)[metric]
    return paired_difference(a[metric], b[metric], point_a, point_b, level)
