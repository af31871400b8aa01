"""Notebooks 04-06 — micro and macro AUC of multi-label predictions (paper 4.4, Tables 2-4).

Micro AUC pools every (note, code) pair into one ranking; macro AUC averages the per-code AUCs over
codes whose test labels hold both classes (an AUC is undefined otherwise), and reports how many codes
were skipped, so a reader can see what the average covers.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


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
