"""Notebook 09 — what users of a coder need besides AUC (the population-scale study of Edin et al. 2026,
5.8M Danish records): an under-coding audit of confident "false positives", performance by subgroup, and
the share of notes that can be coded automatically.

Every threshold here is tuned on dev predictions and dev labels only (`thresholds`, and
`precision_thresholds` below), then applied to test.
- Under-coding: test (note, code) pairs the model scores at or above the code's dev-tuned F1 threshold
  but that are not labels. With ground truth (the synthetic generator) a pair is confirmed when the note
  documents the condition (`DOCUMENTED_KINDS`: written evidence of a missed code, an uncoded chronic
  condition in the history); the list's precision is the share confirmed.
- Automation: a code's automation threshold is the lowest dev score at which its dev precision reaches
  the target; a note is auto-coded when it has at least one such confident code and no code in the
  uncertain band (at or above the F1 threshold but below the automation threshold). Exact match: the
  predicted code set (F1 thresholds) equals the label set.
- Subgroups: micro F1 (dev-tuned global threshold) and micro AUC per note type, length bin (edges from
  training-note quantiles) and age band, with patient-bootstrap CIs.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd

from bertxml_lib.evaluation import metrics

#: Truth kinds that mean "the note documents this condition" (synthetic generator, `TRUTH_COLUMNS`).
DOCUMENTED_KINDS = ("evidenced", "past_history")
#: Reference values of the population-scale study (Edin et al. 2026) shown beside ours.
POPULATION_STUDY = {"automation_rate": 0.50, "r_at_10": 0.955, "undercoding_confirmed": (0.76, 0.86),
                    "specialty_f1": (0.53, 0.91)}
AGE_BANDS = ((0, 40, "18-39"), (40, 65, "40-64"), (65, 200, "65+"))
_AGE = re.compile(r"\b(\d{1,3})\s*(?:yo\b|y/o|y\.o\.|-?\s*years?[- ]old|años)", re.IGNORECASE)


def suspected_undercoding(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, note_ids: Sequence[str],
                          codes: Sequence[str]) -> pd.DataFrame:
    """`note_id, code, probability, threshold` of every pair with `prob >= threshold[code]` and label 0,
    most confident first."""
    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels)
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=float), (probs.shape[1],))
    rows, cols = np.nonzero((probs >= thresholds[None, :]) & (labels == 0))
    out = pd.DataFrame({"note_id": np.asarray(note_ids, dtype=str)[rows], "code": np.asarray(codes, dtype=str)[cols],
                        "probability": probs[rows, cols], "threshold": thresholds[cols]})
    return out.sort_values(["probability", "note_id", "code"], ascending=[False, True, True],
                           kind="stable").reset_index(drop=True)


def documented_pairs(truth: pd.DataFrame, kinds: Sequence[str] = DOCUMENTED_KINDS) -> pd.DataFrame:
    """One row per `(note_id, code)` the truth says the note documents, with the kinds found (`;`-joined)."""
    kept = truth[truth["kind"].isin(kinds) & (truth["start"] >= 0)]
    return (kept.groupby(["note_id", "code"])["kind"].agg(lambda k: ";".join(sorted(set(k))))
            .rename("truth_kind").reset_index())


def undercoding_precision(suspects: pd.DataFrame, documented: pd.DataFrame) -> pd.DataFrame:
    """Per code and overall (`code == "ALL"`): suspected pairs, how many the truth confirms, precision."""
    marked = suspects.merge(documented[["note_id", "code"]].assign(confirmed=True), on=["note_id", "code"],
                            how="left")
    marked["confirmed"] = marked["confirmed"].fillna(False).astype(bool)
    per_code = (marked.groupby("code", sort=True)["confirmed"].agg(["size", "sum"])
                .rename(columns={"size": "n_suspected", "sum": "n_confirmed"}).reset_index())
    total = pd.DataFrame([{"code": "ALL", "n_suspected": len(marked), "n_confirmed": int(marked["confirmed"].sum())}])
    out = pd.concat([total, per_code.sort_values(["n_suspected", "code"], ascending=[False, True])],
                    ignore_index=True)
    out["n_confirmed"] = out["n_confirmed"].astype(int)
    out["precision"] = np.where(out["n_suspected"] > 0, out["n_confirmed"] / out["n_suspected"].clip(lower=1), np.nan)
    return out


def precision_thresholds(dev_labels: np.ndarray, dev_probs: np.ndarray, target: float) -> np.ndarray:
    """Per code, the lowest dev score `t` with dev precision of `prob >= t` at least `target` (inf when no
    cut reaches it). Dev arrays only."""
    labels, probs = np.asarray(dev_labels, dtype=bool), np.asarray(dev_probs, dtype=float)
    out = np.full(labels.shape[1], np.inf)
    for j in range(labels.shape[1]):
        order = np.argsort(-probs[:, j], kind="stable")
        scores, hits = probs[order, j], labels[order, j]
        last = np.r_[scores[1:] != scores[:-1], True]  # decisions at each distinct score
        precision = np.cumsum(hits)[last] / (np.flatnonzero(last) + 1)
        ok = np.flatnonzero(precision >= target)
        if len(ok):
            out[j] = scores[last][ok[-1]]
    return out


def automation(probs: np.ndarray, labels: np.ndarray, f1_thresholds: np.ndarray, auto_thresholds: np.ndarray) -> dict:
    """Exact-match rate, automation rate and the test precision / exact match of auto-coded notes
    (module docstring)."""
    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels, dtype=bool)
    f1_t = np.broadcast_to(np.asarray(f1_thresholds, dtype=float), (probs.shape[1],))
    predicted = probs >= f1_t[None, :]
    confident = probs >= np.asarray(auto_thresholds, dtype=float)[None, :]
    uncertain = predicted & ~confident
    auto = confident.any(axis=1) & ~uncertain.any(axis=1)
    assigned = confident[auto]
    n_assigned = int(assigned.sum())
    return {"n_notes": int(len(probs)), "exact_match": float((predicted == labels).all(axis=1).mean()),
            "automation_rate": float(auto.mean()), "n_auto": int(auto.sum()),
            "auto_precision": float((assigned & labels[auto]).sum() / n_assigned) if n_assigned else float("nan"),
            "auto_exact_match": float((assigned == labels[auto]).all(axis=1).mean()) if auto.any() else float("nan")}


def age_of(text: str) -> float:
    """The patient's age as the note states it ("67 yo", "45-year-old", "de 45 años"), NaN when unstated."""
    m = _AGE.search(text)
    return float(m.group(1)) if m and 0 < int(m.group(1)) < 120 else float("nan")


def age_band(age: float) -> str:
    if np.isnan(age):
        return "not stated"
    return next((name for low, high, name in AGE_BANDS if low <= age < high), "not stated")


def length_bins(train_words: Sequence[int], n_bins: int) -> np.ndarray:
    """Inner bin edges `(n_bins - 1,)` at training-note word-count quantiles (train only)."""
    return np.unique(np.quantile(np.asarray(train_words, dtype=float), np.linspace(0, 1, n_bins + 1)[1:-1]))


def length_bin_names(words: Sequence[int], edges: np.ndarray) -> list[str]:
    """`"<= e1 words"`, `"e1-e2 words"`, `"> e_last words"` for each note."""
    edges = np.asarray(edges, dtype=float)
    names = [f"<= {edges[0]:.0f} words"] if len(edges) else ["all lengths"]
    names += [f"{a:.0f}-{b:.0f} words" for a, b in zip(edges[:-1], edges[1:])]
    names += [f"> {edges[-1]:.0f} words"] if len(edges) else []
    return [names[int(np.searchsorted(edges, w, side="left"))] for w in words]


def subgroup_table(labels: np.ndarray, probs: np.ndarray, threshold: float, groups: dict[str, Sequence[str]],
                   patient_ids: Sequence[str], n_bootstrap: int, seed: int) -> pd.DataFrame:
    """One row per (grouping, group): notes, patients, micro F1 and micro AUC with patient-bootstrap CIs
    (NaN where a group's labels hold one class only)."""
    labels, probs, patient_ids = np.asarray(labels), np.asarray(probs), np.asarray(patient_ids, dtype=str)
    rows = []
    for grouping, values in groups.items():
        values = np.asarray(values, dtype=str)
        for group in sorted(set(values)):
            keep = values == group
            y, p = labels[keep], probs[keep]
            both = 0 < y.sum() < y.size
            row = {"grouping": grouping, "group": group, "n_notes": int(keep.sum()),
                   "n_patients": int(len(set(patient_ids[keep]))),
                   "micro_f1": metrics.f1_scores(y, p, threshold)["micro_f1"] if y.any() else np.nan,
                   "micro_auc": metrics.micro_auc(y, p) if both else np.nan}
            for m in ("micro_f1", "micro_auc"):
                row[f"{m}_ci_low"] = row[f"{m}_ci_high"] = np.nan
            if n_bootstrap > 0 and both:
                samples = metrics.bootstrap_micro(y, p, threshold, patient_ids[keep], n_bootstrap, seed)
                ci = metrics.confidence_intervals(samples)
                row.update(ci)
            rows.append(row)
    return pd.DataFrame(rows)
