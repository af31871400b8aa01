"""Notebook 05 — the bag-of-words logistic-regression baseline of Table 2 (paper 3.4.1, 4.3).

Choices the paper leaves open, made once here:

- Tokens: paper 4.3 gives every baseline "a max input length of 512 tokens". A baseline has no
  WordPiece vocabulary, so a token is a word: a lowercase run of letters/digits/underscore
  (`WORD_PATTERN`, scikit-learn's word notion without its two-character minimum). Each note is cut to
  its first `max_tokens` words before counting.
- Features: binary bag of words (a word present in the first `max_tokens` words or not). Binary
  features keep every column on one scale, so the vanilla (L2, C=1) model needs no scaling step.
- Model: one L2 logistic regression per code (`OneVsRestClassifier`, liblinear, `C`), the paper's
  "vanilla logistic regression" (3.4.1: L1 gave no improvement). A code with no positive (or no
  negative) training note gets a constant probability instead of a fitted model.
- Leakage guard: the vocabulary is fit on the training notes only; dev and test words never seen in
  training are ignored.
"""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from bertxml_lib.core.rows import Row, baseline_row
from bertxml_lib.data.cohort import load_cohort
from bertxml_lib.evaluation.records import record_row
from bertxml_lib.text.words import first_words


def _check_texts(name: str, texts: Sequence[str]) -> list[str]:
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(f"{name}[{bad}] is {type(texts[bad]).__name__}, expected str")
    return texts


def bag_of_words_logreg(train_texts: Sequence[str], Y_train, dev_texts: Sequence[str], test_texts: Sequence[str],
                        max_tokens: int = 512, C: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fit on the training notes, return `(dev_probs (n_dev, L), test_probs (n_test, L), info)`.

    `Y_train (n_train, L)` holds 0/1 labels in label-set order. `info` records the vocabulary size,
    how many codes got a constant probability, and the fit time.
    """
    train_texts = _check_texts("train_texts", train_texts)
    dev_texts, test_texts = _check_texts("dev_texts", dev_texts), _check_texts("test_texts", test_texts)
    Y_train = np.asarray(Y_train)
    if not train_texts or Y_train.ndim != 2 or Y_train.shape[0] != len(train_texts) or Y_train.shape[1] == 0:
        raise ValueError(f"Y_train must be (n_train={len(train_texts)} > 0, L > 0), got {Y_train.shape}")
    if not np.isin(Y_train, (0, 1)).all():
        raise ValueError("Y_train must hold only 0/1 labels")
    if int(max_tokens) < 1 or not C > 0:
        raise ValueError(f"max_tokens must be >= 1 and C > 0, got max_tokens={max_tokens}, C={C}")
    started = time.perf_counter()
    vectorizer = CountVectorizer(analyzer=partial(first_words, max_tokens=int(max_tokens)), binary=True,
                                 dtype=np.float64)
    X_train = vectorizer.fit_transform(train_texts)  # vocabulary from training notes only
    X_dev, X_test = vectorizer.transform(dev_texts), vectorizer.transform(test_texts)

    Y_train = Y_train.astype(np.int64)
    positives = Y_train.sum(axis=0)
    fitted = (positives > 0) & (positives < len(train_texts))
    # Constant codes: the training prevalence (0 or 1) is the only estimate the data supports.
    dev_probs = np.tile(positives / len(train_texts), (len(dev_texts), 1)).astype(np.float32)
    test_probs = np.tile(positives / len(train_texts), (len(test_texts), 1)).astype(np.float32)
    if fitted.any():
        model = _fit_one_vs_rest(X_train, Y_train[:, fitted], C, seed)
        dev_probs[:, fitted] = _positive_proba(model, X_dev)
        test_probs[:, fitted] = _positive_proba(model, X_test)
    info = {
        "vocab_size": len(vectorizer.vocabulary_),
        "n_codes": int(Y_train.shape[1]),
        "n_codes_constant": int((~fitted).sum()),
        "max_tokens": int(max_tokens),
        "C": float(C),
        "solver": "liblinear",
        "features": "binary bag of words, first max_tokens words",
        "fit_seconds": time.perf_counter() - started,
    }
    return dev_probs, test_probs, info


def _fit_one_vs_rest(X, Y: np.ndarray, C: float, seed: int):
    """One logistic regression per column of `Y (n, L_fitted)`; every column holds both classes."""
    estimator = LogisticRegression(C=C, solver="liblinear", random_state=seed)
    if Y.shape[1] == 1:
        # scikit-learn reads a one-column indicator matrix as a binary target: fit that column directly.
        return estimator.fit(X, Y[:, 0])
    return OneVsRestClassifier(estimator, n_jobs=1).fit(X, Y)


def _positive_proba(model, X) -> np.ndarray:
    """P(code) per note and fitted code: `(n, L_fitted)`."""
    probs = model.predict_proba(X)
    return probs[:, 1:] if isinstance(model, LogisticRegression) else probs


def run_logreg(out_dir: str | Path, max_tokens: int = 512, C: float = 1.0, seed: int = 0) -> dict:
    """Notebook 05: fit on train, write `predictions/logreg_<max_tokens>.npz` and `metrics/<row>.json`.

    Returns the metrics record (test micro/macro AUC, dev micro AUC, train seconds, vocabulary size).
    """

    cohort = load_cohort(out_dir)
    train, dev, test = cohort.split("train"), cohort.split("dev"), cohort.split("test")
    started = time.perf_counter()
    dev_probs, test_probs, info = bag_of_words_logreg(train["text"].tolist(), cohort.label_matrix(train),
                                                      dev["text"].tolist(), test["text"].tolist(),
                                                      max_tokens=max_tokens, C=C, seed=seed)
    train_seconds = time.perf_counter() - started
    row = Row(baseline_row("logreg", max_tokens), "logreg", max_len=int(max_tokens), notebook="05")
    return record_row(out_dir, cohort, row, dev_probs, test_probs, train_seconds=round(train_seconds, 2),
                      best_epoch=None, seed=seed, **{k: v for k, v in info.items() if k != "fit_seconds"})
