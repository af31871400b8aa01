"""Paper 4.5 — evidence for a predicted code: attention weights merged into character spans of the note,
and code descriptions for the `predict` output (shared by every model with attention)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bertxml_lib.data.loaders import describe_code


def merge_spans(weights: np.ndarray, offsets: np.ndarray, words: np.ndarray, span_words: int) -> list[tuple]:
    """`(start, end, mass)` spans of one segment: its top `span_words` words by attention mass that get
    more than a uniform share (1 / words; the top word always), runs of adjacent ones merged."""
    if not len(weights):
        return []
    word_ids, local = np.unique(words, return_inverse=True)  # words in order of appearance
    mass = np.bincount(local, weights=weights)
    top = np.argsort(-mass, kind="stable")[:span_words]
    keep = np.sort(np.r_[top[0], top[1:][mass[top[1:]] > 1 / len(mass)]])
    spans, run = [], [keep[0]]
    for w in keep[1:]:
        if w == run[-1] + 1 and word_ids[w] == word_ids[run[-1]] + 1:
            run.append(w)
        else:
            spans.append(run)
            run = [w]
    spans.append(run)
    out = []
    for run in spans:
        tokens = np.isin(local, run)
        out.append((int(offsets[tokens, 0].min()), int(offsets[tokens, 1].max()), float(mass[run].sum())))
    return out


def token_scores(segments: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """`(offsets (n, 2), scores (n,))` of one (note, code) over all its segments' tokens, from
    `predict.attention_weights` entries `(segment, offsets, words, weights, prob)`: a token's score is its
    attention times its segment's probability for the code, the product `predict` ranks spans by."""
    if not segments:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    offsets = np.concatenate([np.asarray(o, dtype=np.int64).reshape(-1, 2) for _, o, _, _, _ in segments])
    scores = np.concatenate([np.asarray(w, dtype=float) * prob for _, _, _, w, prob in segments])
    return offsets, scores


def segment_scores(seg_offsets: list[np.ndarray], weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(offsets (n, 2), scores (n,))` of a hier model's (note, code): one unit per non-empty segment, the
    character span it covers, scored by the segment's attention weight."""
    units = [(int(o[:, 0].min()), int(o[:, 1].max()), float(w))
             for o, w in zip((np.asarray(o, dtype=np.int64).reshape(-1, 2) for o in seg_offsets), weights) if len(o)]
    if not units:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    return np.array([u[:2] for u in units], dtype=np.int64), np.array([u[2] for u in units])


def describe_codes(codes: list[str], model_dir: Path) -> list[str]:
    """Descriptions from the run's `cohort/label_set.json` (described when the cohort was built, ICD-9 or
    ICD-10), else from the code system the label set names (`icd_version`, default ICD-10-CM)."""
    label_set = model_dir.parent.parent / "cohort" / "label_set.json"
    meta = json.loads(label_set.read_text()) if label_set.is_file() else {}
    known, version = meta.get("descriptions", {}), int(meta.get("icd_version", 10))

    def one(code: str) -> str:
        if code in known:
            return known[code]
        try:
            return describe_code(code, version)
        except ValueError:  # not a code of that version: show it as is
            return code
    return [one(c) for c in codes]
