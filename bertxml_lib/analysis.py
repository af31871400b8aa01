"""Notebook 06 — Table 2, Tables 3-4, Figure 2, confused related codes, paper vs reproduced (paper 4.4).

Every number is recomputed from `predictions/<row>.npz` (test probabilities) and the cohort's test
labels; `metrics/<row>.json` only supplies descriptive fields (family, encoder, max_len, train time).
The paper's numbers come from `paper_results` (package data), never from code.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import icd, metrics
from .paper_results import BERT_FAMILIES, FAMILIES, paper_facts, paper_table2, paper_table4
from .predictions import Predictions

_ROW_RE = re.compile(r"^ehr_(?P<encoder>[a-z0-9]+)_(?P<family>cls|xml)_(?P<max_len>\d+)$")
_LOGREG_RE = re.compile(r"^logreg_(?P<max_len>\d+)$")
TABLE2_COLUMNS = ["model", "family", "encoder", "max_len", "micro_auc", "macro_auc", "n_codes", "n_codes_skipped",
                  "train_seconds"]


def row_meta(row: str, meta: dict | None = None) -> dict:
    """`family, encoder, max_len, train_seconds` of a row: from its metrics record, else from its name."""
    meta = dict(meta or {})
    parsed = _ROW_RE.match(row) or _LOGREG_RE.match(row)
    guess = parsed.groupdict() if parsed else {}
    if _LOGREG_RE.match(row):
        guess["family"] = "logreg"
    family = meta.get("family") or guess.get("family")
    if family is None:
        raise ValueError(f"row {row!r}: no metrics record with a family and the name matches neither "
                         f"ehr_<encoder>_<cls|xml>_<max_len> nor logreg_<max_len>")
    max_len, seconds = meta.get("max_len", guess.get("max_len")), meta.get("train_seconds")
    return {"family": family, "encoder": meta.get("encoder", guess.get("encoder", "")) or "",
            "max_len": int(max_len) if max_len not in (None, "") else None,
            "train_seconds": float(seconds) if seconds is not None else np.nan}


def align_probs(pred: Predictions, note_ids: Sequence[str], codes: Sequence[str]) -> np.ndarray:
    """`pred.test_probs` reordered to `note_ids` (rows) and `codes` (columns): `(n_test, L)`."""
    row_of = {n: i for i, n in enumerate(map(str, pred.test_note_ids))}
    col_of = {c: j for j, c in enumerate(map(str, pred.codes))}
    missing_notes = [n for n in note_ids if str(n) not in row_of]
    missing_codes = [c for c in codes if c not in col_of]
    if missing_notes or missing_codes:
        raise ValueError(f"predictions {pred.row!r} lack {len(missing_notes)} test notes (e.g. {missing_notes[:3]}) "
                         f"and {len(missing_codes)} codes (e.g. {missing_codes[:3]}) of the cohort")
    return pred.test_probs[np.ix_([row_of[str(n)] for n in note_ids], [col_of[c] for c in codes])]


def _probs(pred: Predictions, test_labels: np.ndarray) -> np.ndarray:
    if pred.test_probs.shape != np.shape(test_labels):
        raise ValueError(f"predictions {pred.row!r}: test_probs {pred.test_probs.shape} do not match test labels "
                         f"{np.shape(test_labels)}; align them first (analysis.align_probs)")
    return pred.test_probs


def _sort_key(family: str, encoder: str, max_len) -> tuple:
    from .encoders import ENCODERS

    encoders = list(ENCODERS)
    return (FAMILIES.index(family) if family in FAMILIES[:5] else 5,
            encoders.index(encoder) if encoder in encoders else len(encoders), encoder,
            ("cls", "xml").index(family) if family in ("cls", "xml") else -1, max_len or 0)


def table2(preds: list[Predictions], test_labels: np.ndarray, metrics_meta: dict[str, dict]) -> pd.DataFrame:
    """Table 2: test micro/macro AUC of every row, recomputed from its test probabilities."""
    rows = []
    for pred in preds:
        probs = _probs(pred, test_labels)
        macro, skipped = metrics.macro_auc(test_labels, probs)
        meta = row_meta(pred.row, metrics_meta.get(pred.row))
        rows.append({"model": pred.row, "family": meta["family"], "encoder": meta["encoder"],
                     "max_len": meta["max_len"], "micro_auc": metrics.micro_auc(test_labels, probs),
                     "macro_auc": macro, "n_codes": probs.shape[1], "n_codes_skipped": skipped,
                     "train_seconds": meta["train_seconds"]})
    rows.sort(key=lambda r: _sort_key(r["family"], r["encoder"], r["max_len"]))
    return pd.DataFrame(rows, columns=TABLE2_COLUMNS)


def table3_low_frequency(preds: list[Predictions], test_labels: np.ndarray, train_counts: dict[str, int],
                         codes: Sequence[str], low_freq_max: int,
                         metrics_meta: dict[str, dict] | None = None) -> pd.DataFrame:
    """Table 3: macro AUC over codes with fewer than `low_freq_max` training notes, beside all codes."""
    missing = [c for c in codes if c not in train_counts]
    if missing:
        raise ValueError(f"train_counts lacks {len(missing)} label-set codes, e.g. {missing[:3]}")
    low = np.array([train_counts[c] < low_freq_max for c in codes])
    rows = []
    for pred in preds:
        aucs = metrics.per_code_auc(test_labels, _probs(pred, test_labels))
        low_aucs = aucs[low & ~np.isnan(aucs)]
        meta = row_meta(pred.row, (metrics_meta or {}).get(pred.row))
        rows.append({"model": pred.row, "family": meta["family"], "low_freq_max": low_freq_max,
                     "n_low_freq_codes": int(low.sum()), "n_low_freq_evaluated": len(low_aucs),
                     "macro_auc_low_freq": float(low_aucs.mean()) if len(low_aucs) else np.nan,
                     "macro_auc_all": float(np.nanmean(aucs)) if (~np.isnan(aucs)).any() else np.nan,
                     "_key": _sort_key(meta["family"], meta["encoder"], meta["max_len"])})
    rows.sort(key=lambda r: r.pop("_key"))
    return pd.DataFrame(rows)


def table4_per_code(pred: Predictions, test_labels: np.ndarray, codes: Sequence[str], descriptions: dict[str, str],
                    train_counts: dict[str, int], top: int = 45) -> pd.DataFrame:
    """Table 4: the `top` codes by test count with their AUC; the paper's count and AUC where it lists the code."""
    aucs = metrics.per_code_auc(test_labels, _probs(pred, test_labels))
    df = pd.DataFrame({"code": list(codes), "description": [descriptions.get(c, c) for c in codes],
                       "train_count": [int(train_counts.get(c, 0)) for c in codes],
                       "test_count": np.asarray(test_labels).sum(axis=0).astype(int), "auc": aucs})
    df = df.sort_values(["test_count", "train_count", "code"], ascending=[False, False, True]).head(top)
    paper = paper_table4().set_index("code")
    df["paper_test_count"] = df["code"].map(paper["test_count"]).astype("Int64")
    df["paper_auc"] = df["code"].map(paper["auc"])
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    df.insert(0, "model", pred.row)
    return df.reset_index(drop=True)


def count_high_auc(per_code_auc: np.ndarray, threshold: float = 0.98) -> tuple[int, int]:
    """`(codes with AUC >= threshold, codes with a defined AUC)` (paper 4.4: 467 of 2,292 at 0.98)."""
    aucs = np.asarray(per_code_auc, dtype=float)
    defined = aucs[~np.isnan(aucs)]
    return int((defined >= threshold).sum()), len(defined)


def auc_distribution_figure(per_code_auc: dict[str, np.ndarray], path: str | Path, high_auc: float = 0.98):
    """Figure 2: histogram of per-code test AUC for each given row, with the `high_auc` line; PNG at `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .atomic import atomic_path

    if not per_code_auc:
        raise ValueError("auc_distribution_figure needs at least one row of per-code AUCs")
    values = {row: np.asarray(a, dtype=float)[~np.isnan(np.asarray(a, dtype=float))] for row, a in per_code_auc.items()}
    lowest = min((v.min() for v in values.values() if len(v)), default=0.5)
    bins = np.linspace(min(0.5, np.floor(lowest * 20) / 20), 1.0, 41)
    fig = Figure(figsize=(8, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for row, v in values.items():
        n_high, n = count_high_auc(v, high_auc)
        ax.hist(v, bins=bins, histtype="step", linewidth=2,
                label=f"{row}: median {np.median(v) if n else np.nan:.3f}, {n_high}/{n} codes ≥ {high_auc:g}")
    ax.axvline(high_auc, color="k", linestyle="--", linewidth=1)
    ax.set(xlabel="test AUC of one ICD-10 code", ylabel="codes",
           title="Figure 2 (paper 4.4): distribution of per-code AUC across ICD-10 codes")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return fig


def confused_pairs(pred: Predictions, test_labels: np.ndarray, codes: Sequence[str], descriptions: dict[str, str],
                   top: int = 10) -> pd.DataFrame:
    """For the `top` lowest-AUC codes: the code most often scored above it on its positive notes.

    The rate of another code k = share of code j's positive notes, among those where k is absent, on
    which k gets the higher probability. `confused_with` is the highest-rate code of j's ICD-10 category
    (`icd.related_codes`; ties go to the closest code), else of all codes (`same_category` False).
    `other_rate` is the mean rate of the codes outside the category: the level a related code must beat
    for "the model confuses closely related classes" (paper 4.4: G44.029 vs G44.329) to hold.
    """
    probs = _probs(pred, test_labels)
    y = np.asarray(test_labels) > 0
    codes = list(codes)
    index = {c: j for j, c in enumerate(codes)}
    aucs = metrics.per_code_auc(test_labels, probs)
    order = [j for j in np.argsort(aucs, kind="stable") if not np.isnan(aucs[j])][:top]
    rows = []
    for j in order:
        pos = y[:, j]
        absent = ~y[pos]  # (n_pos, L)
        above = (probs[pos] > probs[pos, j][:, None]) & absent
        compared = absent.sum(axis=0)
        rate = np.where(compared > 0, above.sum(axis=0) / np.maximum(compared, 1), np.nan)  # (L,)
        rate[j] = np.nan
        related = [index[c] for c in icd.related_codes(codes[j], codes)]
        others = np.setdiff1d(np.arange(len(codes)), [j, *related])
        candidates = np.array(related or others, dtype=int)
        found = not np.isnan(rate[candidates]).all()
        best = candidates[int(np.nanargmax(rate[candidates]))] if found else None  # first max = closest related
        other = codes[best] if found else ""
        other_rates = rate[others][~np.isnan(rate[others])] if related else np.array([])
        rows.append({"code": codes[j], "description": descriptions.get(codes[j], codes[j]), "auc": aucs[j],
                     "n_positive": int(pos.sum()), "confused_with": other,
                     "confused_description": descriptions.get(other, other), "same_category": bool(related) and found,
                     "rate": float(rate[best]) if found else np.nan, "n_compared": int(compared[best]) if found else 0,
                     "other_rate": float(other_rates.mean()) if len(other_rates) else np.nan})
    return pd.DataFrame(rows, columns=["code", "description", "auc", "n_positive", "confused_with",
                                       "confused_description", "same_category", "rate", "n_compared", "other_rate"])


# ---------------------------------------------------------------------------------------------
# Paper vs reproduced: each `holds` is computed from the two tables, never typed.
# ---------------------------------------------------------------------------------------------

def _pairs(df: pd.DataFrame, group: list[str], col: str, better, worse, metric: str) -> list[tuple[str, float, float]]:
    """(group label, metric of `better`, metric of `worse`) for every group that has both values of `col`."""
    out = []
    for key, g in df.groupby(group, sort=False, dropna=False):
        a, b = g[g[col] == better], g[g[col] == worse]
        if len(a) and len(b):
            label = "/".join(str(k) for k in (key if isinstance(key, tuple) else (key,)) if str(k))
            out.append((label, float(a[metric].max()), float(b[metric].max())))
    return out


def _pairs_text(pairs) -> str:
    return "; ".join(f"{label}: {a:.3f} vs {b:.3f}" for label, a, b in pairs) or "no such pair"


def _holds(ok: bool | None) -> str:
    return "n.a." if ok is None else ("yes" if ok else "no")


def _pair_claim(quantity: str, paper_pairs, our_pairs) -> dict:
    ok = None if not our_pairs else all(a > b for _, a, b in our_pairs)
    failing = [label for label, a, b in our_pairs if not a > b]
    note = ("no comparable pair of rows was run" if ok is None else
            f"does not reproduce for {', '.join(failing)}" if failing else "every comparable pair agrees")
    return {"quantity": quantity, "paper": _pairs_text(paper_pairs), "reproduced": _pairs_text(our_pairs),
            "holds": _holds(ok), "note": note}


def paper_vs_reproduced(table2_df: pd.DataFrame, table3_df: pd.DataFrame | None = None,
                        high_auc_count: dict | None = None, confused_df: pd.DataFrame | None = None,
                        oov: dict | None = None, codes_per_note: float | None = None) -> pd.DataFrame:
    """The paper's findings (Table 2, Table 3, 4.4, 3.2, 4.1) beside ours: `quantity, paper, reproduced, holds, note`.

    `high_auc_count`: `{"row", "n_high", "n_evaluated", "threshold"}`; `oov`: `{"general", "ehr"}` OOV
    words per note; `holds` is yes/no where the finding is a comparison, n.a. where the number is a
    property of the data or nothing comparable was run.
    """
    facts, paper = paper_facts(), paper_table2()
    ours = table2_df.copy()
    rows: list[dict] = []
    p_best, o_best = paper.loc[paper["micro_auc"].idxmax()], ours.loc[ours["micro_auc"].idxmax()]
    p_shape = (p_best["family"], p_best["max_len"] == paper["max_len"].max())
    o_shape = (o_best["family"], o_best["max_len"] == ours["max_len"].max())
    rows.append({"quantity": "best row by micro AUC is BERT-XML at the longest input", "paper": p_best["model"],
                 "reproduced": o_best["model"], "holds": _holds(o_shape == p_shape),
                 "note": f"ours is family {o_best['family']} at max_len {o_best['max_len']}"})
    for metric in ("micro_auc", "macro_auc"):
        rows.append({"quantity": f"best {metric.replace('_', ' ').replace('auc', 'AUC')} (Table 2)",
                     "paper": round(float(paper[metric].max()), 3), "reproduced": round(float(ours[metric].max()), 4),
                     "holds": "n.a.", "note": "absolute AUCs depend on the cohort; compare orderings, not values"})
    p_bert, o_bert = paper[paper["family"].isin(BERT_FAMILIES)], ours[ours["family"].isin(BERT_FAMILIES)]
    for metric in ("micro_auc", "macro_auc"):
        p_lr, o_lr = paper.loc[paper["family"] == "logreg", metric], ours.loc[ours["family"] == "logreg", metric]
        p_pairs = [(r["model"], r[metric], float(p_lr.max())) for _, r in p_bert.iterrows()]
        o_pairs = [(r["model"], r[metric], float(o_lr.max())) for _, r in o_bert.iterrows()] if len(o_lr) else []
        claim = _pair_claim(f"every BERT row beats logistic regression ({metric.split('_')[0]} AUC)", [], o_pairs)
        n_ok = sum(a > b for _, a, b in p_pairs)
        claim["paper"] = f"{n_ok}/{len(p_pairs)} BERT rows above LogReg {float(p_lr.max()):.3f}"
        if o_pairs:
            claim["reproduced"] = (f"{sum(a > b for _, a, b in o_pairs)}/{len(o_pairs)} BERT rows above LogReg "
                                   f"{float(o_lr.max()):.4f}")
        rows.append(claim)
    p_ehr, o_ehr = paper[paper["family"].isin(["cls", "xml"])], ours[ours["family"].isin(["cls", "xml"])]
    for metric in ("micro_auc", "macro_auc"):
        rows.append(_pair_claim(f"XML head beats [CLS] head at max_len 1024 ({metric.split('_')[0]} AUC)",
                                _pairs(p_ehr[p_ehr["max_len"] == 1024], ["encoder"], "family", "xml", "cls", metric),
                                _pairs(o_ehr[o_ehr["max_len"] == 1024], ["encoder"], "family", "xml", "cls", metric)))
    for metric in ("micro_auc", "macro_auc"):
        rows.append(_pair_claim(f"max_len 1024 beats 512 ({metric.split('_')[0]} AUC)",
                                _pairs(paper, ["family", "encoder"], "max_len", 1024, 512, metric),
                                _pairs(ours, ["family", "encoder"], "max_len", 1024, 512, metric)))
    timed = _pairs(ours.dropna(subset=["train_seconds"]), ["family", "encoder"], "max_len", 1024, 512, "train_seconds")
    rows.append({"quantity": "training time at max_len 1024 / at 512", "paper": facts["training_time"]["ratio_1024_vs_512"],
                 "reproduced": round(float(np.mean([a / b for _, a, b in timed if b > 0])), 2) if timed else "not run",
                 "holds": "n.a.",
                 "note": "wall time of whole fine-tuning runs on this machine; batches are length-bucketed, so short "
                         "notes are not padded to max_len and the ratio is not the paper's padded-batch ratio"})
    rows += _table3_claims(facts, paper, ours, table3_df)
    rows.append(_high_auc_claim(facts, high_auc_count))
    rows.append(_confusion_claim(facts, confused_df))
    o = facts["oov_words_per_note"]
    rows.append({"quantity": "OOV words per note, general vs EHR vocabulary (3.2)", "paper": f"{o['general']} vs {o['ehr']}",
                 "reproduced": f"{oov['general']:.2f} vs {oov['ehr']:.2f}" if oov else "not measured",
                 "holds": _holds(None if not oov else oov["ehr"] < oov["general"]),
                 "note": (f"ratio general/EHR: paper {o['general'] / o['ehr']:.0f}x, ours "
                          f"{oov['general'] / max(oov['ehr'], 1e-9):.1f}x") if oov else "tables/oov_summary.csv missing"})
    rows.append({"quantity": "codes per training note (4.1)", "paper": facts["cohort"]["codes_per_note"],
                 "reproduced": round(codes_per_note, 2) if codes_per_note is not None else "not measured",
                 "holds": "n.a.", "note": "a property of the cohort, not a finding"})
    for row in rows:
        if row["holds"] == "no" and not row["note"].startswith("does not reproduce"):
            row["note"] = f"does not reproduce here: {row['note']}"
    return pd.DataFrame(rows, columns=["quantity", "paper", "reproduced", "holds", "note"])


def _table3_claims(facts: dict, paper: pd.DataFrame, ours: pd.DataFrame, table3_df: pd.DataFrame | None) -> list[dict]:
    """Table 3: best BERT vs best non-BERT row (by Table 2 micro AUC) on low-frequency codes."""
    t3 = facts["table3"]
    p_non, p_bert = (next(r for r in t3["rows"] if r["family"] == f) for f in ("mha", "xml"))
    # Table 2 macro AUC of the same two models (their best row when the paper lists several lengths).
    p_all = {f: float(paper.loc[(paper["family"] == f) & (paper["encoder"] == r["encoder"]), "macro_auc"].max())
             for f, r in (("mha", p_non), ("xml", p_bert))}
    if any(np.isnan(v) for v in p_all.values()):
        raise ValueError(f"paper_facts.json table3 rows {t3['rows']} match no family/encoder of paper_table2.csv")
    paper_gap = (p_bert["macro_auc"] - p_non["macro_auc"], p_all["xml"] - p_all["mha"])
    claims = [("best BERT row beats best non-BERT row on low-frequency codes (Table 3)",
               f"{p_bert['macro_auc']} vs {p_non['macro_auc']} ({t3['n_codes']} codes < {t3['low_freq_max']} train notes)"),
              ("BERT's margin is larger on low-frequency codes than on all codes (Table 3 vs Table 2)",
               f"{paper_gap[0]:.3f} vs {paper_gap[1]:.3f}"),
              ("best BERT row as good on low-frequency codes as on all codes (Table 3 vs Table 2)",
               f"{p_bert['macro_auc']} vs {p_all['xml']}")]
    bert, non = ours[ours["family"].isin(BERT_FAMILIES)], ours[~ours["family"].isin(BERT_FAMILIES)]
    if table3_df is None or not len(bert) or not len(non):
        return [{"quantity": q, "paper": p, "reproduced": "not run", "holds": "n.a.",
                 "note": "needs a BERT row, a non-BERT row and Table 3"} for q, p in claims]
    t3_ours = table3_df.set_index("model")
    b, n = t3_ours.loc[bert.loc[bert["micro_auc"].idxmax(), "model"]], t3_ours.loc[non.loc[non["micro_auc"].idxmax(), "model"]]
    if not b["n_low_freq_evaluated"]:
        return [{"quantity": q, "paper": p, "reproduced": "no low-frequency code with test positives", "holds": "n.a.",
                 "note": f"no evaluable code has fewer than {b['low_freq_max']} training notes"} for q, p in claims]
    gaps = (b["macro_auc_low_freq"] - n["macro_auc_low_freq"], b["macro_auc_all"] - n["macro_auc_all"])
    scope = f"{b.name} vs {n.name}, {int(b['n_low_freq_evaluated'])} codes < {int(b['low_freq_max'])} train notes"
    ours_text = [(f"{b['macro_auc_low_freq']:.3f} vs {n['macro_auc_low_freq']:.3f}", gaps[0] > 0),
                 (f"{gaps[0]:.3f} vs {gaps[1]:.3f}", gaps[0] > gaps[1]),
                 (f"{b['macro_auc_low_freq']:.3f} vs {b['macro_auc_all']:.3f}",
                  b["macro_auc_low_freq"] >= b["macro_auc_all"])]
    return [{"quantity": q, "paper": p, "reproduced": r, "holds": _holds(bool(ok)), "note": scope}
            for (q, p), (r, ok) in zip(claims, ours_text)]


def _high_auc_claim(facts: dict, count: dict | None) -> dict:
    p = facts["per_code"]
    out = {"quantity": f"codes with AUC >= {p['high_auc_threshold']} (4.4, Figure 2)",
           "paper": f"{p['n_codes_high_auc']} of {p['n_codes']} ({p['n_codes_high_auc'] / p['n_codes']:.1%})",
           "reproduced": "not run", "holds": "n.a.",
           "note": "a count that depends on label-set size and data; compared as a share of codes"}
    if count:
        out["reproduced"] = (f"{count['n_high']} of {count['n_evaluated']} "
                             f"({count['n_high'] / max(count['n_evaluated'], 1):.1%}, {count['row']})")
        if count.get("threshold", p["high_auc_threshold"]) != p["high_auc_threshold"]:
            out["note"] += f"; our threshold is {count['threshold']}"
    return out


def _confusion_claim(facts: dict, confused_df: pd.DataFrame | None) -> dict:
    ex = facts["confused_example"]
    out = {"quantity": "low-AUC codes are confused with closely related codes (4.4)",
           "paper": f"{ex['code']} (AUC {ex['auc']}) scored below {ex['confused_with']}",
           "reproduced": "not run", "holds": "n.a.", "note": "no confused-pairs table"}
    if confused_df is None or not len(confused_df):
        return out
    rel = confused_df[confused_df["same_category"]]
    if not len(rel):
        out.update(reproduced=f"0 of {len(confused_df)} lowest-AUC codes have a same-category code in the label set",
                   note="the label set holds no related code to confuse them with")
        return out
    beats = rel["rate"] > rel["other_rate"].fillna(np.inf)
    first = rel.iloc[0]
    out.update(reproduced=(f"{int(beats.sum())} of {len(rel)} lowest-AUC codes with a same-category code are "
                           f"out-scored by it more often than by an average unrelated code; e.g. {first['code']} "
                           f"(AUC {first['auc']:.2f}): {first['confused_with']} on {first['rate']:.0%} of its "
                           f"positive notes vs {first['other_rate']:.0%}"),
               holds=_holds(bool(beats.sum() > len(rel) / 2)),
               note=f"holds when most of the {len(rel)} codes show it; {len(confused_df) - len(rel)} listed codes "
                    f"have no same-category code in the label set")
    return out


# ---------------------------------------------------------------------------------------------
# The stage: predictions + cohort -> tables/ and figures/
# ---------------------------------------------------------------------------------------------

def best_rows(table2_df: pd.DataFrame) -> dict[str, str]:
    """The best row (by test micro AUC) of every family, in Table 2 order."""
    best = table2_df.loc[table2_df.groupby("family", sort=False)["micro_auc"].idxmax()]
    return dict(zip(best["family"], best["model"]))


def _read_oov(paths) -> dict | None:
    """OOV words per note of both vocabularies from notebook 02's `tables/oov_summary.csv`, if present."""
    path = paths.table("oov_summary.csv")
    if not path.exists():
        return None
    summary = pd.read_csv(path).set_index("tokenizer")["oov_words_per_note"]
    if not {"general_bert_base_uncased", "ehr_wordpiece"} <= set(summary.index):
        return None
    return {"general": float(summary["general_bert_base_uncased"]), "ehr": float(summary["ehr_wordpiece"])}


def run_analysis(out_dir: str | Path, low_freq_max: int = 100, top_codes: int = 45, high_auc: float = 0.98,
                 confused_top: int = 10) -> dict:
    """Notebook 06: every table of paper 4.4 and Figure 2 from `predictions/*.npz`, written atomically.

    Table 4, Figure 2's count of high-AUC codes and the confused pairs use the best XML row (the
    paper's Big EHR BERT + XML), or the best row when no XML row was run.
    """
    from dataclasses import replace

    from .atomic import read_json, write_csv
    from .cohort import load_cohort
    from .paths import RunPaths
    from .predictions import load_predictions

    paths = RunPaths(out_dir)
    files = sorted(paths.predictions_dir.glob("*.npz")) if paths.predictions_dir.exists() else []
    if not files:
        raise FileNotFoundError(f"{paths.predictions_dir}: no predictions; run notebooks 04 and 05 first")
    cohort = load_cohort(out_dir)
    test = cohort.split("test")
    y = cohort.label_matrix(test)
    note_ids = test["note_id"].astype(str).tolist()
    preds = []
    for path in files:
        pred = load_predictions(path)
        preds.append(replace(pred, codes=np.asarray(cohort.codes), test_note_ids=np.asarray(note_ids),
                             test_probs=align_probs(pred, note_ids, cohort.codes)))
    meta = {p.row: read_json(paths.metrics_file(p.row)) for p in preds if paths.metrics_file(p.row).exists()}
    by_row = {p.row: p for p in preds}

    t2 = table2(preds, y, meta)
    t3 = table3_low_frequency(preds, y, cohort.train_counts, cohort.codes, low_freq_max, meta)
    best = best_rows(t2)
    focus = best.get("xml", t2.loc[t2["micro_auc"].idxmax(), "model"])
    t4 = table4_per_code(by_row[focus], y, cohort.codes, cohort.descriptions, cohort.train_counts, top_codes)
    per_code = {row: metrics.per_code_auc(y, by_row[row].test_probs) for row in best.values()}
    n_high, n_evaluated = count_high_auc(per_code[focus], high_auc)
    confused = confused_pairs(by_row[focus], y, cohort.codes, cohort.descriptions, confused_top)
    codes_per_note = float(cohort.split("train")["codes"].map(len).mean())
    comparison = paper_vs_reproduced(
        t2, t3, {"row": focus, "n_high": n_high, "n_evaluated": n_evaluated, "threshold": high_auc},
        confused, _read_oov(paths), codes_per_note)

    write_csv(paths.table("table2.csv"), t2)
    write_csv(paths.table("table3_low_frequency.csv"), t3)
    write_csv(paths.table("table4_per_code.csv"), t4)
    write_csv(paths.table("confused_pairs.csv"), confused)
    write_csv(paths.table("paper_vs_reproduced.csv"), comparison)
    auc_distribution_figure(per_code, paths.figure("figure2_auc_distribution.png"), high_auc)
    return {"table2": t2, "table3": t3, "table4": t4, "confused_pairs": confused, "paper_vs_reproduced": comparison,
            "per_code_auc": per_code, "best_row": focus, "n_high_auc": n_high, "n_codes_evaluated": n_evaluated}
