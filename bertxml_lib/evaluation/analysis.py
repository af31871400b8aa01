"""Notebook 06 — Table 2 with the full metric set and CIs, Tables 3-4, Figure 2, frequency bins, confused codes (4.4).

Every number is recomputed from `predictions/<row>.npz` and the cohort's labels: F1 thresholds from
the dev probabilities and dev labels only (`thresholds`), every metric from the test probabilities,
95% CIs from a patient-level bootstrap of the test notes (`metrics.bootstrap_metrics`; one set of
resamples shared by all rows, so two rows' difference is paired). Macro AUC averages over the codes with
at least `min_test_positives` test positives (`n_codes_macro` says how many). Every table carries the
floor row `prior` (written here, `evaluation.prior`) and, on synthetic data, the ceiling row `oracle`
(notebook 01); `headroom_share = (auc - prior) / (oracle - prior)` places each row between them.
`metrics/<row>.json` only supplies descriptive fields (family, encoder, max_len, train time). The
paper's numbers come from `paper_results`, compared (paired bootstrap, three-way verdicts) in
`paper_compare`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from bertxml_lib.core.atomic import read_json, write_csv, write_json
from bertxml_lib.core.figures import new_figure, row_colour, row_styles, save_figure
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.core.rows import REFERENCE_ROWS, parse_row
from bertxml_lib.data import icd
from bertxml_lib.data.cohort import load_cohort
from bertxml_lib.evaluation import metrics, thresholds
from bertxml_lib.evaluation.paper_compare import comparison_pairs, paper_vs_reproduced
from bertxml_lib.evaluation.paper_results import OUR_FAMILIES, paper_table4
from bertxml_lib.evaluation.predictions import Predictions, load_predictions
from bertxml_lib.evaluation.prior import run_prior
from bertxml_lib.models.encoders import ENCODERS

CI_COLUMNS = [f"{m}_ci_{side}" for m in metrics.METRICS for side in ("low", "high")]
HEADROOM_COLUMNS = ["headroom_share", "headroom_share_ci_low", "headroom_share_ci_high"]
TABLE2_COLUMNS = ["model", "family", "encoder", "max_len", *metrics.METRICS, *CI_COLUMNS, *HEADROOM_COLUMNS,
                  "threshold", "threshold_mode", "n_codes", "n_codes_skipped", "n_codes_macro", "min_test_positives",
                  "n_bootstrap", "train_seconds", "status"]


def row_meta(row: str, meta: dict | None = None) -> dict:
    """`family, encoder, max_len, train_seconds` of a row: from its metrics record, else from its name."""
    meta = dict(meta or {})
    parsed = parse_row(row)
    guess = {"family": parsed.family, "encoder": parsed.encoder, "max_len": parsed.max_len} if parsed else {}
    family = meta.get("family") or guess.get("family")
    if family is None:
        raise ValueError(f"row {row!r}: no metrics record with a family and the name matches none of "
                         f"the names of core.rows")
    max_len, seconds = meta.get("max_len", guess.get("max_len")), meta.get("train_seconds")
    return {"family": family, "encoder": meta.get("encoder", guess.get("encoder", "")) or "",
            "max_len": int(max_len) if max_len not in (None, "") else None,
            "train_seconds": float(seconds) if seconds is not None else np.nan}


def align_probs(pred: Predictions, note_ids: Sequence[str], codes: Sequence[str], split: str = "test") -> np.ndarray:
    """`pred.<split>_probs` reordered to `note_ids` (rows) and `codes` (columns): `(n_notes, L)`."""
    if split not in ("dev", "test"):
        raise ValueError(f"split must be 'dev' or 'test', got {split!r}")
    ids, probs = getattr(pred, f"{split}_note_ids"), getattr(pred, f"{split}_probs")
    row_of = {n: i for i, n in enumerate(map(str, ids))}
    col_of = {c: j for j, c in enumerate(map(str, pred.codes))}
    missing_notes = [n for n in note_ids if str(n) not in row_of]
    missing_codes = [c for c in codes if c not in col_of]
    if missing_notes or missing_codes:
        raise ValueError(f"predictions {pred.row!r} lack {len(missing_notes)} {split} notes (e.g. {missing_notes[:3]}) "
                         f"and {len(missing_codes)} codes (e.g. {missing_codes[:3]}) of the cohort")
    return probs[np.ix_([row_of[str(n)] for n in note_ids], [col_of[c] for c in codes])]


def _probs(pred: Predictions, test_labels: np.ndarray) -> np.ndarray:
    if pred.test_probs.shape != np.shape(test_labels):
        raise ValueError(f"predictions {pred.row!r}: test_probs {pred.test_probs.shape} do not match test labels "
                         f"{np.shape(test_labels)}; align them first (analysis.align_probs)")
    return pred.test_probs


def _sort_key(family: str, encoder: str, max_len) -> tuple:

    encoders = list(ENCODERS)
    # EHR BERT rows (cls, xml) are grouped by encoder as in the paper's Table 2, heads within an encoder.
    ehr = ("cls", "xml")
    return (OUR_FAMILIES.index(family if family not in ehr else "cls") if family in OUR_FAMILIES else len(OUR_FAMILIES),
            encoders.index(encoder) if encoder in encoders else len(encoders), encoder,
            ehr.index(family) if family in ehr else -1, max_len or 0)


def bootstrap_rows(preds: list[Predictions], test_labels: np.ndarray, thresholds: dict | None,
                   patient_ids: Sequence[str], n_bootstrap: int, seed: int = 0,
                   min_test_positives: int = 1) -> dict[str, dict[str, np.ndarray]]:
    """Every row's metrics on the same `n_bootstrap` patient resamples (`seed`): `{row: {metric: (B,),
    "per_code_auc": (B, L)}}`, the input of the CIs, the headroom intervals and the paired comparisons."""
    macro = metrics.codes_with_positives(test_labels, min_test_positives)
    return {p.row: metrics.bootstrap_metrics(test_labels, _probs(p, test_labels), (thresholds or {}).get(p.row),
                                             patient_ids, n_bootstrap, seed, macro, per_code=True) for p in preds}


def table2(preds: list[Predictions], test_labels: np.ndarray, metrics_meta: dict[str, dict],
           thresholds: dict[str, float | np.ndarray] | None = None, patient_ids: Sequence[str] | None = None,
           n_bootstrap: int = 0, seed: int = 0, min_test_positives: int = 1,
           samples: dict[str, dict[str, np.ndarray]] | None = None) -> pd.DataFrame:
    """Table 2: every metric of `metrics.METRICS` on test, with patient-bootstrap 95% CIs and headroom.

    `thresholds[row]` is the row's dev-tuned F1 threshold (`thresholds.tune`; a float or one per
    code); F1 columns are NaN for rows without one. Macro AUC averages over codes with at least
    `min_test_positives` test positives (`n_codes_macro`). CI columns come from `samples`
    (`bootstrap_rows`), computed here when `patient_ids` (one per test note) and `n_bootstrap > 0` are
    given; NaN otherwise. Every row uses the same resamples (`seed`). `headroom_share` (`headroom`)
    needs the `prior` and `oracle` rows.
    """
    thresholds = thresholds or {}
    if samples is None and patient_ids is not None and n_bootstrap > 0:
        samples = bootstrap_rows(preds, test_labels, thresholds, patient_ids, n_bootstrap, seed, min_test_positives)
    samples = samples or {}
    macro = metrics.codes_with_positives(test_labels, min_test_positives)
    rows = []
    for pred in preds:
        probs = _probs(pred, test_labels)
        threshold = thresholds.get(pred.row)
        meta = row_meta(pred.row, metrics_meta.get(pred.row))
        row = {"model": pred.row, "family": meta["family"], "encoder": meta["encoder"], "max_len": meta["max_len"]}
        row |= metrics.score_all(test_labels, probs, threshold, macro)
        if pred.row in samples:
            row |= metrics.confidence_intervals(samples[pred.row])
        per_code = threshold is not None and np.ndim(threshold) == 1
        row |= {"threshold": np.nan if threshold is None else float(np.median(threshold)),
                "threshold_mode": "" if threshold is None else ("dev_per_code_median" if per_code else "dev_global"),
                "n_codes": probs.shape[1], "n_codes_skipped": int((~metrics.evaluable_codes(test_labels)).sum()),
                "n_codes_macro": int(macro.sum()), "min_test_positives": int(min_test_positives),
                "n_bootstrap": len(samples[pred.row]["micro_auc"]) if pred.row in samples else 0,
                "train_seconds": meta["train_seconds"], "status": "ok"}
        rows.append(row)
    rows.sort(key=lambda r: _sort_key(r["family"], r["encoder"], r["max_len"]))
    return headroom(pd.DataFrame(rows, columns=TABLE2_COLUMNS), samples)


def headroom(table2_df: pd.DataFrame, samples: dict[str, dict[str, np.ndarray]] | None = None,
             metric: str = "micro_auc") -> pd.DataFrame:
    """Table 2 with `headroom_share = (auc - prior) / (oracle - prior)` of `metric` for every row: 0 at the
    label prior, 1 at the oracle; NaN without both rows (real data has no oracle). Its 95% interval is the
    percentile interval of the same ratio on each resample (`samples`, shared by all rows)."""
    out = table2_df.copy()
    out[HEADROOM_COLUMNS] = np.nan
    values = out.set_index("model")[metric]
    if not {"prior", "oracle"} <= set(values.index) or not values["oracle"] > values["prior"]:
        return out
    out["headroom_share"] = (out[metric] - values["prior"]) / (values["oracle"] - values["prior"])
    samples = samples or {}
    if "prior" in samples and "oracle" in samples:
        floor, span = samples["prior"][metric], samples["oracle"][metric] - samples["prior"][metric]
        for i, row in out["model"].items():
            if row in samples:
                share = (samples[row][metric] - floor) / np.where(span > 0, span, np.nan)
                ci = metrics.confidence_intervals({"share": share})
                out.loc[i, ["headroom_share_ci_low", "headroom_share_ci_high"]] = ci["share_ci_low"], ci["share_ci_high"]
    return out


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
    """Figure 2: per-code test AUC, one small panel per given row (a histogram in the row family's colour,
    shared axes, the `high_auc` line, median and codes >= `high_auc` in the panel title); PNG at `path`."""

    if not per_code_auc:
        raise ValueError("auc_distribution_figure needs at least one row of per-code AUCs")
    values = {row: np.asarray(a, dtype=float)[~np.isnan(np.asarray(a, dtype=float))] for row, a in per_code_auc.items()}
    lowest = min((v.min() for v in values.values() if len(v)), default=0.5)
    bins = np.linspace(min(0.5, np.floor(lowest * 20) / 20), 1.0, 41)
    cols = min(4, len(values))
    rows = -(-len(values) // cols)
    fig = new_figure(3.0 * cols + 0.4, 2.3 * rows + 0.9, dpi=110)  # at most 1,364 px wide
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    for ax, (row, v) in zip(axes, values.items()):
        n_high, n = count_high_auc(v, high_auc)
        ax.hist(v, bins=bins, color=row_colour(row), alpha=0.85)
        ax.axvline(high_auc, color="k", linestyle="--", linewidth=1)
        ax.set_title(f"{row}\nmedian {np.median(v) if n else np.nan:.3f}, {n_high}/{n} codes ≥ {high_auc:g}",
                     fontsize=8.5, color=row_colour(row))
    for ax in axes[len(values):]:
        ax.set_visible(False)
    for ax in axes[(rows - 1) * cols:]:
        ax.set_xlabel("test AUC of one ICD code", fontsize=8.5)
    for ax in axes[::cols]:
        ax.set_ylabel("codes", fontsize=8.5)
    fig.suptitle(f"Figure 2 (paper 4.4): per-code AUC across ICD codes, one panel per model (dashed: AUC {high_auc:g})",
                 fontsize=10.5)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def confused_pairs(pred: Predictions, test_labels: np.ndarray, codes: Sequence[str], descriptions: dict[str, str],
                   top: int = 10, icd_version: int = 10) -> pd.DataFrame:
    """For the `top` lowest-AUC codes: the code most often scored above it on its positive notes.

    The rate of another code k = share of code j's positive notes, among those where k is absent, on
    which k gets the higher probability. `confused_with` is the highest-rate code of j's category
    (`icd.related_codes` for `icd_version` 9 or 10; ties go to the closest code), else of all codes
    (`same_category` False).
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
        related = [index[c] for c in icd.related_codes(codes[j], codes, icd_version)]
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


def frequency_bin_of(counts: Sequence[int], n_bins: int) -> np.ndarray:
    """Bin `(n_codes,)` of each code by training count: quantile bins, 0 = rarest, ties share a bin.

    The paper splits at 2,000 training notes (Table 3); a fixed count does not scale with the cohort,
    so codes are cut at the quantiles of their training counts (about equal codes per bin).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if n_bins < 1 or not len(counts):
        raise ValueError(f"need n_bins >= 1 and at least one code; got {n_bins}, {len(counts)}")
    interior = np.unique(np.quantile(counts, np.linspace(0, 1, n_bins + 1))[1:-1])
    raw = np.searchsorted(interior, counts, side="right")
    return np.unique(raw, return_inverse=True)[1]  # renumber so no bin is empty


def frequency_bins(preds: list[Predictions], test_labels: np.ndarray, train_counts: dict[str, int],
                   codes: Sequence[str], thresholds: dict[str, float | np.ndarray] | None = None,
                   n_bins: int = 4, metrics_meta: dict[str, dict] | None = None) -> pd.DataFrame:
    """Macro AUC and macro F1 (at each row's dev threshold) per training-frequency bin and row."""
    missing = [c for c in codes if c not in train_counts]
    if missing:
        raise ValueError(f"train_counts lacks {len(missing)} label-set codes, e.g. {missing[:3]}")
    counts = np.array([train_counts[c] for c in codes])
    bins = frequency_bin_of(counts, n_bins)
    y = np.asarray(test_labels)
    positives = y.sum(axis=0)
    rows = []
    for pred in preds:
        probs = _probs(pred, y)
        aucs = metrics.per_code_auc(y, probs)
        threshold = (thresholds or {}).get(pred.row)
        f1 = metrics.per_code_f1(y, probs, threshold) if threshold is not None else np.full(len(codes), np.nan)
        meta = row_meta(pred.row, (metrics_meta or {}).get(pred.row))
        for b in range(bins.max() + 1):
            inside = bins == b
            present = inside & (positives > 0)
            defined = aucs[inside][~np.isnan(aucs[inside])]
            rows.append({"model": pred.row, "family": meta["family"], "bin": b,
                         "bin_label": f"{counts[inside].min()}-{counts[inside].max()}",
                         "train_count_min": int(counts[inside].min()), "train_count_max": int(counts[inside].max()),
                         "n_codes": int(inside.sum()), "n_codes_auc": len(defined),
                         "test_positives": int(positives[inside].sum()),
                         "macro_auc": float(defined.mean()) if len(defined) else np.nan,
                         "macro_f1": float(f1[inside].mean()),
                         "macro_f1_present": float(f1[present].mean()) if present.any() else np.nan,
                         "_key": _sort_key(meta["family"], meta["encoder"], meta["max_len"])})
    rows.sort(key=lambda r: r.pop("_key"))  # stable: bins stay in order within a row
    return pd.DataFrame(rows)


def frequency_bins_figure(bins_df: pd.DataFrame, path: str | Path):
    """Macro AUC and macro F1 per training-frequency bin, one line per row; PNG at `path`."""

    if not len(bins_df):
        raise ValueError("frequency_bins_figure needs at least one row of frequency bins")
    first = bins_df.drop_duplicates("bin").sort_values("bin")
    labels = [f"{label}\n({n} codes)" for label, n in zip(first["bin_label"], first["n_codes"])]
    fig = new_figure(10, 4.2, dpi=120)
    axes = fig.subplots(1, 2)
    for ax, metric, name in zip(axes, ("macro_auc", "macro_f1"), ("macro AUC", "macro F1 (dev-tuned threshold)")):
        styles = row_styles(bins_df["model"].unique())
        for row, g in bins_df.groupby("model", sort=False):
            ax.plot(g["bin"], g[metric], marker="o", label=row, **styles[row])
        ax.set_xticks(range(len(labels)), labels)
        ax.set(xlabel="training notes per code (quantile bins)", ylabel=name, title=name)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Codes grouped by training frequency (paper Table 3 splits at 2,000 training notes)")
    fig.tight_layout()
    save_figure(fig, path)
    return fig


# ---------------------------------------------------------------------------------------------
# The stage: predictions + cohort -> tables/ and figures/
# ---------------------------------------------------------------------------------------------

def best_rows(table2_df: pd.DataFrame) -> dict[str, str]:
    """The best row (by test micro AUC) of every family (the floor and ceiling rows included), in Table 2 order."""
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


def replace_codes(pred: Predictions, codes: Sequence[str]) -> Predictions:
    """`pred` with both splits' columns reordered to `codes` (the label set); note rows unchanged."""
    from dataclasses import replace

    col_of = {c: j for j, c in enumerate(map(str, pred.codes))}
    missing = [c for c in codes if c not in col_of]
    if missing:
        raise ValueError(f"predictions {pred.row!r} lack {len(missing)} codes of the cohort (e.g. {missing[:3]})")
    cols = [col_of[c] for c in codes]
    return replace(pred, codes=np.asarray(codes), dev_probs=pred.dev_probs[:, cols],
                   test_probs=pred.test_probs[:, cols])


def _aligned(preds: list[Predictions], cohort, split: str) -> tuple[list[Predictions], np.ndarray, pd.DataFrame]:
    """Predictions with `<split>_probs` reordered to the cohort's notes and codes, the labels, the notes."""
    from dataclasses import replace

    notes = cohort.split(split)
    note_ids = notes["note_id"].astype(str).tolist()
    aligned = [replace(p, **{f"{split}_note_ids": np.asarray(note_ids),
                             f"{split}_probs": align_probs(p, note_ids, cohort.codes, split)}) for p in preds]
    return aligned, cohort.label_matrix(notes), notes


def tune_thresholds(preds: list[Predictions], dev_labels: np.ndarray, per_code: bool = False) -> dict:
    """Each row's F1 threshold(s) from its dev probabilities and the dev labels only; {} without dev positives."""

    if not np.asarray(dev_labels).any():
        return {}
    return {p.row: thresholds.tune(dev_labels, p.dev_probs, per_code) for p in preds}


def with_not_run_rows(table2_df: pd.DataFrame, records: list[dict]) -> pd.DataFrame:
    """Table 2 plus one row per model that was planned but not run (e.g. BioBERT without local weights):
    its `status` says why, its metrics are empty. Such rows come from `metrics/<row>.json` records
    whose `status` is not "ok"."""
    extra = [{"model": r["model"], **{k: v for k, v in row_meta(r["model"], r).items() if k != "train_seconds"},
              "status": r["status"]} for r in records if r.get("status", "ok") != "ok"]
    if not extra:
        return table2_df
    rows = table2_df.to_dict("records") + extra
    rows.sort(key=lambda r: _sort_key(r["family"], r["encoder"], r["max_len"]))
    return pd.DataFrame(rows, columns=TABLE2_COLUMNS)


#: Wall-clock measurements differ between two runs of the same seed. They stay out of `tables/*.csv` (byte-
#: identical across runs, tested) and are recorded in `metrics/timings/analysis.json` instead.
TIMING_COLUMNS = ("train_seconds",)
TIMING_QUANTITIES = ("training time at max_len 1024 / at 512",)


def write_timings(paths, table2_df: pd.DataFrame, comparison: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write the run-varying parts of Table 2 and the paper comparison (training times) to
    `metrics/timings/analysis.json`; return both tables without them, as they go to `tables/`."""

    timed = comparison["quantity"].isin(TIMING_QUANTITIES)
    seconds = table2_df[["model", *[c for c in TIMING_COLUMNS if c in table2_df]]].dropna()
    write_json(paths.metrics_dir / "timings" / "analysis.json", {
        "train_seconds": {r["model"]: r["train_seconds"] for r in seconds.to_dict("records") if "train_seconds" in r},
        "paper_vs_reproduced": comparison[timed].astype(object).where(comparison[timed].notna(), None).to_dict("records"),
    })
    return (table2_df.drop(columns=[c for c in TIMING_COLUMNS if c in table2_df]),
            comparison[~timed].reset_index(drop=True))


def run_analysis(out_dir: str | Path, low_freq_max: int = 100, top_codes: int = 45, high_auc: float = 0.98,
                 confused_top: int = 10, n_bootstrap: int = 200, seed: int = 0, per_code_thresholds: bool = False,
                 n_freq_bins: int = 4, min_test_positives: int = 5) -> dict:
    """Notebook 06: every table of paper 4.4, Figure 2 and the frequency bins from `predictions/*.npz`.

    Thresholds are tuned per row on dev (`per_code_thresholds` for one per code) before test is read;
    CIs come from `n_bootstrap` patient resamples drawn with `seed` (0 skips them). Table 4, Figure
    2's count of high-AUC codes and the confused pairs use the best XML row (the paper's Big EHR
    BERT + XML), or the best model row when no XML row was run. Outputs are written atomically; training
    times go to `metrics/timings/analysis.json`, not to the tables (`write_timings`). The label set's
    `icd_version` (9 or 10) decides which codes count as related in the confused pairs. The `prior` row
    is written first (cheap, train labels only); `paper_vs_reproduced_pairs.csv` lists every compared pair.
    """

    paths = RunPaths(out_dir)
    if paths.predictions_dir.exists() and any(paths.predictions_dir.glob("*.npz")):
        run_prior(out_dir)  # the floor row of every table and figure
    files = sorted(paths.predictions_dir.glob("*.npz")) if paths.predictions_dir.exists() else []
    if not files:
        raise FileNotFoundError(f"{paths.predictions_dir}: no predictions; run notebooks 04 and 05 first")
    cohort = load_cohort(out_dir)
    preds = [replace_codes(load_predictions(path), cohort.codes) for path in files]
    preds, dev_y, _ = _aligned(preds, cohort, "dev")
    chosen = tune_thresholds(preds, dev_y, per_code_thresholds)  # dev only: test labels are not read yet
    preds, y, test = _aligned(preds, cohort, "test")
    meta = {p.row: read_json(paths.metrics_file(p.row)) for p in preds if paths.metrics_file(p.row).exists()}
    by_row = {p.row: p for p in preds}

    patients = test["patient_id"].astype(str).tolist()
    samples = bootstrap_rows(preds, y, chosen, patients, n_bootstrap, seed, min_test_positives) if n_bootstrap > 0 else {}
    t2 = table2(preds, y, meta, chosen, patients, n_bootstrap, seed, min_test_positives, samples)
    t3 = table3_low_frequency(preds, y, cohort.train_counts, cohort.codes, low_freq_max, meta)
    bins = frequency_bins(preds, y, cohort.train_counts, cohort.codes, chosen, n_freq_bins, meta)
    best = best_rows(t2)
    models = t2[~t2["model"].isin(REFERENCE_ROWS)]
    focus = best.get("xml", models.loc[models["micro_auc"].idxmax(), "model"] if len(models) else t2["model"].iloc[0])
    t4 = table4_per_code(by_row[focus], y, cohort.codes, cohort.descriptions, cohort.train_counts, top_codes)
    per_code = {row: metrics.per_code_auc(y, by_row[row].test_probs) for row in best.values()}
    n_high, n_evaluated = count_high_auc(per_code[focus], high_auc)
    icd_version = int(read_json(paths.label_set).get("icd_version", 10))
    confused = confused_pairs(by_row[focus], y, cohort.codes, cohort.descriptions, confused_top, icd_version)
    codes_per_note = float(cohort.split("train")["codes"].map(len).mean())
    low_freq = np.array([cohort.train_counts[c] < low_freq_max for c in cohort.codes])
    pairs: list[dict] = []
    comparison = paper_vs_reproduced(
        t2, t3, {"row": focus, "n_high": n_high, "n_evaluated": n_evaluated, "threshold": high_auc},
        confused, _read_oov(paths), codes_per_note, samples, low_freq, pairs)

    records = [read_json(f) for f in sorted(paths.metrics_dir.glob("*.json"))]
    t2 = with_not_run_rows(t2, records)
    tables_t2, tables_comparison = write_timings(paths, t2, comparison)
    write_csv(paths.table("table2.csv"), tables_t2)
    write_csv(paths.table("table3_low_frequency.csv"), t3)
    write_csv(paths.table("table4_per_code.csv"), t4)
    write_csv(paths.table("frequency_bins.csv"), bins)
    write_csv(paths.table("confused_pairs.csv"), confused)
    write_csv(paths.table("paper_vs_reproduced.csv"), tables_comparison)
    write_csv(paths.table("paper_vs_reproduced_pairs.csv"), comparison_pairs(pairs))
    auc_distribution_figure(per_code, paths.figure("figure2_auc_distribution.png"), high_auc)
    frequency_bins_figure(bins, paths.figure("frequency_bins.png"))
    return {"table2": t2, "table3": t3, "table4": t4, "frequency_bins": bins, "confused_pairs": confused,
            "paper_vs_reproduced": comparison, "comparison_pairs": comparison_pairs(pairs), "per_code_auc": per_code, "best_row": focus, "n_high_auc": n_high,
            "n_codes_evaluated": n_evaluated, "thresholds": chosen}
