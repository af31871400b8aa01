"""Notebook 06 — F1 decision thresholds, tuned on dev predictions only and then applied to test.

Only dev arrays enter these functions (their signatures take nothing else), so no test note can move a
threshold. The search is exact: every cut between two distinct dev scores is tried, and the threshold
is the midpoint between the last score kept and the next lower one (the widest margin on dev), so a
test note is positive when `prob >= threshold`. Ties in F1 go to the higher threshold (fewer positives).

- `tune_global_threshold`: one threshold for every code, maximising dev micro F1.
- `tune_per_code_thresholds`: one per code, each maximising that code's dev F1; a code without a dev
  positive (its F1 is 0 at every threshold) gets the global threshold.
"""
from __future__ import annotations

import numpy as np


def _check_dev(dev_labels, dev_probs) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(dev_labels)
    probs = np.asarray(dev_probs, dtype=np.float64)
    if labels.ndim != 2 or labels.shape != probs.shape:
        raise ValueError(f"dev_labels and dev_probs must both be (n_dev_notes, n_codes); got {labels.shape} and "
                         f"{probs.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("dev_labels must hold only 0/1 labels")
    if not np.isfinite(probs).all():
        raise ValueError(f"dev_probs hold {int((~np.isfinite(probs)).sum())} non-finite scores")
    return labels.astype(bool), probs


def best_f1_threshold(labels, probs) -> tuple[float, float]:
    """`(threshold, f1)` maximising F1 of the decisions `probs >= threshold` over 1-D `labels, probs`.

    Raises when `labels` hold no positive (every threshold gives F1 0).
    """
    labels = np.asarray(labels, dtype=bool).ravel()
    probs = np.asarray(probs, dtype=np.float64).ravel()
    n_pos = int(labels.sum())
    if n_pos == 0:
        raise ValueError("threshold tuning needs at least one positive dev label")
    order = np.argsort(-probs, kind="stable")
    scores, hits = probs[order], labels[order]
    last = np.r_[scores[1:] != scores[:-1], True]  # the last item of each run of equal scores
    tp, predicted = np.cumsum(hits)[last], np.flatnonzero(last) + 1  # decisions at each distinct score
    f1 = 2 * tp / (predicted + n_pos)
    best = int(np.argmax(f1))  # first maximum = the highest threshold reaching it
    kept = scores[last]
    threshold = kept[best] if best == len(kept) - 1 else (kept[best] + kept[best + 1]) / 2
    return float(threshold), float(f1[best])


def tune_global_threshold(dev_labels, dev_probs) -> float:
    """One threshold for all codes, maximising micro F1 over every dev (note, code) pair."""
    labels, probs = _check_dev(dev_labels, dev_probs)
    return best_f1_threshold(labels.ravel(), probs.ravel())[0]


def tune_per_code_thresholds(dev_labels, dev_probs) -> np.ndarray:
    """One threshold per code `(n_codes,)` maximising its dev F1; the global one where a code has no dev positive."""
    labels, probs = _check_dev(dev_labels, dev_probs)
    fallback = tune_global_threshold(labels, probs)
    return np.array([best_f1_threshold(labels[:, j], probs[:, j])[0] if labels[:, j].any() else fallback
                     for j in range(labels.shape[1])])


def tune(dev_labels, dev_probs, per_code: bool = False) -> float | np.ndarray:
    """The threshold(s) notebook 06 applies to test: global (a float) or per code (`(n_codes,)`)."""
    return tune_per_code_thresholds(dev_labels, dev_probs) if per_code else tune_global_threshold(dev_labels, dev_probs)
