"""Notebook 09 — evidence plausibility (paper 4.5, Figure 3 measured): does a code's attention point at the
words that justify it?

Every model's attention arrives as scores over its own units (WordPieces, words, CNN windows, hier
segments: `inference.predict.code_evidence`, the code path of `python -m bertxml_lib.predict`). To compare
models, scores are moved onto one shared unit, the note's words (`WORD`, runs of letters/digits): a word
scores the sum of the scores of the model units that overlap it. A word is an evidence word when it
overlaps a ground-truth evidence span of the code.

Per (note, code) pair, with `k` the number of top words kept (ties at the k-th score shared out in
expectation, so uniform attention scores exactly what a random ordering scores on average):
- `recall_at_k`: evidence words among the top k / evidence words;
- `precision_at_k`: evidence words among the top k / min(k, words);
- `auprc`: average precision (sklearn) of the scores as a ranking of evidence words;
- `span_hit`: the model's top evidence span (`predict`'s first span) overlaps an evidence span.
Baselines on the same pairs: `random` (expectations of a uniformly random ordering: recall k/n,
precision and AUPRC the evidence share, hit the evidence share) and `tfidf` (a word's TF-IDF weight in
its note, IDF fitted on training notes; the same score for every code of a note).
Intervals: percentile 95% CIs of the mean over pairs, resampling patients (`metrics.patient_resample_weights`).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

import numpy as np
from sklearn.metrics import average_precision_score

from bertxml_lib.evaluation.metrics import patient_resample_weights

WORD = re.compile(r"\w+")
PLAUSIBILITY = ("recall_at_k", "precision_at_k", "auprc", "span_hit")


def word_units(text: str) -> np.ndarray:
    """Character spans `(n_words, 2)` of the note's words (runs of `\\w`), in order."""
    return np.array([m.span() for m in WORD.finditer(text)], dtype=np.int64).reshape(-1, 2)


def unit_scores(units: np.ndarray, offsets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Scores `(n_words,)` of the words `units`: each word gets the sum of `scores` of the model units
    (`offsets (n, 2)`, half-open character spans) that overlap it."""
    units, offsets = np.asarray(units).reshape(-1, 2), np.asarray(offsets).reshape(-1, 2)
    scores = np.asarray(scores, dtype=float)
    out = np.zeros(len(units) + 1)
    if not len(units) or not len(offsets):
        return out[:-1]
    first = np.searchsorted(units[:, 1], offsets[:, 0], side="right")  # first word ending after the unit starts
    stop = np.searchsorted(units[:, 0], offsets[:, 1], side="left")    # words starting before the unit ends
    live = first < stop
    np.add.at(out, first[live], scores[live])
    np.add.at(out, stop[live], -scores[live])
    return np.cumsum(out)[:-1]


def overlaps(units: np.ndarray, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Boolean `(n_words,)`: the word overlaps at least one half-open character span."""
    units = np.asarray(units).reshape(-1, 2)
    mask = np.zeros(len(units), dtype=bool)
    for start, end in spans:
        mask |= (units[:, 0] < end) & (start < units[:, 1])
    return mask


def top_k_hits(scores: np.ndarray, mask: np.ndarray, k: int) -> float:
    """Expected evidence words among the k highest scores, ties at the cut broken uniformly at random."""
    scores, mask = np.asarray(scores, dtype=float), np.asarray(mask, dtype=bool)
    n = len(scores)
    if k >= n:
        return float(mask.sum())
    cut = np.sort(scores)[::-1][k - 1]
    above, tied = scores > cut, scores == cut
    return float(mask[above].sum() + (k - above.sum()) * mask[tied].mean())


def plausibility(scores: np.ndarray, mask: np.ndarray, k: int) -> dict[str, float]:
    """`recall_at_k`, `precision_at_k`, `auprc` of word scores against evidence words (module docstring)."""
    scores, mask = np.asarray(scores, dtype=float), np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("plausibility needs at least one evidence word")
    hits = top_k_hits(scores, mask, k)
    auprc = 1.0 if mask.all() else float(average_precision_score(mask, scores))
    return {"recall_at_k": hits / mask.sum(), "precision_at_k": hits / min(k, len(mask)), "auprc": auprc}


def random_expectation(mask: np.ndarray, k: int) -> dict[str, float]:
    """What a uniformly random ordering of the words scores on average (the `random` baseline)."""
    mask = np.asarray(mask, dtype=bool)
    share = float(mask.mean())
    return {"recall_at_k": min(k, len(mask)) / len(mask), "precision_at_k": share, "auprc": share, "span_hit": share}


def span_hit(span: tuple[int, int] | None, spans: Sequence[tuple[int, int]]) -> float:
    """1.0 when the character span `span` overlaps one of `spans`, else 0.0 (0.0 without a span)."""
    if span is None:
        return 0.0
    return float(any(span[0] < end and start < span[1] for start, end in spans))


def fit_idf(train_texts: Sequence[str]) -> dict[str, float]:
    """Smoothed IDF `ln((1 + n) / (1 + df)) + 1` (scikit-learn's) of lowercase words, from training notes."""
    df: Counter = Counter()
    for text in train_texts:
        df.update({w.lower() for w in WORD.findall(text)})
    n = len(train_texts)
    return {w: math.log((1 + n) / (1 + c)) + 1 for w, c in df.items()}


def tfidf_word_scores(text: str, idf: dict[str, float]) -> np.ndarray:
    """TF-IDF weight of each word of `text` in order (count in the note x IDF; unseen words get the
    IDF of a word in no training note)."""
    words = [w.lower() for w in WORD.findall(text)]
    tf = Counter(words)
    unseen = max(idf.values(), default=1.0)
    return np.array([tf[w] * idf.get(w, unseen) for w in words], dtype=float)


def pair_scores(text: str, evidence_spans: Sequence[tuple[int, int]], offsets: np.ndarray, scores: np.ndarray,
                top_span: tuple[int, int] | None, k: int, idf: dict[str, float] | None = None) -> dict[str, dict]:
    """`{scorer: {metric: value}}` of one (note, code) pair for `attention` and the `random` and `tfidf`
    baselines (`tfidf` only with `idf`). The `tfidf` top span is its highest word (expected hit over ties)."""
    units = word_units(text)
    mask = overlaps(units, evidence_spans)
    out = {"attention": {**plausibility(unit_scores(units, offsets, scores), mask, k),
                         "span_hit": span_hit(top_span, evidence_spans)},
           "random": random_expectation(mask, k)}
    if idf is not None:
        tfidf = tfidf_word_scores(text, idf)
        out["tfidf"] = {**plausibility(tfidf, mask, k), "span_hit": top_k_hits(tfidf, mask, 1)}
    return out


def mean_with_ci(values: Sequence[float], patient_ids: Sequence[str], n_bootstrap: int, seed: int,
                 level: float = 0.95) -> tuple[float, float, float]:
    """`(mean, ci_low, ci_high)` of per-pair values; the CI resamples patients (NaN without resamples)."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if n_bootstrap < 1:
        return mean, float("nan"), float("nan")
    weights = patient_resample_weights(patient_ids, n_bootstrap, seed)  # (B, n_pairs)
    total = weights.sum(axis=1)
    means = (weights @ values)[total > 0] / total[total > 0]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, float(low), float(high)
