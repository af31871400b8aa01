"""Notebook 01 (synthetic source) — the ceiling row `oracle` and the cohort's context phenomena.

The oracle knows what the generator wrote about each (note, code) (`synthetic.load_truth`) and nothing
else: its *view* of the pair is the strongest of

    evidenced > shared > suspected > past_history > negated > family_history > none

(`shared`: only the phrase a sibling group shares, not the modifier that names the member; `suspected`: a
rule-out's early suspicion whose cue it does not see). Its score is the training-split rate of the label
given (code, view), smoothed toward the rate of the view over all codes with `SMOOTHING` pseudo-notes:
a lookup fitted on train only, applied to dev and test. Labels the text cannot support (chronic codes
imputed by notebook 01, codes coded without evidence, missed codes) are what it still gets wrong.

Decomposed oracles show what reading context is worth: `no_negation` reads negated mentions (and
rule-outs) as evidence, `no_family_history` reads family history as evidence, `no_siblings` cannot tell a
sibling group's members apart (any member's evidence is `shared` for all), `first_512` sees only spans
starting before the 512-token proxy, whitespace word `synthetic.TOKEN_512_WORDS` (`token_512_offset`,
the same cut as the phenomena table); a sibling's shared phrase whose note goes on past the cut is
`shared` there, and a rule-out whose cue lies past the cut is `suspected`.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bertxml_lib.core.atomic import write_csv
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.core.rows import Row
from bertxml_lib.data.cohort import Cohort, load_cohort
from bertxml_lib.data.synthetic import SIBLING_OF, load_truth, token_512_offset
from bertxml_lib.evaluation import metrics
from bertxml_lib.evaluation.records import record_row

ORACLE = Row("oracle", "oracle")
VIEWS = ("evidenced", "shared", "suspected", "past_history", "negated", "family_history", "none")
VARIANTS = ("oracle", "no_negation", "no_family_history", "no_siblings", "first_512")
#: Pseudo-notes of the view-wide rate added to each (code, view) cell: plain additive smoothing, so a cell
#: seen in a handful of training notes leans on the view's rate over all codes.
SMOOTHING = 5.0
_TEXT_KINDS = ("evidenced", "negated", "family_history", "past_history")


def note_views(truth: pd.DataFrame, texts: pd.Series, variant: str = "oracle") -> pd.DataFrame:
    """(note_id, code, view) for every pair with a view other than `none`, as `variant` sees the notes.

    `truth` holds the generator's rows (`synthetic.TRUTH_COLUMNS`), `texts` the note texts indexed by
    note_id (used by `first_512` only)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown oracle variant {variant!r}; expected one of {VARIANTS}")
    texts = dict(zip(texts.index.tolist(), texts.tolist()))   # plain str lookups (Arrow-backed Series are slow)
    spans = truth[(truth["start"] >= 0) & truth["kind"].isin(_TEXT_KINDS) & truth["note_id"].isin(list(texts))]
    spans = spans[["note_id", "code", "kind", "part", "start"]].copy()
    cut_away = pd.Series(False, index=spans.index)
    if variant == "first_512":
        cuts = {nid: token_512_offset(texts[nid]) for nid in spans["note_id"].unique()}
        cut = spans["note_id"].map(cuts)
        cut_away = spans["start"] >= cut
        long_notes = {nid for nid, c in cuts.items() if c < len(texts[nid])}
    visible = spans[~cut_away]
    view = pd.Series("", index=visible.index, dtype=object)
    ev = visible["kind"] == "evidenced"
    view[ev] = "evidenced"
    view[visible["kind"] == "past_history"] = "past_history"
    view[visible["kind"] == "family_history"] = "family_history"
    neg = visible["kind"] == "negated"
    view[neg] = "negated"
    if variant == "first_512":
        # A rule-out's mention whose cue was cut reads as a suspicion; a sibling's shared phrase in a note
        # that goes on past the cut cannot say which member it is.
        cued = set(map(tuple, visible.loc[neg & (visible["part"] == "cue"), ["note_id", "code"]].to_numpy()))
        keys = list(zip(visible["note_id"], visible["code"]))
        view[neg & np.array([k not in cued for k in keys])] = "suspected"
        named = set(map(tuple, visible.loc[ev & (visible["part"] != "shared"), ["note_id", "code"]].to_numpy()))
        view[ev & (visible["part"] == "shared") & np.array([k not in named and k[0] in long_notes for k in keys])] = "shared"
    if variant == "no_negation":
        view[neg] = "evidenced"
    if variant == "no_family_history":
        view[visible["kind"] == "family_history"] = "evidenced"
    out = pd.DataFrame({"note_id": visible["note_id"], "code": visible["code"], "view": view})
    shared = out[out["view"] == "shared"]
    if variant == "no_siblings":
        shared = out[(out["view"] == "evidenced") & out["code"].isin(SIBLING_OF)]
        out = out[~out.index.isin(shared.index)]
    if len(shared):  # shared evidence stands for every member of the sibling group
        groups = pd.Series(SIBLING_OF)
        members = groups.reset_index().set_axis(["member", "group"], axis=1)
        spread = shared.assign(group=shared["code"].map(SIBLING_OF)).merge(members, on="group")
        out = pd.concat([out[out["view"] != "shared"],
                         pd.DataFrame({"note_id": spread["note_id"], "code": spread["member"], "view": "shared"})])
    rank = {v: i for i, v in enumerate(VIEWS)}
    out = out.assign(rank=out["view"].map(rank)).sort_values(["note_id", "code", "rank"])
    return out.drop_duplicates(["note_id", "code"])[["note_id", "code", "view"]].reset_index(drop=True)


def view_matrix(views: pd.DataFrame, note_ids, codes) -> np.ndarray:
    """`(n_notes, L)` view indices into `VIEWS` (default `none`)."""
    out = np.full((len(note_ids), len(codes)), VIEWS.index("none"), dtype=np.int8)
    row = {n: i for i, n in enumerate(note_ids)}
    col = {c: j for j, c in enumerate(codes)}
    v = views[views["note_id"].isin(row) & views["code"].isin(col)]
    out[v["note_id"].map(row).to_numpy(), v["code"].map(col).to_numpy()] = v["view"].map(VIEWS.index).to_numpy()
    return out


def fit_lookup(train_views: np.ndarray, y_train: np.ndarray, smoothing: float = SMOOTHING) -> np.ndarray:
    """`(L, n_views)` smoothed training rate of each label given (code, view), from the training split's
    view matrix and labels only."""
    y = np.asarray(y_train, dtype=np.float64)
    n = np.zeros((y.shape[1], len(VIEWS)))
    pos = np.zeros_like(n)
    for v in range(len(VIEWS)):
        mask = train_views == v
        n[:, v], pos[:, v] = mask.sum(axis=0), (mask * y).sum(axis=0)
    view_rate = pos.sum(axis=0) / np.maximum(n.sum(axis=0), 1)
    return (pos + smoothing * view_rate) / (n + smoothing)


def score(lookup: np.ndarray, views: np.ndarray) -> np.ndarray:
    """`(n_notes, L)` probabilities: the lookup at each (code, view)."""
    return lookup[np.arange(lookup.shape[0])[None, :], views].astype(np.float32)


def oracle_scores(cohort: Cohort, truth: pd.DataFrame, variant: str = "oracle") -> dict:
    """Fit `variant` on train; return {"lookup", "dev", "test"} (dev/test probabilities in label-set order)."""
    texts = cohort.notes.set_index("note_id")["text"]
    views = note_views(truth, texts, variant)
    parts = {s: cohort.split(s) for s in ("train", "dev", "test")}
    mats = {s: view_matrix(views, df["note_id"].tolist(), cohort.codes) for s, df in parts.items()}
    lookup = fit_lookup(mats["train"], cohort.label_matrix(parts["train"]))
    return {"lookup": lookup, "dev": score(lookup, mats["dev"]), "test": score(lookup, mats["test"])}


def run_oracle(out_dir: str | Path, source: str = "synthetic") -> dict:
    """Write the `oracle` row (predictions + metrics record) and `tables/oracle_decomposition.csv` (test
    micro/macro AUC per variant). Real sources have no ground truth: nothing is written, {} returned."""
    if source != "synthetic":
        return {}
    started = time.perf_counter()
    cohort, truth = load_cohort(out_dir), load_truth(out_dir)
    y_test = cohort.labels("test")
    rows, full = [], None
    for variant in VARIANTS:
        scores = oracle_scores(cohort, truth, variant)
        full = scores if variant == "oracle" else full
        macro, _ = metrics.macro_auc(y_test, scores["test"])
        rows.append({"variant": variant, "micro_auc": metrics.micro_auc(y_test, scores["test"]), "macro_auc": macro})
    table = pd.DataFrame(rows)
    table["micro_auc_cost"] = table["micro_auc"].iloc[0] - table["micro_auc"]
    write_csv(RunPaths(out_dir).table("oracle_decomposition.csv"), table)
    record = record_row(out_dir, cohort, ORACLE, full["dev"], full["test"], best_epoch=None,
                        train_seconds=round(time.perf_counter() - started, 2), smoothing=SMOOTHING)
    return {"record": record, "decomposition": table}


# ---------------------------------------------------------------------------------------------------------
# The context phenomena of the cohort, each beside a published figure for real notes where one is known.
# ---------------------------------------------------------------------------------------------------------

CHAPMAN_2001 = "Chapman et al. 2001, Proc AMIA Symp 105-109 (ten report types, 42,160 reports)"
SEARLE_2020 = "Searle et al. 2020, BioNLP workshop 76-85 (MIMIC-III discharge summaries)"
WORKMAN_2019 = "as cited by Workman et al. 2019, BMC Res Notes 12:42"
_DIGITS = re.compile(r"\d+")


def _phrasing(text: str) -> str:
    """A span's phrasing: lowercased, numbers replaced (a drawn lab value is no new phrasing)."""
    return " ".join(_DIGITS.sub("#", text.lower()).split())


def measure_phenomena(cohort: Cohort, truth: pd.DataFrame, raw_codes: pd.DataFrame) -> pd.DataFrame:
    """Rates of each context phenomenon in the cohort: columns phenomenon, ours, published (real notes),
    source, knob. `raw_codes` (note_id, code) are the generator's codes before notebook 01's imputation."""
    texts = dict(zip(cohort.notes["note_id"], cohort.notes["text"]))
    split = dict(zip(cohort.notes["note_id"], cohort.notes["split"]))
    spans = truth[(truth["start"] >= 0) & truth["note_id"].isin(texts)]
    cuts = {nid: token_512_offset(texts[nid]) for nid in spans["note_id"].unique()}
    spans = spans.assign(late=spans["start"].to_numpy() >= spans["note_id"].map(cuts).to_numpy())

    def pairs(df: pd.DataFrame) -> set:
        return set(zip(df["note_id"], df["code"]))

    lab = [(n, c) for n, cs in zip(cohort.notes["note_id"], cohort.notes["labels"]) for c in cs]
    labels, n_lab, raw = set(lab), max(len(lab), 1), pairs(raw_codes)
    ev = spans[spans["kind"] == "evidenced"]
    evidenced, early = pairs(ev), pairs(ev[~ev["late"]])
    sib = [k for k in lab if k[1] in SIBLING_OF and k in evidenced]
    mod = ev[ev["part"] == "modifier"]
    mod_any, mod_early = pairs(mod), pairs(mod[~mod["late"]])
    neg = spans[spans["kind"] == "negated"]
    cues = neg[neg["part"] == "cue"]
    rule_outs, cue_early = pairs(neg[neg["part"] == "mention"]), pairs(cues[~cues["late"]])
    label_set = set(cohort.codes)
    neg_nonlabel = {n for n, c in pairs(neg) if c in label_set and (n, c) not in labels}
    in_split = lambda name: np.array([split[n] == name for n in ev["note_id"]], dtype=bool)  # noqa: E731
    seen = {(c, _phrasing(texts[n][s:e])) for n, c, s, e in
            ev.loc[in_split("train"), ["note_id", "code", "start", "end"]].itertuples(index=False)}
    test_ev = ev[in_split("test") & ev["code"].isin(label_set).to_numpy()]
    unseen = [(c, _phrasing(texts[n][s:e])) not in seen for n, c, s, e in
              test_ev[["note_id", "code", "start", "end"]].itertuples(index=False)]
    share = lambda part, whole: len(part) / max(len(whole), 1)  # noqa: E731
    rows = [
        ("labels evidenced in the note", share([k for k in lab if k in evidenced], lab), None, None, "p_late_evidence"),
        ("labels imputed by notebook 01 without evidence",
         share([k for k in lab if k not in raw and k not in evidenced], lab), None, None, ""),
        ("labels evidenced only after token 512", share([k for k in lab if k in evidenced and k not in early], lab),
         None, None, "p_late_evidence"),
        ("evidenced sibling-code labels whose modifier is in a separate sentence",
         share([k for k in sib if k in mod_any], sib), None, None, "p_sibling_split"),
        ("... with that modifier only after token 512", share([k for k in sib if k in mod_any and k not in mod_early], sib),
         None, None, "p_sibling_split, p_late_evidence"),
        ("condition mentions that are negated (distinct note-code pairs)",
         share(pairs(neg), pairs(spans[spans["kind"].isin(_TEXT_KINDS)])),
         "39-83% of clinical observations, by report type", CHAPMAN_2001, "p_negation, p_rule_out"),
        ("notes with a negated mention of a label-set code that is not a label", share(neg_nonlabel, texts),
         None, None, "p_negation, p_local_negation"),
        ("rule-outs whose cue lies only after token 512", share([k for k in rule_outs if k not in cue_early], rule_outs),
         None, None, "p_late_cue"),
        ("evidenced conditions the coder left uncoded", share(evidenced - raw, evidenced),
         "most frequent MIMIC-III codes under-coded by up to 35%", SEARLE_2020, ""),
        ("evidence phrases in an author's habitual variant", float((ev["form"] == "variant").mean()) if len(ev) else 0.0,
         None, None, "p_author_variant"),
        ("evidence phrases with a misspelled word", float((ev["form"] == "typo").mean()) if len(ev) else 0.0,
         "misspellings up to 5% of words in some clinical corpora", WORKMAN_2019, "p_typo"),
        ("test evidence spans (label-set codes) phrased as never in training", float(np.mean(unseen)) if unseen else 0.0,
         None, None, "p_typo, p_author_variant"),
    ]
    table = pd.DataFrame(rows, columns=["phenomenon", "ours", "published (real notes)", "source", "knob"])
    table["ours"] = table["ours"].astype(float).round(4)
    return table.fillna("—")


def phenomena_table(out_dir: str | Path, source: str = "synthetic") -> pd.DataFrame | None:
    """`measure_phenomena` on the run's cohort, written to `tables/synthetic_phenomena.csv`; None for real
    sources (no ground truth)."""
    if source != "synthetic":
        return None
    paths = RunPaths(out_dir)
    table = measure_phenomena(load_cohort(out_dir), load_truth(out_dir), pd.read_parquet(paths.raw_dir / "codes.parquet"))
    write_csv(paths.table("synthetic_phenomena.csv"), table)
    return table
