"""Notebook 06 — the paper's findings beside ours (paper 3.2, 4.1, 4.4, Tables 2-3): `paper_vs_reproduced`.

A finding that compares two models is decided by the paired patient-bootstrap difference (better row
minus worse row on the same resamples, `metrics.paired_difference`): `holds` when its 95% interval lies
above 0, `contradicted` below 0, `inconclusive` when it spans 0. A finding over several pairs ("every
BERT row beats LogReg") holds when every pair holds, is contradicted when any pair is, and is
inconclusive otherwise; its row shows the deciding pair (the contradicted pair furthest below 0, else
the pair with the lowest interval bound), and `comparison_pairs` lists every pair. Properties of the
data (codes per note, the best AUC) and counts get `n.a.`: no verdict is drawn from point estimates.
The floor and ceiling rows (`prior`, `oracle`) take part in no finding.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bertxml_lib.core.rows import REFERENCE_ROWS
from bertxml_lib.evaluation.metrics import paired_difference
from bertxml_lib.evaluation.paper_results import BERT_FAMILIES, OUR_BERT_FAMILIES, paper_facts, paper_table2

COLUMNS = ["quantity", "paper", "reproduced", "metric", "better", "worse", "difference", "ci_low", "ci_high",
           "verdict", "note"]
PAIR_COLUMNS = ["quantity", "metric", "better", "worse", "better_value", "worse_value", "difference", "ci_low",
                "ci_high", "verdict"]
NOT_DECIDED = "n.a."


class Evidence:
    """Point values (Table 2, Table 3) and per-resample values of every row on one set of patient resamples.

    `samples[row]` holds `micro_auc`, `macro_auc` `(B,)` and `per_code_auc (B, L)`; `low_freq_codes (L,)`
    marks Table 3's codes. Metrics: `micro_auc`, `macro_auc` (Table 2), `macro_auc_low_freq` and
    `macro_auc_all` (Table 3: mean per-code AUC over the low-frequency codes / every code)."""

    def __init__(self, table2_df: pd.DataFrame, table3_df: pd.DataFrame | None = None,
                 samples: dict[str, dict[str, np.ndarray]] | None = None, low_freq_codes=None):
        self.t2 = table2_df.set_index("model")
        self.t3 = table3_df.set_index("model") if table3_df is not None and len(table3_df) else None
        self.samples = samples or {}
        self.low = None if low_freq_codes is None else np.asarray(low_freq_codes, dtype=bool)

    def value(self, row: str, metric: str) -> float:
        if metric in ("macro_auc_low_freq", "macro_auc_all"):
            return float(self.t3.loc[row, metric]) if self.t3 is not None and row in self.t3.index else np.nan
        return float(self.t2.loc[row, metric])

    def draws(self, row: str, metric: str) -> np.ndarray | None:
        s = self.samples.get(row)
        if s is None:
            return None
        if metric in ("macro_auc_low_freq", "macro_auc_all"):
            if "per_code_auc" not in s or (metric == "macro_auc_low_freq" and self.low is None):
                return None
            per_code = s["per_code_auc"] if metric == "macro_auc_all" else s["per_code_auc"][:, self.low]
            defined = ~np.isnan(per_code)
            return np.where(defined.any(axis=1), np.nansum(per_code, axis=1) / np.maximum(defined.sum(axis=1), 1),
                            np.nan)
        return s.get(metric)

    def pair(self, quantity: str, better: str, worse: str, metric: str) -> dict:
        """One comparison: better - worse on `metric`, its paired interval and verdict (n.a. without resamples)."""
        a, b = self.value(better, metric), self.value(worse, metric)
        out = {"quantity": quantity, "metric": metric, "better": better, "worse": worse, "better_value": a,
               "worse_value": b, "difference": a - b, "ci_low": np.nan, "ci_high": np.nan, "verdict": NOT_DECIDED}
        da, db = self.draws(better, metric), self.draws(worse, metric)
        if da is not None and db is not None:
            out |= paired_difference(da, db, a, b)
            out.pop("n_resamples")
        return out


def _best(df: pd.DataFrame, metric: str) -> str | None:
    d = df.dropna(subset=[metric])
    return None if not len(d) else str(d.loc[d[metric].idxmax(), "model"])


def _group_pairs(df: pd.DataFrame, group: list[str], col: str, better, worse, metric: str) -> list[tuple[str, str, str]]:
    """(group label, best row with `col == better`, best row with `col == worse`) for every group with both."""
    out = []
    for key, g in df.groupby(group, sort=False, dropna=False):
        a, b = _best(g[g[col] == better], metric), _best(g[g[col] == worse], metric)
        if a and b:
            label = "/".join(str(k) for k in (key if isinstance(key, tuple) else (key,)) if str(k) and str(k) != "nan")
            out.append((label, a, b))
    return out


def _paper_pairs(df: pd.DataFrame, group: list[str], col: str, better, worse, metric: str) -> str:
    """The paper's side of a comparison: `label: a vs b` per group (its Table 2 has no intervals)."""
    parts = []
    for label, a, b in _group_pairs(df, group, col, better, worse, metric):
        va, vb = df.set_index("model").loc[[a, b], metric]
        parts.append(f"{label}: {va:.3f} vs {vb:.3f}")
    return "; ".join(parts) or "no such pair"


def _claim(ev: Evidence, quantity: str, paper: str, pairs: list[tuple[str, str, str]], metric: str,
           pair_log: list[dict], note: str = "") -> dict:
    """Aggregate the pairs of one finding into its row (see the module docstring for the rule)."""
    base = {"quantity": quantity, "paper": paper, "metric": metric}
    if not pairs:
        return base | {"reproduced": "not run", "verdict": NOT_DECIDED,
                       "note": note or "no comparable pair of rows was run"}
    done = [ev.pair(quantity, a, b, metric) for _, a, b in pairs]
    pair_log.extend(done)
    verdicts = [p["verdict"] for p in done]
    if NOT_DECIDED in verdicts:
        verdict, why = NOT_DECIDED, "no bootstrap resamples (analysis.n_bootstrap = 0): no verdict"
    elif "contradicted" in verdicts:
        verdict, why = "contradicted", ""
    elif all(v == "holds" for v in verdicts):
        verdict, why = "holds", ""
    else:
        verdict, why = "inconclusive", ""
    contradicted = [p for p in done if p["verdict"] == "contradicted"]
    decide = (min(contradicted, key=lambda p: p["ci_high"]) if contradicted
              else min(done, key=lambda p: (np.nan_to_num(p["ci_low"], nan=-np.inf), p["difference"])))
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in ("holds", "inconclusive", "contradicted") if v in verdicts)
    reproduced = "; ".join(f"{p['better']} {p['better_value']:.3f} vs {p['worse']} {p['worse_value']:.3f}"
                           for p in done)
    text = f"{len(done)} pair(s): {counts}" if verdict != NOT_DECIDED else why
    return base | {"reproduced": reproduced, "better": decide["better"], "worse": decide["worse"],
                   "difference": decide["difference"], "ci_low": decide["ci_low"], "ci_high": decide["ci_high"],
                   "verdict": verdict, "note": "; ".join(x for x in (text, note) if x)}


def _fact(quantity: str, paper, reproduced, note: str) -> dict:
    return {"quantity": quantity, "paper": paper, "reproduced": reproduced, "verdict": NOT_DECIDED, "note": note}


def paper_vs_reproduced(table2_df: pd.DataFrame, table3_df: pd.DataFrame | None = None,
                        high_auc_count: dict | None = None, confused_df: pd.DataFrame | None = None,
                        oov: dict | None = None, codes_per_note: float | None = None,
                        samples: dict[str, dict[str, np.ndarray]] | None = None, low_freq_codes=None,
                        pairs_out: list | None = None) -> pd.DataFrame:
    """The paper's findings (Table 2, Table 3, 4.4, 3.2, 4.1) beside ours, one row each (`COLUMNS`).

    `samples`/`low_freq_codes`: see `Evidence`; without them every comparison reads n.a.
    `high_auc_count`: `{"row", "n_high", "n_evaluated", "threshold"}`; `oov`: `{"general", "ehr"}` OOV
    words per note. Every compared pair is appended to `pairs_out` (`PAIR_COLUMNS`) when given.
    """
    facts, paper = paper_facts(), paper_table2()
    ours = table2_df[~table2_df["model"].isin(REFERENCE_ROWS)].dropna(subset=["micro_auc"]).copy()
    ev = Evidence(ours, table3_df, samples, low_freq_codes)
    log: list[dict] = [] if pairs_out is None else pairs_out
    rows: list[dict] = []

    longest = ours["max_len"].max() if len(ours) else np.nan
    best_xml = _best(ours[(ours["family"] == "xml") & (ours["max_len"] == longest)], "micro_auc")
    p_best = paper.loc[paper["micro_auc"].idxmax()]
    rows.append(_claim(ev, "BERT-XML at the longest input beats every other row (micro AUC)", str(p_best["model"]),
                       [("", best_xml, r) for r in ours["model"] if r != best_xml] if best_xml else [],
                       "micro_auc", log, "" if best_xml else "no BERT-XML row at the longest input"))
    for metric in ("micro_auc", "macro_auc"):
        rows.append(_fact(f"best {metric.replace('_', ' ').replace('auc', 'AUC')} (Table 2)",
                          round(float(paper[metric].max()), 3),
                          round(float(ours[metric].max()), 4) if len(ours) else "not run",
                          "absolute AUCs depend on the cohort; compare orderings, not values"))
    p_bert, o_bert = paper[paper["family"].isin(BERT_FAMILIES)], ours[ours["family"].isin(OUR_BERT_FAMILIES)]
    for metric in ("micro_auc", "macro_auc"):
        m = metric.split("_")[0]
        p_lr = float(paper.loc[paper["family"] == "logreg", metric].max())
        lr = _best(ours[ours["family"] == "logreg"], metric)
        rows.append(_claim(ev, f"every BERT row beats logistic regression ({m} AUC)",
                           f"{int((p_bert[metric] > p_lr).sum())}/{len(p_bert)} BERT rows above LogReg {p_lr:.3f}",
                           [("", r, lr) for r in o_bert["model"]] if lr else [], metric, log))
    p_ehr, o_ehr = paper[paper["family"].isin(["cls", "xml"])], ours[ours["family"].isin(["cls", "xml"])]
    for metric in ("micro_auc", "macro_auc"):
        args = (["encoder"], "family", "xml", "cls", metric)
        rows.append(_claim(ev, f"XML head beats [CLS] head at max_len 1024 ({metric.split('_')[0]} AUC)",
                           _paper_pairs(p_ehr[p_ehr["max_len"] == 1024], *args),
                           _group_pairs(o_ehr[o_ehr["max_len"] == 1024], *args), metric, log))
    for metric in ("micro_auc", "macro_auc"):
        args = (["family", "encoder"], "max_len", 1024, 512, metric)
        rows.append(_claim(ev, f"max_len 1024 beats 512 ({metric.split('_')[0]} AUC)", _paper_pairs(paper, *args),
                           _group_pairs(ours, *args), metric, log))
    rows += _pretraining_claims(ev, paper, ours, log) + _companion_claims(ev, ours, log)
    timed = _group_pairs(ours.dropna(subset=["train_seconds"]) if "train_seconds" in ours else ours.iloc[0:0],
                         ["family", "encoder"], "max_len", 1024, 512, "train_seconds")
    t = ours.set_index("model")
    ratios = [t.loc[a, "train_seconds"] / t.loc[b, "train_seconds"] for _, a, b in timed if t.loc[b, "train_seconds"] > 0]
    rows.append(_fact("training time at max_len 1024 / at 512", facts["training_time"]["ratio_1024_vs_512"],
                      round(float(np.mean(ratios)), 2) if ratios else "not run",
                      "wall time of whole fine-tuning runs on this machine; batches are length-bucketed, so short "
                      "notes are not padded to max_len and the ratio is not the paper's padded-batch ratio"))
    rows += _table3_claims(ev, facts, paper, ours, table3_df, log)
    rows.append(_high_auc_claim(facts, high_auc_count))
    rows.append(_confusion_claim(facts, confused_df))
    o = facts["oov_words_per_note"]
    rows.append(_fact("OOV words per note, general vs EHR vocabulary (3.2)", f"{o['general']} vs {o['ehr']}",
                      f"{oov['general']:.2f} vs {oov['ehr']:.2f}" if oov else "not measured",
                      (f"a property of the vocabularies, not a model comparison; ratio general/EHR: paper "
                       f"{o['general'] / o['ehr']:.0f}x, ours {oov['general'] / max(oov['ehr'], 1e-9):.1f}x")
                      if oov else "tables/oov_summary.csv missing"))
    rows.append(_fact("codes per training note (4.1)", facts["cohort"]["codes_per_note"],
                      round(codes_per_note, 2) if codes_per_note is not None else "not measured",
                      "a property of the cohort, not a finding"))
    return pd.DataFrame(rows, columns=COLUMNS)


def comparison_pairs(pairs: list[dict]) -> pd.DataFrame:
    """Every pair `paper_vs_reproduced` compared (its `pairs_out`), as a table with `PAIR_COLUMNS`."""
    return pd.DataFrame(pairs, columns=PAIR_COLUMNS)


def _kind(df: pd.DataFrame) -> pd.Series:
    """Which pretraining a row's encoder had: `ehr` (from scratch here), `general` (off-the-shelf BERT),
    `continued` (off-the-shelf BERT after MLM on EHR notes), else its family (logreg, mha, cnn, clinical...)."""
    enc = df["encoder"].fillna("").astype(str)
    kind = df["family"].astype(str).where(~df["family"].isin(["cls", "xml"]), "ehr")
    offshelf = df["family"] == "offshelf"
    continued = enc.str.contains("finetuned")
    return kind.mask(offshelf & continued, "continued").mask(offshelf & ~continued, "general")


def _pretraining_claims(ev: Evidence, paper: pd.DataFrame, ours: pd.DataFrame, log: list) -> list[dict]:
    """Table 2's other comparisons: EHR BERT vs off-the-shelf BERT, continued MLM, MHA vs LogReg."""
    p, o = paper.assign(kind=_kind(paper)), ours.assign(kind=_kind(ours))
    rows = []
    for metric in ("micro_auc", "macro_auc"):
        m = metric.split("_")[0]
        for quantity, col, better, worse in (
                (f"EHR BERT beats off-the-shelf BERT at the same max_len ({m} AUC)", "kind", "ehr", "general"),
                (f"continued MLM on EHR notes improves off-the-shelf BERT ({m} AUC)", "kind", "continued", "general"),
                (f"multi-head attention baseline beats logistic regression ({m} AUC)", "family", "mha", "logreg")):
            args = (["max_len"], col, better, worse, metric)
            rows.append(_claim(ev, quantity, _paper_pairs(p, *args), _group_pairs(o, *args), metric, log))
    return rows


def _companion_claims(ev: Evidence, ours: pd.DataFrame, log: list) -> list[dict]:
    """Seed 003 (Ji et al.): a retrained CNN beats BERT on frequent codes (MIMIC-III top-50); hierarchical
    fine-tuning and label-wise attention help BERT. Their numbers are on MIMIC-III, so `paper` states
    the finding, not a number."""
    rows = []
    bert, cnn = ours[ours["family"].isin(OUR_BERT_FAMILIES)], ours[ours["family"] == "cnn"]
    for metric in ("micro_auc", "macro_auc"):
        b, c = _best(bert, metric), _best(cnn, metric)
        rows.append(_claim(ev, f"Ji et al.: a CNN trained from scratch beats every BERT model ({metric.split('_')[0]} AUC)",
                           "yes on MIMIC-III top-50 (Ji et al. Table 6); not in BERT-XML's Table 2",
                           [("", c, b)] if b and c else [], metric, log,
                           "best CNN row vs best BERT-family row" if b and c else "needs a cnn row and a BERT row"))
    ehr = ours[ours["family"].isin(["cls", "lan", "hier"])]
    rows.append(_claim(ev, "Ji et al.: label-wise attention beats the [CLS] classifier on one encoder (micro AUC)",
                       "yes in most settings on MIMIC-III (Ji et al. 4.3)",
                       _group_pairs(ehr[ehr["max_len"] == 512], ["encoder"], "family", "lan", "cls", "micro_auc"),
                       "micro_auc", log))
    both = ehr[(ehr["family"] == "hier") | ((ehr["family"] == "cls") & (ehr["max_len"] == 512))]
    rows.append(_claim(ev, "Ji et al.: hierarchical BERT on long notes beats BERT truncated at 512 (micro AUC)",
                       "yes in most settings on MIMIC-III (Ji et al. 4.3)",
                       _group_pairs(both, ["encoder"], "family", "hier", "cls", "micro_auc"), "micro_auc", log))
    return rows


def _table3_claims(ev: Evidence, facts: dict, paper: pd.DataFrame, ours: pd.DataFrame,
                   table3_df: pd.DataFrame | None, log: list) -> list[dict]:
    """Table 3: best BERT vs best non-BERT row (by Table 2 micro AUC) on low-frequency codes."""
    t3 = facts["table3"]
    p_non, p_bert = (next(r for r in t3["rows"] if r["family"] == f) for f in ("mha", "xml"))
    # Table 2 macro AUC of the same two models (their best row when the paper lists several lengths).
    p_all = {f: float(paper.loc[(paper["family"] == f) & (paper["encoder"] == r["encoder"]), "macro_auc"].max())
             for f, r in (("mha", p_non), ("xml", p_bert))}
    if any(np.isnan(v) for v in p_all.values()):
        raise ValueError(f"paper_facts.json table3 rows {t3['rows']} match no family/encoder of paper_table2.csv")
    paper_gap = (p_bert["macro_auc"] - p_non["macro_auc"], p_all["xml"] - p_all["mha"])
    q_low = "best BERT row beats best non-BERT row on low-frequency codes (Table 3)"
    q_gap = "BERT's margin is larger on low-frequency codes than on all codes (Table 3 vs Table 2)"
    q_same = "best BERT row as good on low-frequency codes as on all codes (Table 3 vs Table 2)"
    texts = {q_low: f"{p_bert['macro_auc']} vs {p_non['macro_auc']} ({t3['n_codes']} codes < {t3['low_freq_max']} train notes)",
             q_gap: f"{paper_gap[0]:.3f} vs {paper_gap[1]:.3f}", q_same: f"{p_bert['macro_auc']} vs {p_all['xml']}"}
    bert, non = ours[ours["family"].isin(OUR_BERT_FAMILIES)], ours[~ours["family"].isin(OUR_BERT_FAMILIES)]
    b, n = _best(bert, "micro_auc"), _best(non, "micro_auc")
    if ev.t3 is None or not b or not n or b not in ev.t3.index or n not in ev.t3.index:
        return [_fact(q, p, "not run", "needs a BERT row, a non-BERT row and Table 3") for q, p in texts.items()]
    if not ev.t3.loc[b, "n_low_freq_evaluated"]:
        return [_fact(q, p, "no low-frequency code with test positives",
                      f"no evaluable code has fewer than {ev.t3.loc[b, 'low_freq_max']} training notes")
                for q, p in texts.items()]
    scope = (f"{b} vs {n}, {int(ev.t3.loc[b, 'n_low_freq_evaluated'])} codes < "
             f"{int(ev.t3.loc[b, 'low_freq_max'])} train notes")
    rows = [_claim(ev, q_low, texts[q_low], [("", b, n)], "macro_auc_low_freq", log, scope)]
    # Margin on low-frequency codes minus margin on all codes, per resample (a difference of paired differences).
    gap = {k: ev.value(b, k) - ev.value(n, k) for k in ("macro_auc_low_freq", "macro_auc_all")}
    row = {"quantity": q_gap, "paper": texts[q_gap], "reproduced": f"{gap['macro_auc_low_freq']:.3f} vs "
           f"{gap['macro_auc_all']:.3f}", "metric": "macro_auc_low_freq - macro_auc_all", "better": b, "worse": n,
           "difference": gap["macro_auc_low_freq"] - gap["macro_auc_all"], "ci_low": np.nan, "ci_high": np.nan,
           "verdict": NOT_DECIDED, "note": scope}
    draws = [ev.draws(r, k) for r in (b, n) for k in ("macro_auc_low_freq", "macro_auc_all")]
    if all(d is not None for d in draws):
        d = paired_difference(draws[0] - draws[2], draws[1] - draws[3], gap["macro_auc_low_freq"],
                              gap["macro_auc_all"])
        row |= {k: d[k] for k in ("ci_low", "ci_high", "verdict")}
    else:
        row["note"] += "; no bootstrap resamples: no verdict"
    rows.append(row)
    same = {"quantity": q_same, "paper": texts[q_same], "metric": "macro_auc_low_freq - macro_auc_all",
            "better": b, "worse": b, "note": f"{scope}; holds when the low-frequency mean is above the all-code mean"}
    low_all = [ev.value(b, "macro_auc_low_freq"), ev.value(b, "macro_auc_all")]
    same |= {"reproduced": f"{low_all[0]:.3f} vs {low_all[1]:.3f}", "difference": low_all[0] - low_all[1],
             "ci_low": np.nan, "ci_high": np.nan, "verdict": NOT_DECIDED}
    if draws[0] is not None and draws[1] is not None:
        d = paired_difference(draws[0], draws[1], *low_all)
        same |= {k: d[k] for k in ("ci_low", "ci_high", "verdict")}
    rows.append(same)
    return rows


def _high_auc_claim(facts: dict, count: dict | None) -> dict:
    p = facts["per_code"]
    out = _fact(f"codes with AUC >= {p['high_auc_threshold']} (4.4, Figure 2)",
                f"{p['n_codes_high_auc']} of {p['n_codes']} ({p['n_codes_high_auc'] / p['n_codes']:.1%})", "not run",
                "a count that depends on label-set size and data; compared as a share of codes")
    if count:
        out["reproduced"] = (f"{count['n_high']} of {count['n_evaluated']} "
                             f"({count['n_high'] / max(count['n_evaluated'], 1):.1%}, {count['row']})")
        if count.get("threshold", p["high_auc_threshold"]) != p["high_auc_threshold"]:
            out["note"] += f"; our threshold is {count['threshold']}"
    return out


def _confusion_claim(facts: dict, confused_df: pd.DataFrame | None) -> dict:
    ex = facts["confused_example"]
    out = _fact("low-AUC codes are confused with closely related codes (4.4)",
                f"{ex['code']} (AUC {ex['auc']}) scored below {ex['confused_with']}", "not run",
                "no confused-pairs table")
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
               note=f"a count over the {len(rel)} lowest-AUC codes with a same-category code, described, not "
                    f"tested; {len(confused_df) - len(rel)} listed codes have no same-category code in the label set")
    return out
