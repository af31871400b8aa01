"""The floor of every table: the label prior, each code's training frequency given to every note as its score.

A model whose AUC does not beat this row learned nothing about the notes. Fitted on the training split only.
Its micro AUC is informative (frequent codes rank above rare ones); its per-code (macro) AUC is 0.5 by
construction, since every note gets the same score for a code.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bertxml_lib.core.rows import Row
from bertxml_lib.data.cohort import load_cohort
from bertxml_lib.evaluation.records import record_row

PRIOR = Row("prior", "prior")


def prior_probs(train_labels: np.ndarray, n_notes: int) -> np.ndarray:
    """`(n_notes, L)`: every row is the training frequency of each code (`train_labels (n_train, L)` 0/1)."""
    train_labels = np.asarray(train_labels, dtype=np.float64)
    if train_labels.ndim != 2 or not len(train_labels):
        raise ValueError(f"train_labels must be (n_train > 0, L), got {train_labels.shape}")
    return np.broadcast_to(train_labels.mean(axis=0, dtype=np.float64), (n_notes, train_labels.shape[1])).astype(
        np.float32)


def run_prior(out_dir: str | Path) -> dict:
    """Write the `prior` row (predictions + metrics record) from the run's cohort."""
    cohort = load_cohort(out_dir)
    started = time.perf_counter()
    y_train = cohort.label_matrix(cohort.split("train"))
    dev_probs = prior_probs(y_train, int((cohort.notes["split"] == "dev").sum()))
    test_probs = prior_probs(y_train, int((cohort.notes["split"] == "test").sum()))
    return record_row(out_dir, cohort, PRIOR, dev_probs, test_probs,
                      train_seconds=round(time.perf_counter() - started, 2), best_epoch=None)
